#!/usr/bin/env bash
# Kamailio for `make bench-tcp`: the shared reference (../shared/bench/kamailio.cfg, the job
# sipctl's default route does) with a TCP listener beside the UDP one, one TCP worker
# (tcp_children=1, as children=1 for UDP), and the two PBXs reached over TCP
# (`;transport=tcp`). The shared reference-kamailio.sh runs UDP only, hence this sibling;
# everything else (the tables, the flags, the harness) is the same.
#   kamailio-tcp.sh BENCH_DIR [loadtest options...]
set -euo pipefail
here=${1:?usage: kamailio-tcp.sh BENCH_DIR [loadtest options...]}
shift
command -v kamailio >/dev/null || { echo "kamailio not found: apt-get install -y kamailio kamailio-sqlite-modules" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db="$work/kam.db"
schema=/usr/share/kamailio/db_sqlite
cat "$schema/standard-create.sql" "$schema/permissions-create.sql" "$schema/dispatcher-create.sql" | sqlite3 "$db"
sqlite3 "$db" "INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (1, '127.0.0.1', 32, 0, 'bench');
INSERT INTO dispatcher (setid, destination, flags, priority, attrs, description) VALUES
 (1, 'sip:127.0.0.1:5070;transport=tcp', 0, 0, '', 'pbx-a'), (1, 'sip:127.0.0.1:5071;transport=tcp', 0, 0, '', 'pbx-b');"
sed -e "s#CHILDREN#1#" -e "s#FR_TIMER#30000#" -e "s#PROXY_PORT#5060#" -e "s#CTL_SOCKET#$work/kamailio_ctl#" \
    -e "s#DB_PATH#$db#g" \
    -e 's#^listen=udp:127.0.0.1:5060$#listen=udp:127.0.0.1:5060\nlisten=tcp:127.0.0.1:5060\ntcp_children=1#' \
    "$here/kamailio.cfg" > "$work/kamailio.cfg"
grep -q '^listen=tcp:127.0.0.1:5060$' "$work/kamailio.cfg" || { echo "kamailio-tcp.sh: the reference config has no 'listen=udp:127.0.0.1:PROXY_PORT' line to add TCP beside" >&2; exit 2; }
"$here/loadtest.sh" --transport t1 "$@" -- kamailio -f "$work/kamailio.cfg" -DD -E -m 256 -M 16 -Y "$work"
