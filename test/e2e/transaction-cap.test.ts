/**
 * The transaction table is bounded (issue 9): a flood of INVITEs that are never answered
 * fills it to `transaction.maxTransactions` and no further — every INVITE beyond gets
 * `503 Service Unavailable` with Retry-After, memory stays flat, and the proxy still serves.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/client.js';
import { byCallId, startLab, type Lab } from '../helpers/lab.js';
import { unique } from '../helpers/sip-peer.js';

let lab: Lab;
let dir: string;
const CAP = 300;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sipctl-txcap-'));
  writeFileSync(join(dir, 'tx.yaml'), `mode: transaction\ntransaction:\n  maxTransactions: ${CAP}\n  retryAfterS: 7\n`);
  lab = await startLab({ args: ['--config', join(dir, 'tx.yaml')] });
});
afterAll(async () => {
  await lab?.close();
  rmSync(dir, { recursive: true, force: true });
});

function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

it(`holds at most ${CAP} transactions under 3,000 unanswered INVITEs; the rest get 503 with Retry-After`, async () => {
  const pid = lab.proxy.child.pid!;
  const rssBefore = rssMb(pid);
  const N = 3000;
  // Each INVITE is answered at once: 100 Trying while there is room, else 503. Sent in
  // batches of 100; on a busy machine a datagram can be lost in a socket buffer either way,
  // so a batch's unanswered INVITEs are retransmitted as a UA would (Timer A), at most 3 times:
  // a retransmission is absorbed and answered again, never counted twice.
  let busy = 0;
  const wanted = new Set<string>();
  for (let first = 0; first < N; first += 100) {
    const batch = new Map<string, string>();
    for (let i = first; i < Math.min(N, first + 100); i++) {
      const { text, callId } = lab.request();
      batch.set(callId, text);
      lab.caller.send(text, lab.port);
    }
    for (let attempt = 0; attempt < 4 && batch.size > 0; attempt++) {
      if (attempt > 0) for (const text of batch.values()) lab.caller.send(text, lab.port);
      const deadline = Date.now() + 1000 * (attempt + 1);
      while (batch.size > 0 && Date.now() < deadline) {
        const r = await lab.caller
          .next((x) => batch.has(x.msg.header('call-id') ?? '') && (x.msg.status === 100 || x.msg.status === 503), Math.max(1, deadline - Date.now()))
          .catch(() => undefined);
        if (r === undefined) break;
        batch.delete(r.msg.header('call-id')!);
        if (r.msg.status === 503) {
          busy++;
          expect(r.msg.header('retry-after')).toBe('7');
        }
      }
    }
    for (const id of batch.keys()) wanted.add(id);
  }
  lab.caller.drain(); // answers to retransmissions
  expect(wanted.size).toBe(0);
  expect(busy).toBe(N - CAP);
  const status = (await controlRequest(lab.proxy.control, 'status', {})) as { transactions: { inUse: number } };
  // CAP server transactions, each with its branch's client transaction.
  expect(status.transactions.inUse).toBe(2 * CAP);
  expect(rssMb(pid) - rssBefore).toBeLessThan(40);
  // Still serving: a request that needs no transaction (an OPTIONS to the proxy) is answered.
  const { text, callId } = lab.request({ method: 'OPTIONS', uri: `sip:127.0.0.1:${lab.port}`, callId: unique('alive-') });
  lab.caller.send(text, lab.port);
  expect((await lab.caller.next(byCallId(callId))).msg.status).toBe(200);
});
