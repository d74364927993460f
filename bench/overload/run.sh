#!/usr/bin/env bash
# Overload: SIPp drives digest REGISTER over TCP against `z5d run` at twice
# the highest rate the MCS sustains, and checks that it sheds the excess
# with 503 (not timeouts), that registered clients keep their flows alive
# and can still call meanwhile, that memory stays bounded, and that
# everything is back to normal afterwards.
#
#   bench/overload/run.sh          (about 2 minutes; bounded below 3)
#
# Traffic goes to loopback only: z5d on 127.0.81.1, SIPp from 127.0.82.1,
# the probe clients from 127.0.83.1. Every process started here is stopped
# by its PID. Figures: bench/overload/results.txt and the Results section
# of bench/overload/README.md.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/overload
TMP=$ROOT/bench/.tmp/overload
BIN=$TMP/bin
RES=$HERE/results.txt
Z5_IP=127.0.81.1
UA_IP=127.0.82.1
PROBE_IP=127.0.83.1
DOMAIN=mcs.z5.test
FIRST=2125551000
USERS=1003          # 1000 for SIPp, three for the probe
STEP=${STEP:-4}     # seconds per ladder step
LOAD=${LOAD:-20}    # seconds of overload
RATES=${RATES:-"300 500 700 900 1200 1600 2000 2600 3200"}
DEADLINE=$((SECONDS + 175))

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
over_time() { [ $SECONDS -ge $DEADLINE ]; }

PIDS=()
cleanup() {
	local p i
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || continue
		for i in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v sipp >/dev/null || { echo "overload: sipp is missing (apt-get install sip-tester)" >&2; exit 1; }
rm -rf "$TMP" && mkdir -p "$BIN" "$TMP/data" && chmod 700 "$TMP/data"

log "building z5d and the probe"
(cd "$ROOT" && go build -o "$BIN/" ./cmd/z5d ./bench/provision ./bench/overload/probe) || exit 1

# The load generator's address stands for many clients: it is allowlisted
# (no per-source rate limit or in-flight share) so the node's own limit
# is what is measured. Everything else is the default.
cat >"$TMP/z5.toml" <<EOF
data_dir = "$TMP/data"

[provider]
name = "Z5 overload"

[names]
zdial = "zdial.z5.test"
lb_mcs = "lb.mcs.z5.test"
sip_domain = "$DOMAIN"

[ports]
dns = 25453
zdial_https = 28543
mcs_https = 29543
sip = 5060
rtp = "30000-30999"
metrics = 29190

[dns]
zones = ["z5.test"]

[sip]
max_conns_per_ip = 20000
ban_allow = ["$UA_IP"]

[[site]]
name = "bench"

[[site.node]]
name = "n1"
roles = ["dns", "zdial", "mcs"]
address = "$Z5_IP"
hosts = ["mcs1.mcs.z5.test"]
EOF

log "provisioning $USERS users"
"$BIN/provision" --config "$TMP/z5.toml" --count $USERS --first $FIRST --domain $DOMAIN --sipp "$TMP/all.csv" 2>"$TMP/provision.log" || { cat "$TMP/provision.log"; exit 1; }
head -n 1001 "$TMP/all.csv" >"$TMP/users.csv"
PROBE_USERS="$((FIRST + 1000)),$((FIRST + 1001)),$((FIRST + 1002))"

"$BIN/z5d" run --config "$TMP/z5.toml" --node n1 >"$TMP/z5d.log" 2>&1 &
Z5_PID=$!
PIDS+=("$Z5_PID")
for i in $(seq 300); do
	curl -fs "http://$Z5_IP:29190/readyz" >/dev/null 2>&1 && break
	kill -0 "$Z5_PID" 2>/dev/null || { tail -5 "$TMP/z5d.log" >&2; exit 1; }
	sleep 0.1
done

rss() { awk '/^VmRSS/ { print int($2 / 1024) }' "/proc/$Z5_PID/status" 2>/dev/null || echo 0; }
metric() { curl -fs "http://$Z5_IP:29190/metrics" | awk -v n="$1" '$1 == n { v = $2 } END { print v + 0 }'; }

# sipp_run RATE SECONDS SCENARIO: one bounded SIPp run over one TCP
# connection; sets OK FAIL ELAPSED ACHIEVED.
sipp_run() {
	local rate=$1 secs=$2 sf=$3 calls t0 t1 stf=$TMP/sipp-stat.csv
	calls=$((rate * secs))
	rm -f "$stf"
	t0=$(date +%s.%N)
	timeout $((secs * 3 + 20)) sipp -nd -r "$rate" -m "$calls" -l 5000 -recv_timeout 5000 -timeout $((secs * 3 + 10))s \
		-sf "$sf" -inf "$TMP/users.csv" -t t1 -i $UA_IP -p 5073 -trace_stat -stf "$stf" -fd 1 \
		"$Z5_IP:5060" >"$TMP/sipp.out" 2>&1
	t1=$(date +%s.%N)
	OK=$(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "SuccessfulCall(C)") c = i; next } { v = $c } END { print v + 0 }' "$stf" 2>/dev/null || echo 0)
	FAIL=$(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "FailedCall(C)") c = i; next } { v = $c } END { print v + 0 }' "$stf" 2>/dev/null || echo 0)
	ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
	ACHIEVED=$(awk -v n="$OK" -v e="$ELAPSED" 'BEGIN { printf "%.0f", n / e }')
	CALLS=$calls
}

: >"$RES"
out() { echo "$*" | tee -a "$RES" >&2; }
out "date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); $(sipp -v 2>/dev/null | grep -o 'SIPp v[0-9.]*' | head -1)"
RSS0=$(rss)
out "idle: RSS ${RSS0} MiB"

# 1. The ladder: the highest REGISTER rate served with no timeouts and at
# most 1% of the registrations shed (a store stall may shed a burst).
# A failing step is tried once more: the build machine is shared, and a
# burst of other load should not end the ladder.
BEST=0
for r in $RATES; do
	pass=no
	for attempt in 1 2; do
		over_time && break
		shed0=$(metric 'z5_sip_shed_total{reason="overloaded"}')
		sipp_run "$r" "$STEP" "$HERE/register_shed.xml"
		shed=$(($(metric 'z5_sip_shed_total{reason="overloaded"}' | cut -d. -f1) - ${shed0%.*}))
		out "ladder rate=$r registrations=$CALLS completed=$OK timeouts=$FAIL shed=$shed achieved_per_s=$ACHIEVED rss_mib=$(rss)"
		if [ "$FAIL" = 0 ] && [ "$OK" = "$CALLS" ] && [ $((shed * 100)) -le "$CALLS" ] &&
			awk -v a="$ACHIEVED" -v r="$r" 'BEGIN { exit !(a >= 0.9 * r) }'; then
			[ "$ACHIEVED" -gt "$BEST" ] && BEST=$ACHIEVED
			pass=yes
			break
		fi
	done
	[ $pass = yes ] || break
done
[ "$BEST" -gt 0 ] || { out "no clean ladder step: the MCS did not serve even ${RATES%% *}/s"; exit 1; }
OVER=$((BEST * 2))
out "sustained: $BEST REGISTER/s (digest, one TCP connection); overload at ${OVER}/s for ${LOAD}s"

# 2. Overload at twice that, with the probe playing registered customers.
s503_0=$(metric 'z5_sip_responses_total{code="503"}')
s200_0=$(metric 'z5_sip_responses_total{code="200"}')
shed0=$(metric 'z5_sip_shed_total{reason="overloaded"}')
"$BIN/probe" --server "$Z5_IP:5060" --src $PROBE_IP --users "$PROBE_USERS" --duration $((LOAD + 2))s >"$TMP/probe.json" 2>"$TMP/probe.err" &
PROBE_PID=$!
PIDS+=("$PROBE_PID")
sleep 1
(
	peak=0
	while kill -0 "$Z5_PID" 2>/dev/null && [ ! -f "$TMP/load.done" ]; do
		r=$(rss)
		[ "$r" -gt "$peak" ] && peak=$r && echo "$peak" >"$TMP/rss.peak"
		sleep 0.5
	done
) &
PIDS+=("$!")
sipp_run "$OVER" "$LOAD" "$HERE/register_shed.xml"
touch "$TMP/load.done"
wait "$PROBE_PID"
s503=$(($(metric 'z5_sip_responses_total{code="503"}' | cut -d. -f1) - ${s503_0%.*}))
s200=$(($(metric 'z5_sip_responses_total{code="200"}' | cut -d. -f1) - ${s200_0%.*}))
shed=$(($(metric 'z5_sip_shed_total{reason="overloaded"}' | cut -d. -f1) - ${shed0%.*}))
PEAK=$(cat "$TMP/rss.peak" 2>/dev/null || rss)
served=$(awk -v n="$s200" -v e="$ELAPSED" 'BEGIN { printf "%.0f", n / e }')
out "overload rate=$OVER registrations=$CALLS completed=$OK timeouts_or_errors=$FAIL elapsed_s=$ELAPSED answered_200=$s200 (${served}/s) shed_503=$shed (all 503: $s503) rss_peak_mib=$PEAK"
out "probe during overload: $(cat "$TMP/probe.json")"
[ -s "$TMP/probe.err" ] && out "probe errors: $(head -c 300 "$TMP/probe.err")"

# 3. Afterwards: half the sustained rate is served cleanly again.
sleep 3
inflight=$(metric z5_sip_requests_in_flight)
sipp_run $((BEST / 2)) "$STEP" "$ROOT/bench/sipp/register.xml"
RSS1=$(rss)
out "after: in_flight=$inflight rate=$((BEST / 2)) ok=$OK/$CALLS failed=$FAIL achieved_per_s=$ACHIEVED rss_mib=$RSS1"

verdict=ok
[ "$FAIL" = 0 ] && [ "$OK" = "$CALLS" ] || verdict=FAILED
awk -v s="$shed" 'BEGIN { exit !(s > 0) }' || verdict=FAILED
grep -q '"calls_ok":[1-9]' "$TMP/probe.json" && grep -q '"flows_dropped":0' "$TMP/probe.json" || verdict=FAILED
out "verdict: $verdict (wall time ${SECONDS}s)"

# The Results section of the README is this run's figures.
if [ -f "$HERE/README.md" ]; then
	awk -v res="$RES" '
		/^<!-- results -->/ { print; print "```"; while ((getline l < res) > 0) print l; print "```"; skip = 1; next }
		/^<!-- end results -->/ { skip = 0 }
		!skip { print }' "$HERE/README.md" >"$TMP/README.md" && cp "$TMP/README.md" "$HERE/README.md"
fi
[ $verdict = ok ]
