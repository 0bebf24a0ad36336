/**
 * Probing over real UDP on 127.0.0.1: a tiny responder that answers OPTIONS, and a silent
 * port. Real sockets and real timers (with a short T1 and Timer F so the test takes well
 * under a second or two); every wait is bounded.
 */
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { DispatcherHolder } from '../../src/dispatcher/holder.js';
import { Prober } from '../../src/dispatcher/probe.js';
import type { StateChange } from '../../src/dispatcher/types.js';
import { parseMessage } from '../../src/sip/parse.js';
import { row } from './helpers.js';

const sockets: Socket[] = [];
const cleanups: (() => void)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  await Promise.all(sockets.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
});

async function bind(): Promise<Socket> {
  const s = createSocket('udp4');
  sockets.push(s);
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => resolve());
  });
  return s;
}

/** A UAS answering OPTIONS with `status` (RFC 3261 §8.2.6: Via, From, To+tag, Call-ID, CSeq copied); null = silent. */
function answer(sock: Socket, status: () => number | null): { received: number } {
  const stats = { received: 0 };
  sock.on('message', (msg, rinfo) => {
    stats.received++;
    const code = status();
    if (code === null) return;
    const req = parseMessage(msg);
    const lines = [
      `SIP/2.0 ${code} ${code === 200 ? 'OK' : 'Service Unavailable'}`,
      ...req.headerFields('via').map((v) => `Via: ${v}`),
      `From: ${req.header('from')}`,
      `To: ${req.header('to')};tag=uas1`,
      `Call-ID: ${req.callId}`,
      `CSeq: ${req.header('cseq')}`,
      'Content-Length: 0',
      '',
      '',
    ];
    sock.send(Buffer.from(lines.join('\r\n')), rinfo.port, rinfo.address);
  });
  return stats;
}

function waitFor(changes: StateChange[], pred: (c: StateChange) => boolean, what: string, ms = 5000): Promise<StateChange> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const poll = () => {
      const hit = changes.find(pred);
      if (hit) return resolve(hit);
      if (Date.now() > deadline) return reject(new Error(`no state change: ${what}; saw ${JSON.stringify(changes)}`));
      setTimeout(poll, 10);
    };
    poll();
  });
}

describe('probing over real UDP', () => {
  it('brings an answering destination up, takes a silent one down, and follows them as they change', async () => {
    const local = await bind();
    const responder = await bind();
    const silent = await bind();
    let responderStatus: number | null = 200;
    let silentStatus: number | null = null;
    const responderStats = answer(responder, () => responderStatus);
    answer(silent, () => silentStatus);

    const changes: StateChange[] = [];
    const holder = new DispatcherHolder({ onStateChange: (c) => changes.push(c) });
    cleanups.push(() => holder.close());
    const up = `sip:127.0.0.1:${responder.address().port}`;
    const quiet = `sip:127.0.0.1:${silent.address().port}`;
    await holder.reload([row(1, up, { flags: 8 }), row(1, quiet)]);

    const prober = new Prober(holder, {
      io: {
        send: (t, bytes) => local.send(bytes, t.port, t.address),
        localVia: () => ({ transport: 'UDP', host: '127.0.0.1', port: local.address().port }),
        now: () => Date.now(),
        setTimeout: (fn, ms) => setTimeout(fn, ms),
        clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
      },
      config: { interval: 0.1, failures: 1, successes: 2, t1Ms: 20, timeoutMs: 250 },
    });
    cleanups.push(() => prober.stop());
    local.on('message', (msg) => {
      const res = parseMessage(msg);
      prober.handleResponse(res.topVia!.branch!, res.status);
    });
    prober.start();

    await waitFor(changes, (c) => c.uri === up && c.from === 'probing' && c.to === 'active', 'responder up');
    await waitFor(changes, (c) => c.uri === quiet && c.from === 'active' && c.to === 'inactive', 'silent down');
    expect(holder.current.select(1, 'round-robin', { callId: 'x', fromUri: '', toUri: '', requestUri: '' })!.uri).toBe(up);
    const upDest = holder.current.set(1)!.destinations.find((d) => d.uri === up)!;
    expect(upDest.stats.lastProbe).toMatchObject({ ok: true, status: 200 });
    expect(upDest.stats.lastProbe!.latencyMs).toBeGreaterThanOrEqual(0);
    expect(responderStats.received).toBeGreaterThanOrEqual(2);

    responderStatus = 503;
    await waitFor(changes, (c) => c.uri === up && c.to === 'inactive', 'responder down on 503');
    expect(holder.current.set(1)!.destinations.find((d) => d.uri === up)!.stats.lastProbe).toMatchObject({ ok: false, status: 503 });
    expect(holder.current.select(1, 'round-robin', { callId: 'x', fromUri: '', toUri: '', requestUri: '' })).toBeNull();

    silentStatus = 200;
    await waitFor(changes, (c) => c.uri === quiet && c.from === 'inactive' && c.to === 'active', 'silent one answers and comes up');
  });
});
