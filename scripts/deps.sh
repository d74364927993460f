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
)
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
