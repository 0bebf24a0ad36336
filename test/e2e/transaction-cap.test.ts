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
  const ids: string[] = [];
  for (let i = 0; i < N; i++) {
    const { text, callId } = lab.request();
    ids.push(callId);
    lab.caller.send(text, lab.port);
    if (i % 100 === 99) await new Promise((r) => setTimeout(r, 20)); // ~5,000/s, bounded
  }
  // Each INVITE is answered at once: 100 Trying while there is room, else 503.
  let busy = 0;
  const wanted = new Set(ids);
  const deadline = Date.now() + 15_000;
  while (wanted.size > 0 && Date.now() < deadline) {
    const r = await lab.caller.next((x) => wanted.has(x.msg.header('call-id') ?? '') && (x.msg.status === 100 || x.msg.status === 503), deadline - Date.now()).catch(() => undefined);
    if (r === undefined) break;
    wanted.delete(r.msg.header('call-id')!);
    if (r.msg.status === 503) {
      busy++;
      expect(r.msg.header('retry-after')).toBe('7');
    }
  }
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
