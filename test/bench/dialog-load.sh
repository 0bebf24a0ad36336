#!/usr/bin/env bash
# Dialogs and CDRs under load (issue 12): 1,000 calls/s of 5 s calls through `sipctl serve`
# (stateless), dialogs + CDRs on vs off, alternating, through the shared SIPp harness.
#   bash test/bench/dialog-load.sh [ROUNDS]     (needs make build, sipp, ../shared/bench)
# Ports 25060 (proxy) and 25070/25071 (PBXs), so it does not collide with make bench.
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
bench=${SIPCTL_BENCH_DIR:-$repo/../shared/bench}
cli=$repo/dist/cli/sipctl.js
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed 's|<pause/>|<pause milliseconds="5000"/>|' "$bench/uac.xml" > "$work/uac5s.xml"
for round in $(seq 1 "${1:-2}"); do
  for mode in off on; do
    d=$(mktemp -d "$work/run.XXXX")
    node "$cli" address add 1 127.0.0.1 32 --db "$d/db" >/dev/null
    node "$cli" dispatcher add 1 sip:127.0.0.1:25070 --db "$d/db" >/dev/null
    node "$cli" dispatcher add 1 sip:127.0.0.1:25071 --db "$d/db" >/dev/null
    printf 'dialog:\n  enabled: %s\n' "$([ $mode = on ] && echo true || echo false)" > "$d/c.yaml"
    out=$(bash "$bench/loadtest.sh" --rate 1000 --calls 8000 --proxy-port 25060 --uas-ports "25070 25071" --uac "$work/uac5s.xml" -- \
      node "$cli" serve --db "$d/db" --control "$d/sock" --listen udp:127.0.0.1:25060 --config "$d/c.yaml" 2>&1 | grep '^offered_cps=' | tail -1)
    rows=$(node "$cli" cdr list --json --limit 100000 --db "$d/db" 2>/dev/null | node -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>{try{console.log(JSON.parse(s).total)}catch{console.log("-")}})')
    echo "round=$round dialogs=$mode cdr_rows=$rows $out"
  done
done
