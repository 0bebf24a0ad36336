// The floor for `make bench` (issue 14): the least a Node relay does for the bench's calls,
// to measure what sipctl spends beyond Node's own per-datagram cost. Per message: one
// receive, one latin1 string, a regex for the Call-ID; a request gets a Via and (an INVITE)
// a Record-Route spliced in by string concatenation and goes to a PBX chosen by the Call-ID
// (so a call's ACK and BYE reach the PBX that answered its INVITE); a response loses its top
// Via and goes where the next Via says. No SIP parsing, no checks: not a proxy, a yardstick.
//
//   node test/bench/floor-relay.mjs LISTEN_IP:PORT PBX_IP:PORT [PBX_IP:PORT ...]
import dgram from 'node:dgram';

const [listen, ...pbxArgs] = process.argv.slice(2);
if (listen === undefined || pbxArgs.length === 0) {
  process.stderr.write('usage: floor-relay.mjs LISTEN_IP:PORT PBX_IP:PORT [PBX_IP:PORT ...]\n');
  process.exit(2);
}
const hostPort = (s) => {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i), Number(s.slice(i + 1))];
};
const [host, port] = hostPort(listen);
const pbxs = pbxArgs.map(hostPort);
const callIdRe = /\r\n(?:Call-ID|i):[ \t]*([^\r]+)/i;
const nextViaRe = /\r\nVia:[ \t]*SIP\/2\.0\/UDP[ \t]+([^;:\r ]+):(\d+)/i;
const me = `${host}:${port}`;
let n = 0;
const socket = dgram.createSocket('udp4');
socket.on('message', (buf) => {
  const s = buf.toString('latin1');
  if (s.startsWith('SIP/2.0')) {
    const a = s.indexOf('\r\nVia:');
    if (a < 0) return;
    const b = s.indexOf('\r\n', a + 2);
    // SIPp's [last_Via:] writes every Via in one line, comma-separated: drop only the first value.
    const comma = s.indexOf(',', a);
    const rest = comma > 0 && comma < b ? `${s.slice(0, a)}\r\nVia: ${s.slice(comma + 1, b).trimStart()}${s.slice(b)}` : s.slice(0, a) + s.slice(b);
    const next = nextViaRe.exec(rest);
    if (next === null) return;
    socket.send(Buffer.from(rest, 'latin1'), Number(next[2]), next[1]);
    return;
  }
  const callId = callIdRe.exec(s)?.[1] ?? '';
  let h = 0;
  for (let i = 0; i < callId.length; i++) h = (h * 31 + callId.charCodeAt(i)) | 0;
  const [toHost, toPort] = pbxs[(h >>> 0) % pbxs.length];
  const line = s.indexOf('\r\n');
  const rr = s.startsWith('INVITE') ? `\r\nRecord-Route: <sip:${me};lr>` : '';
  const out = `${s.slice(0, line)}\r\nVia: SIP/2.0/UDP ${me};branch=z9hG4bK${(h >>> 0).toString(36)}${++n}${rr}${s.slice(line)}`;
  socket.send(Buffer.from(out, 'latin1'), toPort, toHost);
});
socket.bind(port, host, () => process.stdout.write(`floor relay on ${me}\n`));
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
