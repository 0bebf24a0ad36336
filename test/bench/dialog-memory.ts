/**
 * Memory per dialog: N calls tracked by the dialog tracker (INVITE + 180 + 200, as from the
 * wire: each message its own Buffer, parsed), measured with `node --expose-gc` (heapUsed
 * after a full collection; the messages themselves are released before measuring, as they
 * are in the proxy once relayed).
 *
 *   npx tsc -p tsconfig.bench.json && node --expose-gc dist-bench/test/bench/dialog-memory.js [N]
 *
 * Then every call is ended (BYE) and the heap must come back to the baseline (no leak).
 */
import { DialogTracker } from '../../src/dialog/index.js';
import { systemClock } from '../../src/dispatcher/types.js';
import { parseMessage } from '../../src/sip/parse.js';
import type { Inbound, Target } from '../../src/transport/types.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  process.stderr.write('run with node --expose-gc\n');
  process.exit(2);
}
const N = Number(process.argv[2] ?? 10_000);
const CALLER = { sourceAddress: '127.0.0.1', sourcePort: 5101, protocol: 'udp' } as Inbound;
const PBX: Target = { protocol: 'udp', address: '127.0.0.1', port: 5070 };

function msg(first: string, i: number, toTag: string, cseq: string, extra = ''): Buffer {
  return Buffer.from(
    `${first}\r\n` +
      `Via: SIP/2.0/UDP 127.0.0.1:5101;branch=z9hG4bK-21003-${i}-0\r\n` +
      `From: "bench" <sip:caller${i}@127.0.0.1:5101>;tag=21003c${i}\r\n` +
      `To: <sip:bench@127.0.0.1:5060>${toTag}\r\n` +
      `Call-ID: ${i}-21003@127.0.0.1\r\n` +
      `CSeq: ${cseq}\r\n` +
      `Contact: <sip:caller@127.0.0.1:5101;transport=UDP>\r\n${extra}` +
      `Content-Length: 0\r\n\r\n`,
  );
}

const counter = { active: 0 };
let ended = 0;
const tracker = new DialogTracker({
  config: { enabled: true, timeoutS: 43_200, max: N + 1, timerCS: 180 },
  clock: systemClock,
  onEnd: () => ended++,
  counterOf: () => counter,
});
const pick = { uri: 'sip:127.0.0.1:5070', targets: [PBX], setid: 1, handle: {} };

gc();
const base = process.memoryUsage().heapUsed;
for (let i = 0; i < N; i++) {
  tracker.invite(parseMessage(msg('INVITE sip:bench@127.0.0.1:5060 SIP/2.0', i, '', '1 INVITE', 'Max-Forwards: 70\r\n')), CALLER, PBX, pick);
  tracker.response(parseMessage(msg('SIP/2.0 180 Ringing', i, `;tag=${i}s`, '1 INVITE')));
  tracker.response(parseMessage(msg('SIP/2.0 200 OK', i, `;tag=${i}s`, '1 INVITE')));
}
gc();
const held = process.memoryUsage().heapUsed;
for (let i = 0; i < N; i++) tracker.request(parseMessage(msg('BYE sip:caller@127.0.0.1:5101 SIP/2.0', i, `;tag=${i}s`, '2 BYE')));
gc();
const after = process.memoryUsage().heapUsed;
process.stdout.write(
  `${N} confirmed dialogs: ${Math.round((held - base) / N)} bytes each (heapUsed ${((held - base) / 1048576).toFixed(1)} MB); ` +
    `after BYE: ${tracker.size} left, ${ended} ended, active calls ${counter.active}, heap ${((after - base) / 1048576).toFixed(2)} MB above the baseline\n`,
);
