#!/usr/bin/env bash
# `make bench`: sipctl side by side with Kamailio under the same SIPp load.
#
# Each round runs, at every rate, sipctl then Kamailio back to back (same machine conditions),
# through the shared harness: loadtest.sh for sipctl, reference-kamailio.sh for Kamailio
# (kamailio.cfg: Max-Forwards, address check on group 1, record-route, round-robin over
# dispatcher set 1, stateless forward -- the job sipctl's default route does).
# Every raw figures line goes to test/bench/results/YYYY-MM-DD-HHMM.txt; the medians go to
# stdout, to that file and to test/bench/results/latest.md.
#
# Environment:
#   SIPCTL_BENCH_DIR  folder holding loadtest.sh and reference-kamailio.sh
#                     (default: <repo>/../shared/bench)
#   BENCH_ROUNDS      rounds (default 3)
#   BENCH_RATES       offered calls/s, space separated (default "1000 2000")
#   BENCH_SECONDS     seconds of load per run (default 8); calls = rate * seconds
#   BENCH_MODE        stateless (default) or transaction: sipctl with `mode: transaction`
#                     and failover on, Kamailio with reference-kamailio.sh --tm (t_relay,
#                     failure_route, ds_next_dst)
#   BENCH_FR_TIMER_MS fr_timer for both proxies in transaction mode (default 30000)
#   BENCH_UAS_B       the second PBX (port 5071) runs this scenario instead of uas.xml, for both
#                     proxies: a file name in the harness folder (uas_503.xml, uas_silent.xml)
#                     or none (no PBX there)
#   BENCH_OUT         the summary file under test/bench/results/ (default latest.md)
#   BENCH_TRANSPORT   udp (default) or tcp: SIPp calls over TCP (one connection each way,
#                     loadtest.sh --transport t1), the PBXs reached over TCP, Kamailio with a TCP
#                     listener and tcp_children=1 (test/bench/kamailio-tcp.sh); stateless only
#   BENCH_FLOOR       1 (default in stateless mode over UDP) also runs the floor in every round: a bare
#                     Node relay (test/bench/floor-relay.mjs) doing the least the job needs, so the
#                     table gives sipctl / floor and Kamailio / floor beside sipctl / Kamailio
# Exit 0 when every run was attempted (failed calls are reported, not fatal); non-zero only
# when the harness could not run (missing harness, install or build failure, busy ports,
# or a proxy that produced no figures at all).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
bench_dir=${SIPCTL_BENCH_DIR:-$repo/../shared/bench}
rounds=${BENCH_ROUNDS:-3}
rates=${BENCH_RATES:-1000 2000}
seconds=${BENCH_SECONDS:-8}
mode=${BENCH_MODE:-stateless}
fr_timer=${BENCH_FR_TIMER_MS:-30000}
uas_b=${BENCH_UAS_B:-}
out_md=${BENCH_OUT:-latest.md}
transport=${BENCH_TRANSPORT:-udp}
[[ "$transport" =~ ^(udp|tcp)$ ]] || die "BENCH_TRANSPORT must be udp or tcp, not '$transport'"
[ "$transport" = udp ] || [ "$mode" = stateless ] || die "BENCH_TRANSPORT=tcp runs stateless only (the Kamailio side has no tm variant over TCP)"
if [ "$mode" = stateless ] && [ "$transport" = udp ]; then floor=${BENCH_FLOOR:-1}; else floor=${BENCH_FLOOR:-0}; fi
[ "$floor" = 0 ] || [ "$transport" = udp ] || die "the floor relay is UDP only"
pbx_param=""; sipp_transport=(); listen_args=(--listen udp:127.0.0.1:5060)
if [ "$transport" = tcp ]; then
  # SIPp gives up at once when its TCP connection is refused: give both proxies 8 s to listen
  # (sipctl takes 1-2 s from start to listening on this shared machine: modules, tables).
  pbx_param=";transport=tcp"; sipp_transport=(--transport t1 --settle 8)
  listen_args=(--listen udp:127.0.0.1:5060 --listen tcp:127.0.0.1:5060)
fi

die() { echo "bench: $*" >&2; exit 1; }

[ -r "$bench_dir/loadtest.sh" ] && [ -r "$bench_dir/reference-kamailio.sh" ] ||
  die "SIPp harness not found in $bench_dir (needs loadtest.sh and reference-kamailio.sh); set SIPCTL_BENCH_DIR to its folder"
bench_dir=$(cd "$bench_dir" && pwd)
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive whole number, not '$rounds'"
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS must be a positive whole number, not '$seconds'"
for r in $rates; do
  [[ "$r" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RATES must be whole calls/s values like \"1000 2000\", not '$rates'"
done
[ -n "${rates// /}" ] || die "BENCH_RATES is empty"
[[ "$mode" =~ ^(stateless|transaction)$ ]] || die "BENCH_MODE must be stateless or transaction, not '$mode'"
[[ "$fr_timer" =~ ^[1-9][0-9]*$ ]] || die "BENCH_FR_TIMER_MS must be a positive whole number of ms, not '$fr_timer'"
[[ "$out_md" =~ ^[A-Za-z0-9._-]+\.md$ ]] || die "BENCH_OUT must be a file name ending .md, not '$out_md'"
uas_args=()
if [ -n "$uas_b" ]; then
  if [ "$uas_b" = none ]; then uas_args=(--uas-for 5071 none)
  else
    [ -r "$bench_dir/$uas_b" ] || die "BENCH_UAS_B: no scenario $bench_dir/$uas_b"
    uas_args=(--uas-for 5071 "$bench_dir/$uas_b")
  fi
fi
kam_args=()
[ "$mode" = transaction ] && kam_args=(--tm --fr-timer "$fr_timer")

# --- what the harness needs -----------------------------------------------------------------
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root (or sudo) to run: $*"; fi
}
deb_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
command -v sipp >/dev/null || missing+=(sip-tester)
command -v kamailio >/dev/null || missing+=(kamailio)
deb_installed kamailio-sqlite-modules || missing+=(kamailio-sqlite-modules)
command -v sqlite3 >/dev/null || missing+=(sqlite3) # reference-kamailio.sh builds Kamailio's DB with it
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: installing ${missing[*]}"
  as_root apt-get update -q >/dev/null || die "apt-get update failed"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed"
fi

# --- a fresh build of what is measured ---------------------------------------------------------
cd "$repo"
[ -d node_modules ] || die "node_modules missing: run 'make install' (or 'make bench', which does) first"
npx tsc -p tsconfig.json || die "build failed (npx tsc -p tsconfig.json)"
report_js=dist-bench/test/bench/bench-report.js
if [ ! "$report_js" -nt test/bench/bench-report.ts ]; then
  npx tsc -p tsconfig.bench.json || die "build failed (npx tsc -p tsconfig.bench.json)"
fi
sipctl=(node "$repo/dist/cli/sipctl.js")

# --- fixed loopback ports: wait (bounded) for other SIPp runs to finish --------------------------
uacs_for() { echo $(( ($1 + 999) / 1000 )); } # one SIPp caller tops out near 1,000-1,500 calls/s
max_uacs=1
for r in $rates; do u=$(uacs_for "$r"); [ "$u" -gt "$max_uacs" ] && max_uacs=$u; done
ports=(5060 5070 5071)
for i in $(seq 1 "$max_uacs"); do ports+=($((5100 + i))); done
port_re=$(printf '%04X|' "${ports[@]}"); port_re=":(${port_re%|})\$"
busy_ports() { awk 'FNR > 1 { print $2 }' /proc/net/udp /proc/net/udp6 2>/dev/null | grep -iE "$port_re" || true; }
wait_for_ports() {
  local i
  for i in $(seq 1 60); do
    [ -z "$(busy_ports)" ] && return 0
    [ "$i" -eq 1 ] && echo "bench: UDP ports ${ports[*]} in use on 127.0.0.1, waiting up to 60 s" >&2
    sleep 1
  done
  ss -uanp 2>/dev/null | grep -E ":($(IFS='|'; echo "${ports[*]}"))\b" >&2 || true
  die "UDP ports ${ports[*]} still in use after 60 s (another SIPp run or a kamailio service?); stop it and retry"
}

# SIPp's callers connect from fixed ports (5101...): a connection of the previous run still in
# TIME-WAIT on that port refuses the next run's connect, and SIPp gives up at once. Wait (at
# most 70 s: Linux keeps TIME-WAIT 60 s) until none is left.
wait_for_time_wait() {
  local i
  for i in $(seq 1 70); do
    ss -Htan state time-wait 2>/dev/null | grep -qE '127\.0\.0\.1:51[0-9][0-9][[:space:]]' || return 0
    sleep 1
  done
  echo "bench: TCP connections from the SIPp callers' ports still in TIME-WAIT after 70 s; going on" >&2
}

# --- results file ------------------------------------------------------------------------------
mkdir -p test/bench/results
stamp=$(date +%Y-%m-%d-%H%M)
started_at=$(date '+%Y-%m-%d %H:%M')
results=test/bench/results/$stamp.txt
n=2
while [ -e "$results" ]; do results=test/bench/results/$stamp-$n.txt; n=$((n + 1)); done
partial=$results.tmp # .gitignore'd: an interrupted run leaves no results file behind
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# Share of all CPUs busy over one second: the load average lags by minutes, this does not.
cpu_busy_pct() {
  local a b
  a=$(awk '/^cpu / { print $2+$3+$4+$6+$7+$8, $5 }' /proc/stat); sleep 1
  b=$(awk '/^cpu / { print $2+$3+$4+$6+$7+$8, $5 }' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
    busy = y[1] - x[1]; idle = y[2] - x[2]; printf "%.0f", (busy + idle > 0 ? 100 * busy / (busy + idle) : 0) }'
}
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src cli migrations package.json 2>/dev/null || commit="$commit (with uncommitted changes in src/ cli/)"
kam_version=$(kamailio -v 2>/dev/null | sed -n 's/^version: kamailio \([^ ]*\).*/\1/p' | head -1)
sipp_version=$(sipp -v 2>/dev/null | grep -o 'v[0-9][0-9.]*[^ ]*' | head -1 || true)
load_start=$(loadavg)
# Both proxies and SIPp need the two CPUs: give another job (a build, a test suite) up to
# 30 s to finish before measuring, then go on regardless and say so.
busy_start=$(cpu_busy_pct)
for i in $(seq 1 29); do
  [ "$busy_start" -le 25 ] && break
  [ "$i" -eq 1 ] && echo "bench: the CPUs are $busy_start% busy; waiting up to 30 s for a quieter machine"
  busy_start=$(cpu_busy_pct)
done
{
  echo "# sipctl vs Kamailio, make bench"
  echo "date: $(date -Iseconds)"
  echo "git commit: $commit"
  echo "node: $(node --version)"
  echo "kamailio: ${kam_version:-unknown}"
  echo "sipp: ${sipp_version:-unknown}"
  echo "nproc: $(nproc)"
  echo "load average at start: $load_start; CPU busy in the second before: $busy_start%"
  echo "rounds: $rounds; rates: $rates calls/s; $seconds s per run; ${transport^^} on 127.0.0.1; order per round and rate: sipctl, kamailio$([ "$floor" = 1 ] && echo ', floor')"
  echo "harness: loadtest.sh / reference-kamailio.sh (children=1, $mode forward${kam_args[*]:+: kamailio ${kam_args[*]}})"
  echo "mode: $mode; transport: $transport; second PBX (5071): ${uas_b:-uas.xml}"
  echo
} > "$partial"
echo "bench: results in $results; $(nproc) CPUs, $busy_start% busy, load average $load_start"
[ "$busy_start" -le 25 ] ||
  echo "bench: warning: the CPUs were $busy_start% busy before the start; figures will be noisy (run it on a quiet machine)"

# --- one run -----------------------------------------------------------------------------------
# Appends "run round= rate= proxy= load1= <figures>" (or "... error=...") to the results file.
run_one() {
  local round=$1 rate=$2 proxy=$3 uacs calls out line load1 db dir
  uacs=$(uacs_for "$rate")
  calls=$(( rate * seconds / uacs * uacs ))
  wait_for_ports
  [ "$transport" = tcp ] && wait_for_time_wait
  load1=$(cut -d' ' -f1 /proc/loadavg)
  if [ "$proxy" = sipctl ]; then
    dir="$work/sipctl-$round-$rate"
    mkdir -p "$dir"
    db="$dir/sipctl.db"
    # The same tables as reference-kamailio.sh gives Kamailio: 127.0.0.1/32 in group 1, two
    # PBXs in set 1. The default route checks group 1 and round-robins over set 1.
    "${sipctl[@]}" address add 1 127.0.0.1 32 --db "$db" >/dev/null &&
      "${sipctl[@]}" dispatcher add 1 "sip:127.0.0.1:5070$pbx_param" --db "$db" >/dev/null &&
      "${sipctl[@]}" dispatcher add 1 "sip:127.0.0.1:5071$pbx_param" --db "$db" >/dev/null ||
      die "could not prepare the sipctl database in $dir"
    # Transaction mode as Kamailio's WITH_TM: t_relay, fr_timer, failover on 408 and 5xx.
    printf 'mode: %s\ntransaction:\n  frTimerMs: %s\n' "$mode" "$fr_timer" > "$dir/sipctl.yaml"
    out=$(bash "$bench_dir/loadtest.sh" "${sipp_transport[@]}" --rate "$rate" --calls "$calls" --uacs "$uacs" "${uas_args[@]}" -- \
      "${sipctl[@]}" serve --config "$dir/sipctl.yaml" --db "$db" --control "$dir/sock" "${listen_args[@]}" 2>&1) || true
    rm -rf "$dir"
  elif [ "$proxy" = floor ]; then
    out=$(bash "$bench_dir/loadtest.sh" --rate "$rate" --calls "$calls" --uacs "$uacs" "${uas_args[@]}" -- \
      node "$repo/test/bench/floor-relay.mjs" 127.0.0.1:5060 127.0.0.1:5070 127.0.0.1:5071 2>&1) || true
  elif [ "$transport" = tcp ]; then
    out=$(bash "$repo/test/bench/kamailio-tcp.sh" "$bench_dir" --settle 8 --rate "$rate" --calls "$calls" --uacs "$uacs" "${uas_args[@]}" 2>&1) || true
  else
    out=$(bash "$bench_dir/reference-kamailio.sh" "${kam_args[@]}" --rate "$rate" --calls "$calls" --uacs "$uacs" "${uas_args[@]}" 2>&1) || true
  fi
  line=$(grep -E '^offered_cps=' <<<"$out" | tail -1 || true)
  if [ -n "$line" ]; then
    echo "run round=$round rate=$rate proxy=$proxy load1=$load1 $line" >> "$partial"
    printf '  %-8s %s\n' "$proxy" "$(tr ' ' '\n' <<<"$line" | grep -E '^(ok|failed|pbx_failed|cpu_ms_per_1k_calls|invite_rt_ms|proxy_rss_kb)=' | paste -sd' ')"
  else
    # No figures: keep what the harness said, so the file explains the gap.
    echo "run round=$round rate=$rate proxy=$proxy load1=$load1 error=no-figures-line" >> "$partial"
    sed 's/^/#   /' <<<"$out" | tail -25 >> "$partial"
    printf '  %-8s no figures: %s\n' "$proxy" "$(head -1 <<<"$out")"
  fi
}

started=$(date +%s)
for round in $(seq 1 "$rounds"); do
  for rate in $rates; do
    echo "round $round/$rounds, $rate calls/s for $seconds s"
    run_one "$round" "$rate" sipctl
    run_one "$round" "$rate" kamailio
    if [ "$floor" = 1 ]; then run_one "$round" "$rate" floor; fi
  done
done

# --- summary -----------------------------------------------------------------------------------
load_end=$(loadavg)
{
  echo
  echo "load average at end: $load_end; took $(( $(date +%s) - started )) s"
  echo
} >> "$partial"
md="$work/table.md"
echo
node "$report_js" "$partial" --markdown "$md" || die "bench-report failed on $partial"
cat "$md" >> "$partial"
mv "$partial" "$results"
# A proxy that never produced figures means the comparison did not happen: keep the raw file
# as the evidence, but leave latest.md quoting the last real comparison.
for proxy in sipctl kamailio; do
  grep -qE "^run .* proxy=$proxy .*offered_cps=" "$results" ||
    die "$proxy produced no figures in any run (see $results)"
done
{
  echo "# sipctl vs Kamailio (\`make bench\`)"
  echo
  echo "$started_at, commit $commit; Node $(node --version), Kamailio ${kam_version:-unknown}," \
    "$(nproc) CPUs, load average $load_start at start and $load_end at end."
  echo "Rounds: $rounds; in each, at every rate, sipctl then Kamailio (1 worker) took" \
    "$seconds s of SIPp calls (INVITE, 200, ACK, BYE) over ${transport^^} on 127.0.0.1, spread round-robin over two SIPp PBXs." \
    "Mode: $mode${kam_args[*]:+ (Kamailio ${kam_args[*]})}; the second PBX ran ${uas_b:-uas.xml}."
  echo "Raw figures: \`$results\`."
  echo
  cat "$md"
} > "test/bench/results/$out_md"
echo
echo "bench: wrote $results and test/bench/results/$out_md"

