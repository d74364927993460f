#!/usr/bin/env bash
# Installs the Debian packages the test suite drives as real peers (dig,
# SIPp, baresip, ffmpeg, nftables, ...). As root it installs what is missing;
# otherwise it lists what is missing and the tests that need it skip.
set -euo pipefail

# command -> Debian package
declare -A need=(
	[dig]=bind9-dnsutils
	[sipp]=sip-tester
	[baresip]=baresip-core
	[ffmpeg]=ffmpeg
	[ffprobe]=ffmpeg
	[nft]=nftables
	[iptables-restore]=iptables
	[ip]=iproute2
	[unshare]=util-linux
	[vdirsyncer]=vdirsyncer
	[linphonec]=linphone-cli
	[curl]=curl
	[tshark]=tshark
	[chromium]=chromium
)

# axe-core (npm), which the web phone tests inject into each screen: into
# the user's cache dir (outside the repo), from the configured npm
# registry. The tests read it from there (or from $Z5_AXE) and skip without
# it.
install_axe() {
	local dir="${XDG_CACHE_HOME:-$HOME/.cache}/z5/npm"
	[ -f "$dir/node_modules/axe-core/axe.min.js" ] && return 0
	if ! command -v npm >/dev/null 2>&1; then
		echo "deps: npm not installed; axe-core missing (the web phone tests will skip)" >&2
		return 0
	fi
	echo "deps: installing axe-core into $dir" >&2
	mkdir -p "$dir"
	npm install --silent --no-audit --no-fund --prefix "$dir" axe-core@4.14.1 >/dev/null ||
		echo "deps: axe-core install failed (the web phone tests will skip)" >&2
}
install_axe

missing=()
for cmd in "${!need[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
# PostgreSQL server binaries live outside PATH.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
	missing+=(postgresql)
fi
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: not root; missing Debian packages: ${missing[*]} (tests needing them will skip)" >&2
	exit 0
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
