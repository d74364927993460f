#!/usr/bin/env bash
# The whole test suite: installs the real peers the tests drive (as root),
# runs every Go test with the race detector, then each native fuzzer briefly.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh

echo "== go vet"
go vet ./...

echo "== go test -race"
# -count=1: never reuse cached results. The e2e tests build and run the
# z5d and z5 binaries themselves, so Go's test cache cannot see when their
# sources change.
go test -race -count=1 -timeout 15m ./...

echo "== fuzz (brief)"
fuzztime=${FUZZTIME:-3s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Every FuzzX in every package, each for $fuzztime, with its corpus under testdata/fuzz.
while IFS= read -r line; do
	file=${line%%:*}
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' <<<"${line#*:}")
	pkg=./$(dirname "$file")
	ok=0
	for try in 1 2; do
		if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1; then
			ok=1
			break
		fi
		# The fuzzer can end its time budget while minimising a new input
		# and report "context deadline exceeded" with no failing input: a
		# tool flake, retried once. A real crash writes a failing input.
		if grep -q "Failing input written" "$log" || ! grep -q "context deadline exceeded" "$log"; then
			break
		fi
		echo "fuzz: $pkg $name hit the fuzzer's deadline flake, retrying" >&2
	done
	if [ "$ok" != 1 ]; then
		cat "$log"
		echo "fuzz: $pkg $name failed" >&2
		exit 1
	fi
	echo "ok   $pkg $name"
done < <(grep -rHE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' internal cmd 2>/dev/null | sort)
echo "fuzz: all targets ran"
