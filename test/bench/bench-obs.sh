#!/usr/bin/env bash
# `make bench-obs`: what observability costs sipctl under SIPp load. In every round, at every
# rate, three runs back to back through the shared harness (loadtest.sh), in this order:
#   off      sipctl as `make bench` runs it;
#   metrics  the same with --metrics 127.0.0.1:PORT, and /metrics scraped every second meanwhile;
#   capture      the same with capture: { hep: udp:127.0.0.1:PORT } and a collector reading it;
#   capture-tcp  the same with capture: { hep: tcp:127.0.0.1:PORT } (a write per event-loop turn).
# It prints the proxy's CPU per 1,000 calls, median over the rounds, and each variant's ratio to
# `off` (median of the per-round ratios: the runs of one round share the machine's conditions).
# Targets (issue 11): metrics at most 1.03x, capture at most 1.15x. Run it below the rate that
# saturates the proxy on the machine (0 failed calls): past that, retransmissions inflate every
# variant's CPU per call differently and the ratios mean little.
#
# Environment: SIPCTL_BENCH_DIR (harness folder, default <repo>/../shared/bench), BENCH_ROUNDS
# (default 5), BENCH_RATES (default "1000"), BENCH_SECONDS (default 8), BENCH_VARIANTS (default
# "off metrics capture capture-tcp"). Raw lines go to test/bench/results/obs-YYYY-MM-DD-HHMM.txt.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
bench_dir=${SIPCTL_BENCH_DIR:-$repo/../shared/bench}
rounds=${BENCH_ROUNDS:-5}
rates=${BENCH_RATES:-1000}
seconds=${BENCH_SECONDS:-8}
variants=${BENCH_VARIANTS:-off metrics capture capture-tcp}
die() { echo "bench-obs: $*" >&2; exit 1; }

[ -r "$bench_dir/loadtest.sh" ] || die "SIPp harness not found in $bench_dir; set SIPCTL_BENCH_DIR"
bench_dir=$(cd "$bench_dir" && pwd)
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive whole number"
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS must be a positive whole number"
for v in $variants; do case "$v" in off|metrics|capture|capture-tcp) ;; *) die "unknown variant '$v' (off, metrics, capture, capture-tcp)";; esac; done
command -v sipp >/dev/null || die "sipp not found: apt-get install -y sip-tester"
command -v curl >/dev/null || die "curl not found: apt-get install -y curl"

cd "$repo"
npx tsc -p tsconfig.json || die "build failed"
sipctl=(node "$repo/dist/cli/sipctl.js")
metrics_port=19464
hep_port=19060

mkdir -p test/bench/results
results=test/bench/results/obs-$(date +%Y-%m-%d-%H%M).txt
work=$(mktemp -d)
helpers=()
cleanup() {
  for p in "${helpers[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
{
  echo "# sipctl observability cost, make bench-obs"
  echo "date: $(date -Iseconds); commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown); node: $(node --version); nproc: $(nproc)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); rounds: $rounds; rates: $rates; $seconds s per run; order per round: $variants"
} > "$results"

# The harness's fixed loopback ports: wait (bounded) while another SIPp run holds them.
wait_for_ports() {
  local i
  for i in $(seq 1 120); do
    awk 'FNR > 1 { print $2 }' /proc/net/udp 2>/dev/null | grep -qiE ':(13C4|13CE|13CF|13ED)$' || return 0
    [ "$i" -eq 1 ] && echo "bench-obs: UDP 5060/5070/5071/5101 in use (another bench?), waiting up to 120 s" >&2
    sleep 1
  done
  die "UDP ports 5060/5070/5071/5101 still in use after 120 s"
}

run_one() {
  local round=$1 rate=$2 variant=$3 dir db extra=() out line uacs calls
  uacs=$(( (rate + 999) / 1000 ))
  calls=$(( rate * seconds / uacs * uacs ))
  dir="$work/$variant-$round-$rate"
  mkdir -p "$dir"
  db="$dir/sipctl.db"
  "${sipctl[@]}" address add 1 127.0.0.1 32 --db "$db" >/dev/null
  "${sipctl[@]}" dispatcher add 1 sip:127.0.0.1:5070 --db "$db" >/dev/null
  "${sipctl[@]}" dispatcher add 1 sip:127.0.0.1:5071 --db "$db" >/dev/null
  helpers=()
  wait_for_ports
  case "$variant" in
    metrics)
      extra=(--metrics "127.0.0.1:$metrics_port")
      # A Prometheus that scrapes every second (its CPU is not the proxy's: another process group).
      ( while true; do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$metrics_port/metrics" || true; sleep 1; done ) &
      helpers+=("$!")
      ;;
    capture)
      printf 'capture: { hep: "udp:127.0.0.1:%s", id: 2001 }\n' "$hep_port" > "$dir/cfg.yaml"
      extra=(--config "$dir/cfg.yaml")
      # A collector that reads every packet (and counts them, printed at the end of the run).
      node -e "
        let n = 0; const s = require('dgram').createSocket('udp4');
        s.on('message', () => n++); s.bind($hep_port, '127.0.0.1');
        process.on('SIGTERM', () => { require('fs').writeFileSync('$dir/hep-count', String(n)); process.exit(0); });" &
      helpers+=("$!")
      ;;
    capture-tcp)
      printf 'capture: { hep: "tcp:127.0.0.1:%s", id: 2001 }\n' "$hep_port" > "$dir/cfg.yaml"
      extra=(--config "$dir/cfg.yaml")
      # A TCP collector that splits the stream by the HEP length field and counts the packets.
      node -e "
        let n = 0;
        require('net').createServer((c) => { let buf = Buffer.alloc(0);
          c.on('data', (d) => { buf = Buffer.concat([buf, d]);
            while (buf.length >= 6 && buf.length >= buf.readUInt16BE(4)) { buf = buf.subarray(buf.readUInt16BE(4)); n++; } });
        }).listen($hep_port, '127.0.0.1');
        process.on('SIGTERM', () => { require('fs').writeFileSync('$dir/hep-count', String(n)); process.exit(0); });" &
      helpers+=("$!")
      sleep 0.3
      ;;
  esac
  out=$(bash "$bench_dir/loadtest.sh" --rate "$rate" --calls "$calls" --uacs "$uacs" -- \
    "${sipctl[@]}" serve --db "$db" --control "$dir/sock" --listen udp:127.0.0.1:5060 "${extra[@]}" 2>&1) || true
  for p in "${helpers[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  helpers=()
  line=$(grep -E '^offered_cps=' <<<"$out" | tail -1 || true)
  local hep=""
  [ -f "$dir/hep-count" ] && hep=" hep_packets=$(cat "$dir/hep-count")"
  if [ -n "$line" ]; then
    echo "run round=$round rate=$rate variant=$variant load1=$(cut -d' ' -f1 /proc/loadavg) $line$hep" >> "$results"
    printf '  %-8s %s%s\n' "$variant" "$(tr ' ' '\n' <<<"$line" | grep -E '^(ok|failed|cpu_ms_per_1k_calls)=' | paste -sd' ')" "$hep"
  else
    echo "run round=$round rate=$rate variant=$variant error=no-figures" >> "$results"
    echo "  $variant: no figures: $(head -3 <<<"$out")"
  fi
  rm -rf "$dir"
}

for round in $(seq 1 "$rounds"); do
  for rate in $rates; do
    echo "round $round/$rounds, $rate calls/s for $seconds s"
    for v in $variants; do run_one "$round" "$rate" "$v"; done
  done
done

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$results"
# Medians of CPU per 1,000 calls per variant, and of the per-round ratios to `off`.
summary=$(awk '
  function median(arr, n,   i, j, t) {
    for (i = 2; i <= n; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j + 1] = arr[j]; arr[j + 1] = t }
    return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
  }
  /^run / {
    r = ""; rate = ""; v = ""; cpu = ""
    for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "round") r = kv[2]; else if (kv[1] == "rate") rate = kv[2]; else if (kv[1] == "variant") v = kv[2]; else if (kv[1] == "cpu_ms_per_1k_calls") cpu = kv[2] }
    if (cpu == "") next
    cpuOf[rate, v, r] = cpu; rates[rate] = 1; vs[v] = 1; rs[r] = 1
  }
  END {
    for (rate in rates) for (v in vs) {
      n = 0; m = 0
      for (r in rs) if ((rate, v, r) in cpuOf) { a[++n] = cpuOf[rate, v, r]; if (v != "off" && (rate, "off", r) in cpuOf) b[++m] = cpuOf[rate, v, r] / cpuOf[rate, "off", r] }
      if (n == 0) continue
      printf "rate %s calls/s  %-8s CPU ms per 1,000 calls: median %.1f over %d runs", rate, v, median(a, n), n
      if (m > 0) printf "; vs off: %.3fx (median of %d per-round ratios)", median(b, m), m
      printf "\n"
      delete a; delete b
    }
  }' "$results" | sort)
echo
echo "$summary"
{ echo; echo "$summary"; } >> "$results"
echo "bench-obs: raw figures in $results"
