/**
 * Memory per transaction: N INVITE proxy transactions (one UDP branch each) on the real
 * clock, measured with `node --expose-gc` (heapUsed: JS objects; external + arrayBuffers:
 * the message Buffers; RSS for the whole process).
 *
 *   npx tsc -p tsconfig.bench.json && node --expose-gc dist-bench/test/bench/transaction-memory.js [N]
 *
 * Three points:
 *   1. forwarded, unanswered (Calling): the request as received and as sent, the 100 Trying
 *      kept for retransmitted INVITEs, Timers A, B and fr_timer — the worst case, e.g. a
 *      flood of INVITEs to a PBX that does not answer;
 *   2. answered with 180 + 200 (RFC 6026 Accepted for 64·T1): what steady traffic holds for
 *      each call of the last 32 seconds;
 *   3. all terminated: back to the baseline (no leak).
 * Each transaction gets its own INVITE Buffer, parsed, as from the wire.
 */
import { parseMessage } from '../../src/sip/parse.js';
import { requestKey } from '../../src/transaction/key.js';
import { TransactionLayer } from '../../src/transaction/layer.js';
import { ProxyTransaction } from '../../src/transaction/proxy.js';
import type { Target } from '../../src/transport/types.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  process.stderr.write('run with node --expose-gc\n');
  process.exit(2);
}

const N = Number(process.argv[2] ?? 100_000);
const SDP = 'v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';

function invite(i: number): Buffer {
  return Buffer.from(
    `INVITE sip:bench@127.0.0.1:5060 SIP/2.0\r\n` +
      `Via: SIP/2.0/UDP 127.0.0.1:5101;branch=z9hG4bK-21003-${i}-0\r\n` +
      `From: "bench" <sip:caller1@127.0.0.1:5101>;tag=21003c${i}\r\n` +
      `To: <sip:bench@127.0.0.1:5060>\r\n` +
      `Call-ID: ${i}-21003@127.0.0.1\r\n` +
      `CSeq: 1 INVITE\r\n` +
      `Contact: <sip:caller@127.0.0.1:5101;transport=UDP>\r\n` +
      `Max-Forwards: 70\r\n` +
      `Content-Type: application/sdp\r\n` +
      `Content-Length: ${SDP.length}\r\n\r\n${SDP}`,
    'latin1',
  );
}

function response(status: number, reason: string, i: number, ourBranch: string): Buffer {
  const body = status === 200 ? SDP : '';
  return Buffer.from(
    `SIP/2.0 ${status} ${reason}\r\n` +
      `Via: SIP/2.0/UDP 127.0.0.1:5060;branch=${ourBranch}\r\n` +
      `Via: SIP/2.0/UDP 127.0.0.1:5101;branch=z9hG4bK-21003-${i}-0;received=127.0.0.1;rport=5101\r\n` +
      `Record-Route: <sip:127.0.0.1:5060;transport=udp;lr>\r\n` +
      `From: "bench" <sip:caller1@127.0.0.1:5101>;tag=21003c${i}\r\n` +
      `To: <sip:bench@127.0.0.1:5060>;tag=pbx${i}\r\n` +
      `Call-ID: ${i}-21003@127.0.0.1\r\n` +
      `CSeq: 1 INVITE\r\n` +
      `Contact: <sip:pbx@127.0.0.1:5070;transport=UDP>\r\n` +
      (body ? `Content-Type: application/sdp\r\n` : '') +
      `Content-Length: ${body.length}\r\n\r\n${body}`,
    'latin1',
  );
}

interface Snapshot {
  heap: number;
  external: number;
  rss: number;
}

function snapshot(): Snapshot {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, external: m.external + m.arrayBuffers, rss: m.rss };
}

function per(a: Snapshot, b: Snapshot): string {
  const f = (x: number) => `${Math.round(x / N)} B`;
  return `heapUsed ${f(b.heap - a.heap)}, external+arrayBuffers ${f(b.external - a.external)}, RSS ${f(b.rss - a.rss)} per transaction`;
}

const layer = new TransactionLayer({ send: () => undefined, maxTransactions: N + 10 });
const upstream: Target = { protocol: 'udp', address: '127.0.0.1', port: 5101 };
const pbx: Target = { protocol: 'udp', address: '127.0.0.1', port: 5070 };
const ptxs: ProxyTransaction[] = [];
const branches: string[] = [];

const base = snapshot();
const t0 = process.hrtime.bigint();
for (let i = 0; i < N; i++) {
  const msg = parseMessage(invite(i));
  const ptx = ProxyTransaction.create(layer, { request: msg, key: requestKey(msg), source: { address: '127.0.0.1', port: 5101 }, upstream });
  if (ptx === 'full') throw new Error('table full');
  // What the core does for the branch: received/rport, Max-Forwards, Record-Route, our Via.
  const ourBranch = `z9hG4bKsc.${i.toString(36)}.0`;
  msg.insertAt(msg.topVia!.end, ';received=127.0.0.1;rport=5101');
  msg.setHeader('max-forwards', '69');
  msg.insertHeaderBefore('record-route', 'Record-Route', '<sip:127.0.0.1:5060;transport=udp;lr>');
  msg.insertHeaderBefore('via', 'Via', `SIP/2.0/UDP 127.0.0.1:5060;branch=${ourBranch}`);
  const b = ptx.addBranch({ target: pbx, bytes: msg.serialize(), branch: ourBranch });
  if (typeof b === 'string') throw new Error(b);
  ptxs.push(ptx);
  branches.push(ourBranch);
}
const createdMs = Number(process.hrtime.bigint() - t0) / 1e6;
const calling = snapshot();

for (let i = 0; i < N; i++) {
  for (const [status, reason] of [[180, 'Ringing'], [200, 'OK']] as const) {
    const r = parseMessage(response(status, reason, i, branches[i]!));
    layer.table.matchResponse(r)!.receive(r);
  }
}
const accepted = snapshot();
const live = layer.table.serverCount + layer.table.clientCount;

for (const p of ptxs) {
  for (const b of p.branches) b.client.terminate();
  p.server.terminate();
}
const ended = ptxs.filter((p) => p.terminated).length;
ptxs.length = 0;
branches.length = 0;
// One turn of the event loop, so that what Node defers past a clearTimeout is gone too.
await new Promise((resolve) => setImmediate(resolve));
const after = snapshot();

const out = [
  `transaction memory, ${N} INVITE proxy transactions with one UDP branch (Node ${process.version})`,
  `  created in ${createdMs.toFixed(0)} ms (${((createdMs * 1000) / N).toFixed(1)} µs each, parse + branch serialize included)`,
  `  forwarded, unanswered: ${per(base, calling)}`,
  `  answered (180, 200; Accepted): ${per(base, accepted)}  [${live} transactions live]`,
  `  all terminated (${ended}): ${per(base, after)}; table ${layer.table.serverCount}/${layer.table.clientCount}`,
];
process.stdout.write(out.join('\n') + '\n');
