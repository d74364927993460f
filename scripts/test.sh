#!/usr/bin/env bash
# The whole test suite: installs the real peers the tests drive (as root),
# runs every Go test with the race detector, then each native fuzzer briefly.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -timeout 15m ./...

echo "== fuzz (brief)"
fuzztime=${FUZZTIME:-3s}
# Every FuzzX in every package, each for $fuzztime, with its corpus under testdata/fuzz.
while IFS= read -r line; do
	file=${line%%:*}
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' <<<"${line#*:}")
	pkg=./$(dirname "$file")
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/z5-fuzz.log 2>&1 || {
		cat /tmp/z5-fuzz.log
		echo "fuzz: $pkg $name failed" >&2
		exit 1
	}
	echo "ok   $pkg $name"
done < <(grep -rHE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' internal cmd 2>/dev/null | sort)
echo "fuzz: all targets ran"
