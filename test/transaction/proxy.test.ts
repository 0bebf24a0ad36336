/**
 * The proxy's response context (RFC 3261 §16.7–§16.10) with fake time: what goes upstream,
 * what goes to each branch, and that every timer is released when it ends.
 */
import { describe, expect, it } from 'vitest';
import { requestKey } from '../../src/transaction/key.js';
import { ProxyTransaction, type ProxyBranch, type ProxyTransactionHost, type ProxyTransactionInit } from '../../src/transaction/proxy.js';
import { createServerTransaction } from '../../src/transaction/server.js';
import type { SipMessage } from '../../src/sip/message.js';
import type { Target } from '../../src/transport/types.js';
import type { TransactionLayerOptions } from '../../src/transaction/layer.js';
import { Harness, outgoing, PBX_A, PBX_B, PBX_TCP, request, responseTo, UPSTREAM_TCP, UPSTREAM_UDP, type RequestOpts, type Sent } from './helpers.js';

interface SetupOpts {
  method?: string;
  upstream?: Target;
  req?: RequestOpts;
  host?: ProxyTransactionHost;
  layer?: Partial<Omit<TransactionLayerOptions, 'send' | 'clock'>>;
  init?: Partial<ProxyTransactionInit>;
}

function setup(o: SetupOpts = {}) {
  const h = new Harness(o.layer);
  const method = o.method ?? 'INVITE';
  const upstream = o.upstream ?? UPSTREAM_UDP;
  const reqOpts: RequestOpts = { method, transport: upstream.protocol === 'tcp' ? 'TCP' : 'UDP', ...o.req };
  const req = request(reqOpts);
  let terminations = 0;
  const host: ProxyTransactionHost = {
    ...o.host,
    onTerminated: (p) => {
      terminations++;
      o.host?.onTerminated?.(p);
    },
  };
  const created = ProxyTransaction.create(h.layer, { request: req, key: requestKey(req), source: { address: '192.0.2.1', port: 5062 }, upstream, host, ...o.init });
  if (created === 'full') throw new Error('full');
  const ptx = created;
  const outs = new Map<ProxyBranch, SipMessage>();
  let n = 0;

  /** Send the request to one more destination, as the core will: our Via on top with a branch of its own. */
  function branch(t: Target = PBX_A, routes?: string[]): ProxyBranch {
    const ourBranch = `z9hG4bKsipctl.${++n}`;
    const out = outgoing({ method, ourBranch, ourTransport: t.protocol === 'tcp' ? 'TCP' : 'UDP', uri: `sip:bob@${t.address}:${t.port}`, routes });
    const b = ptx.addBranch({ target: t, bytes: out.bytes, branch: ourBranch, data: `${t.address}` });
    if (typeof b === 'string') throw new Error(`addBranch refused: ${b}`);
    outs.set(b, out.msg);
    return b;
  }

  /** The branch's next hop answers (a fresh parse each time, as from the wire). */
  function answer(b: ProxyBranch, status: number, o2: { toTag?: string; method?: string; extra?: string[] } = {}): void {
    const r = responseTo(outs.get(b)!, status, { toTag: o2.toTag ?? `tag-${b.index}`, method: o2.method, extra: o2.extra });
    const tx = h.layer.table.matchResponse(r);
    if (tx === undefined) throw new Error(`no client transaction for ${status} on branch ${b.index}`);
    tx.receive(r);
  }

  /** What went upstream since the last call. */
  function up(): Sent[] {
    const all = h.take();
    h.sent.push(...all.filter((s) => s.target !== upstream));
    return all.filter((s) => s.target === upstream);
  }
  const upLines = () => up().map((s) => s.msg.status);

  /** What went to next hops since the last call ("INVITE→10.0.0.21"). */
  function down(): string[] {
    const all = h.take();
    h.sent.push(...all.filter((s) => s.target === upstream));
    return all.filter((s) => s.target !== upstream).map((s) => `${s.msg.method}→${s.target.address}`);
  }

  /** The caller's side: a request arriving, matched through the table as the core will. */
  function fromCaller(o2: RequestOpts): string | undefined {
    const m = request({ ...reqOpts, ...o2 });
    const tx = h.layer.table.findServer(requestKey(m));
    return tx?.receive(m);
  }

  /** Let every timer run out; then nothing may be left. */
  function drain(): void {
    h.advance(300_000);
    expect(ptx.terminated).toBe(true);
    expect(terminations).toBe(1);
    expect(h.pendingTimers).toBe(0);
    expect(h.layer.table.serverCount).toBe(0);
    expect(h.layer.table.clientCount).toBe(0);
    expect(h.errors).toEqual([]);
  }

  return { h, ptx, req, branch, answer, up, upLines, down, fromCaller, drain, outs };
}

describe('forwarding (§16.7 step 5)', () => {
  it('INVITE: 100 Trying at once; 100 from downstream absorbed; provisionals and the 2xx forwarded without our Via; retransmitted INVITE gets the last provisional', () => {
    const t = setup();
    expect(t.upLines()).toEqual([100]);
    const b = t.branch();
    expect(t.down()).toEqual(['INVITE→10.0.0.21']);
    expect(t.fromCaller({})).toBe('absorbed');
    expect(t.upLines()).toEqual([100]);
    t.answer(b, 100);
    t.answer(b, 180);
    t.answer(b, 183);
    const ups = t.up();
    expect(ups.map((s) => s.msg.status)).toEqual([180, 183]);
    for (const s of ups) {
      expect(s.msg.vias).toHaveLength(1);
      expect(s.msg.topVia!.branch).toBe('z9hG4bKcaller1');
      expect(s.msg.to.tag).toBe('tag-0');
    }
    expect(t.fromCaller({})).toBe('absorbed');
    expect(t.upLines()).toEqual([183]);
    t.answer(b, 200);
    expect(t.upLines()).toEqual([200]);
    expect(t.ptx.finalStatus).toBe(200);
    // RFC 6026: retransmitted 2xx still reach the caller; retransmitted INVITEs are absorbed silently.
    t.h.advance(1000);
    t.answer(b, 200);
    expect(t.upLines()).toEqual([200]);
    expect(t.fromCaller({})).toBe('absorbed');
    expect(t.upLines()).toEqual([]);
    // The ACK of the 2xx is end to end: the core relays it.
    expect(t.fromCaller({ method: 'ACK', toTag: 'tag-0' })).toBe('pass');
    expect(t.down()).toEqual([]);
    t.drain();
  });

  it('non-INVITE: no 100 Trying of our own (§16.2); a provisional and the final forwarded', () => {
    const t = setup({ method: 'REGISTER' });
    expect(t.upLines()).toEqual([]);
    const b = t.branch();
    t.answer(b, 100);
    t.answer(b, 183);
    t.answer(b, 200);
    expect(t.upLines()).toEqual([183, 200]);
    expect(t.fromCaller({})).toBe('absorbed');
    expect(t.upLines()).toEqual([200]);
    t.drain();
  });

  it('the reply hook sees every response and may drop a provisional', () => {
    const seen: number[] = [];
    const t = setup({
      host: {
        onResponse: (_p, _b, r) => {
          seen.push(r.status);
          if (r.status === 183) return false;
          r.appendHeader('X-Seen', 'yes');
          return undefined;
        },
      },
    });
    t.up();
    const b = t.branch();
    t.answer(b, 100);
    t.answer(b, 183);
    t.answer(b, 180);
    t.answer(b, 486);
    expect(seen).toEqual([100, 183, 180, 486]);
    const ups = t.up();
    expect(ups.map((s) => s.msg.status)).toEqual([180, 486]);
    expect(ups.map((s) => s.msg.header('x-seen'))).toEqual(['yes', 'yes']);
    t.drain();
  });

  it('the caller\'s ACK for a forwarded non-2xx is absorbed; the next hop got its ACK from us (hop by hop)', () => {
    const t = setup();
    t.up();
    const b = t.branch();
    t.answer(b, 486);
    expect(t.down()).toEqual(['INVITE→10.0.0.21', 'ACK→10.0.0.21']);
    expect(t.upLines()).toEqual([486]);
    expect(t.fromCaller({ method: 'ACK', toTag: 'tag-0' })).toBe('absorbed');
    expect(t.ptx.server.state).toBe('confirmed');
    expect(t.down()).toEqual([]);
    t.drain();
  });

  it('every 2xx is forwarded, and the first cancels the other pending branches (§16.7 step 10)', () => {
    const t = setup();
    t.up();
    const a = t.branch(PBX_A);
    const b = t.branch(PBX_B);
    t.answer(b, 180);
    t.answer(a, 200);
    expect(t.down()).toEqual(['INVITE→10.0.0.21', 'INVITE→10.0.0.22', 'CANCEL→10.0.0.22']);
    // b answered before the CANCEL reached it: its 2xx goes upstream too.
    t.answer(b, 200);
    expect(t.upLines()).toEqual([180, 200, 200]);
    t.drain();
  });
});

describe('choosing the best final response (§16.7 step 6)', () => {
  type Outcome = number | 'timeout' | 'transport-error';
  const table: Array<{ outcomes: Outcome[]; upstream: number; forwarded: boolean }> = [
    { outcomes: [486, 503], upstream: 486, forwarded: true },
    { outcomes: [503], upstream: 500, forwarded: false },
    { outcomes: [503, 502], upstream: 502, forwarded: true },
    { outcomes: ['timeout', 404], upstream: 404, forwarded: true },
    { outcomes: ['timeout'], upstream: 408, forwarded: false },
    { outcomes: ['timeout', 'timeout'], upstream: 408, forwarded: false },
    { outcomes: ['transport-error'], upstream: 500, forwarded: false },
    { outcomes: [404, 302], upstream: 302, forwarded: true },
    { outcomes: [404, 401], upstream: 401, forwarded: true },
    { outcomes: [480, 407], upstream: 407, forwarded: true },
    { outcomes: [500, 486], upstream: 486, forwarded: true },
    { outcomes: [480, 404], upstream: 404, forwarded: true },
    // Within a class, what a destination said beats our own timeout / transport error.
    { outcomes: ['timeout', 486], upstream: 486, forwarded: true },
    { outcomes: ['transport-error', 504], upstream: 504, forwarded: true },
    { outcomes: ['timeout', 503], upstream: 408, forwarded: false },
  ];
  for (const row of table) {
    it(`[${row.outcomes.join(', ')}] → ${row.upstream}${row.forwarded ? ' (the response received)' : ' (local)'}`, () => {
      const t = setup({ init: { frTimerMs: 2000 } });
      t.up();
      const branches = row.outcomes.map((_, i) => t.branch(i % 2 === 0 ? PBX_A : PBX_B));
      for (let i = 0; i < row.outcomes.length; i++) {
        const o = row.outcomes[i]!;
        if (typeof o === 'number') t.answer(branches[i]!, o, { toTag: `pbx${i}` });
        else if (o === 'transport-error') branches[i]!.client.transportError();
      }
      if (row.outcomes.includes('timeout')) t.h.advance(2000);
      const ups = t.up();
      // (Timer G may have resent it meanwhile: one final response, perhaps several times.)
      expect(new Set(ups.map((s) => s.msg.status))).toEqual(new Set([row.upstream]));
      expect(ups.every((s) => s.bytes.equals(ups[0]!.bytes))).toBe(true);
      const sent = ups[0]!.msg;
      if (row.forwarded) expect(sent.to.tag).toMatch(/^pbx[0-9]$/);
      else expect(sent.to.tag).toMatch(/^sl/);
      expect(sent.vias).toHaveLength(1);
      t.drain();
    });
  }

  it('a 6xx ends the search: the other branches are cancelled, their 487 awaited, then the 6xx goes up; no new branch, no failure hook', () => {
    let hookCalls = 0;
    const t = setup({ host: { onFailure: () => hookCalls++ } });
    t.up();
    const a = t.branch(PBX_A);
    const b = t.branch(PBX_B);
    t.answer(b, 180);
    t.answer(a, 603);
    expect(t.down()).toEqual(['INVITE→10.0.0.21', 'INVITE→10.0.0.22', 'ACK→10.0.0.21', 'CANCEL→10.0.0.22']);
    expect(t.upLines()).toEqual([180]);
    expect(t.ptx.addBranch({ target: PBX_B, bytes: Buffer.from('x'), branch: 'z9hG4bKno' })).toBe('global-failure');
    t.answer(b, 200, { method: 'CANCEL' });
    t.answer(b, 487);
    expect(t.upLines()).toEqual([603]);
    expect(hookCalls).toBe(0);
    t.drain();
  });

  it('a 6xx on a branch that has not rung: the other is cancelled when its provisional comes (§9.1)', () => {
    const t = setup();
    t.up();
    const a = t.branch(PBX_A);
    const b = t.branch(PBX_B);
    t.answer(a, 600);
    expect(t.down()).toEqual(['INVITE→10.0.0.21', 'INVITE→10.0.0.22', 'ACK→10.0.0.21']);
    t.answer(b, 180);
    expect(t.down()).toEqual(['CANCEL→10.0.0.22']);
    expect(t.upLines()).toEqual([]);
    t.answer(b, 487);
    expect(t.upLines()).toEqual([600]);
    t.drain();
  });
});

describe('CANCEL (§16.10)', () => {
  it('is answered 200 and sent on every pending branch; the 487 from downstream goes upstream; retransmissions absorbed', () => {
    const t = setup();
    t.up();
    const a = t.branch(PBX_A, ['<sip:10.0.0.99;lr>']);
    const b = t.branch(PBX_B);
    t.answer(a, 180);
    t.up();
    t.down();
    // The core: a CANCEL that matches no transaction of its own, whose INVITE is ours.
    const cancelMsg = request({ method: 'CANCEL' });
    const cancelKey = requestKey(cancelMsg);
    expect(t.h.layer.table.findServer(cancelKey)).toBeUndefined();
    expect(t.h.layer.table.findInvite(cancelKey)).toBe(t.ptx.server);
    const cancelTx = createServerTransaction(t.h.layer, { request: cancelMsg, key: cancelKey, source: { address: '192.0.2.1', port: 5062 }, upstream: UPSTREAM_UDP });
    if (cancelTx === 'full') throw new Error('full');
    t.ptx.receiveCancel(cancelTx);
    const ups = t.up();
    expect(ups.map((s) => `${s.msg.status} ${s.msg.cseq.method}`)).toEqual(['200 CANCEL']);
    // Only the branch that rang is cancelled now (§9.1); the other when it rings.
    const downs = t.h.take().filter((s) => s.target !== UPSTREAM_UDP);
    expect(downs.map((s) => `${s.msg.method}→${s.target.address}`)).toEqual(['CANCEL→10.0.0.21']);
    const cancel = downs[0]!.msg;
    const inviteA = t.outs.get(a)!;
    expect(cancel.requestUriText).toBe(inviteA.requestUriText);
    expect(cancel.callId).toBe(inviteA.callId);
    expect(cancel.header('from')).toBe(inviteA.header('from'));
    expect(cancel.header('to')).toBe(inviteA.header('to'));
    expect(cancel.cseq).toEqual({ seq: inviteA.cseq.seq, method: 'CANCEL' });
    expect(cancel.vias).toHaveLength(1);
    expect(cancel.topVia!.branch).toBe(inviteA.topVia!.branch);
    expect(cancel.headerValues('route')).toEqual(['<sip:10.0.0.99;lr>']);
    // The caller retransmits its CANCEL: the 200 again, nothing downstream.
    const re = request({ method: 'CANCEL' });
    expect(t.h.layer.table.findServer(requestKey(re))).toBe(cancelTx);
    expect(cancelTx.receive(re)).toBe('absorbed');
    expect(t.upLines()).toEqual([200]);
    t.answer(b, 180);
    expect(t.down()).toEqual(['CANCEL→10.0.0.22']);
    t.answer(a, 200, { method: 'CANCEL' });
    t.answer(a, 487);
    t.answer(b, 487);
    expect(t.down()).toEqual(['ACK→10.0.0.21', 'ACK→10.0.0.22']);
    expect(t.upLines()).toEqual([487]);
    expect(t.fromCaller({ method: 'ACK', toTag: 'tag-0' })).toBe('absorbed');
    t.drain();
  });

  it('a cancelled transaction never fails over; a branch that never answers ends in a local 487', () => {
    let hookCalls = 0;
    const t = setup({ host: { onFailure: () => hookCalls++ }, init: { frTimerMs: 3000 } });
    t.up();
    t.branch(PBX_A);
    t.ptx.receiveCancel(undefined); // the owner answered the CANCEL itself (table full)
    expect(t.ptx.cancelled).toBe(true);
    t.h.advance(3000);
    expect(t.upLines()).toEqual([487]);
    expect(hookCalls).toBe(0);
    expect(t.down()).toEqual(['INVITE→10.0.0.21', 'INVITE→10.0.0.21', 'INVITE→10.0.0.21']); // 0, 500, 1500 ms
    t.drain();
  });

  it('after a final response a CANCEL only gets its 200 (§9.2: too late)', () => {
    const t = setup();
    t.up();
    const a = t.branch();
    t.answer(a, 200);
    t.up();
    t.down();
    t.ptx.receiveCancel(undefined);
    expect(t.ptx.cancelled).toBe(false);
    expect(t.down()).toEqual([]);
    t.drain();
  });
});

describe('fr_timer and fr_inv_timer (§16.8, Timer C)', () => {
  it('fr_timer without a provisional: local 408, retransmissions stop, no CANCEL until the branch rings', () => {
    const t = setup({ init: { frTimerMs: 2000 } });
    t.up();
    const a = t.branch();
    t.h.advance(2000);
    expect(t.upLines()).toEqual([408]);
    expect(a.timedOut).toBe(true);
    t.h.advance(10_000);
    expect(t.down()).toEqual(['INVITE→10.0.0.21', 'INVITE→10.0.0.21', 'INVITE→10.0.0.21']);
    expect(t.fromCaller({ method: 'ACK', toTag: 'x' })).toBe('absorbed');
    t.up();
    // It rings after all: now it is cancelled (§9.1), and its 487 goes nowhere.
    t.answer(a, 180);
    expect(t.down()).toEqual(['CANCEL→10.0.0.21']);
    t.answer(a, 487);
    expect(t.down()).toEqual(['ACK→10.0.0.21']);
    expect(t.upLines()).toEqual([]);
    t.drain();
  });

  it('fr_inv_timer after a 180: the branch is CANCELled and the caller gets 408', () => {
    const t = setup({ init: { frTimerMs: 2000, frInvTimerMs: 10_000 } });
    t.up();
    const a = t.branch();
    t.h.advance(1000);
    t.answer(a, 180);
    // fr_timer (2 s) no longer applies once it rang: fr_inv_timer does, from the 180.
    t.h.advance(9_999);
    expect(t.upLines()).toEqual([180]);
    t.h.advance(1);
    expect(t.upLines()).toEqual([408]);
    expect(t.down()).toEqual(['INVITE→10.0.0.21', 'INVITE→10.0.0.21', 'CANCEL→10.0.0.21']);
    expect(t.fromCaller({ method: 'ACK', toTag: 'x' })).toBe('absorbed');
    t.answer(a, 487);
    expect(t.upLines()).toEqual([]);
    t.drain();
  });

  it('each 101–199 restarts fr_inv_timer; a 100 does not switch to it (§16.7 step 2) but allows the CANCEL', () => {
    const t = setup({ init: { frTimerMs: 2000, frInvTimerMs: 5000 } });
    t.up();
    const a = t.branch();
    t.answer(a, 100);
    t.h.advance(2000);
    expect(t.upLines()).toEqual([408]);
    expect(t.down()).toEqual(['INVITE→10.0.0.21', 'CANCEL→10.0.0.21']);
    t.answer(a, 487);
    t.drain();

    const u = setup({ init: { frTimerMs: 2000, frInvTimerMs: 5000 } });
    u.up();
    const b = u.branch();
    u.answer(b, 180);
    u.h.advance(4000);
    u.answer(b, 183);
    u.h.advance(4999);
    expect(u.upLines()).toEqual([180, 183]);
    u.h.advance(1);
    expect(u.upLines()).toEqual([408]);
    u.answer(b, 487);
    u.drain();
  });

  it('frTimerMs and frInvTimerMs are settable per transaction (for branches and provisionals from then on)', () => {
    const t = setup({ init: { frTimerMs: 30_000 } });
    t.up();
    t.ptx.frTimerMs = 1000;
    t.branch();
    t.h.advance(1000);
    expect(t.upLines()).toEqual([408]);
    t.drain();
  });

  it('a late 2xx on a branch that timed out still goes upstream (every 2xx is forwarded)', () => {
    const t = setup({ init: { frTimerMs: 2000 } });
    t.up();
    const a = t.branch();
    t.h.advance(2000);
    expect(t.upLines()).toEqual([408]);
    t.answer(a, 200);
    expect(t.upLines()).toEqual([200]);
    t.drain();
  });
});

describe('the failure hook (failure_route)', () => {
  it('adds a branch after a 503: the caller sees only the second destination\'s answer', () => {
    const seen: Array<{ status: number; local: boolean; data: unknown; avp: unknown }> = [];
    const t = setup({
      host: {
        onFailure: (p, best) => {
          seen.push({ status: best.status, local: best.local, data: best.data, avp: p.vars.get('state_test_var') });
          if (p.branches.length < 2) next(PBX_B);
        },
      },
    });
    const next = (target: Target) => t.branch(target);
    t.ptx.vars.set('state_test_var', 'set in the request route');
    t.up();
    const a = t.branch(PBX_A);
    t.answer(a, 503);
    expect(seen).toEqual([{ status: 503, local: false, data: '10.0.0.21', avp: 'set in the request route' }]);
    expect(t.down()).toEqual(['INVITE→10.0.0.21', 'ACK→10.0.0.21', 'INVITE→10.0.0.22']);
    const b = t.ptx.branches[1]!;
    t.answer(b, 180);
    t.answer(b, 200);
    expect(t.upLines()).toEqual([180, 200]);
    t.drain();
    expect(t.ptx.vars.get('state_test_var')).toBeUndefined();
  });

  it('runs after an fr_timer timeout (the branch is marked timedOut) and may try again; when it stops, the best goes up', () => {
    const timedOut: boolean[] = [];
    const ended: string[] = [];
    const t = setup({
      init: { frTimerMs: 2000 },
      host: {
        onFailure: (p, best, last) => {
          timedOut.push(best.timedOut);
          ended.push(`${last.index}:${last.status}${last.timedOut ? ' timeout' : ''}`);
          if (p.branches.length < 3) t.branch(p.branches.length === 1 ? PBX_B : PBX_A);
        },
      },
    });
    t.up();
    t.branch(PBX_A);
    t.h.advance(2000); // A silent → B
    expect(t.down()).toEqual(['INVITE→10.0.0.21', 'INVITE→10.0.0.21', 'INVITE→10.0.0.21', 'INVITE→10.0.0.22']);
    t.answer(t.ptx.branches[1]!, 486); // B busy → A again
    t.answer(t.ptx.branches[2]!, 404); // third and last
    // The hook sees the best outcome so far (B's 486 beats our own 408 for A; the 404 beats
    // both) and the branch that just ended.
    expect(timedOut).toEqual([true, false, false]);
    expect(ended).toEqual(['0:408 timeout', '1:486', '2:404']);
    expect(t.ptx.branches.map((b) => [b.status, b.timedOut])).toEqual([[408, true], [486, false], [404, false]]);
    // best of [408 local, 486, 404] is 404
    expect(t.upLines()).toEqual([404]);
    t.drain();
  });

  it('may reply instead', () => {
    const t = setup({ host: { onFailure: (p) => p.reply(480, 'Nobody Home') } });
    t.up();
    t.answer(t.branch(), 500);
    const ups = t.up();
    expect(ups.map((s) => `${s.msg.status} ${s.msg.reason}`)).toEqual(['480 Nobody Home']);
    t.drain();
  });

  it('a hook that throws is reported and the best response still goes upstream', () => {
    const t = setup({
      host: {
        onFailure: () => {
          throw new Error('route bug');
        },
      },
    });
    t.up();
    t.answer(t.branch(), 486);
    expect(t.upLines()).toEqual([486]);
    expect(t.h.errors).toHaveLength(1);
    t.h.errors.length = 0;
    t.drain();
  });

  it('a per-transaction hook replaces the host\'s', () => {
    const calls: string[] = [];
    const t = setup({ host: { onFailure: () => calls.push('host') } });
    t.ptx.onFailure = () => calls.push('mine');
    t.up();
    t.answer(t.branch(), 486);
    expect(calls).toEqual(['mine']);
    t.drain();
  });

  it('non-INVITE failover over UDP: Timer F / fr_timer on A, B answers', () => {
    const t = setup({
      method: 'REGISTER',
      init: { frTimerMs: 3000 },
      host: { onFailure: (p) => void (p.branches.length === 1 && t.branch(PBX_B)) },
    });
    t.branch(PBX_A);
    t.h.advance(3000);
    expect(t.down()).toEqual(['REGISTER→10.0.0.21', 'REGISTER→10.0.0.21', 'REGISTER→10.0.0.21', 'REGISTER→10.0.0.22']);
    t.answer(t.ptx.branches[1]!, 200);
    expect(t.upLines()).toEqual([200]);
    // A's retransmissions stopped when it was given up (and B answered at once).
    t.h.advance(10_000);
    expect(t.down()).toEqual([]);
    t.drain();
  });

  it('refuses branches past maxBranches', () => {
    const t = setup({ init: { maxBranches: 2 } });
    t.branch(PBX_A);
    t.branch(PBX_B);
    expect(t.ptx.addBranch({ target: PBX_A, bytes: Buffer.from('x'), branch: 'z9hG4bKx' })).toBe('too-many-branches');
    t.ptx.reply(500);
    t.drain();
  });
});

describe('odd peers and modes', () => {
  it('an RFC 2543 caller (no magic cookie): retransmissions absorbed, its ACK matched by the To tag of the forwarded final', () => {
    const t = setup({ req: { branch: '' } });
    t.up();
    const a = t.branch();
    expect(t.fromCaller({})).toBe('absorbed');
    expect(t.upLines()).toEqual([100]);
    t.answer(a, 486, { toTag: 'busy-tag' });
    expect(t.upLines()).toEqual([486]);
    expect(t.fromCaller({ method: 'ACK', toTag: 'another' })).toBeUndefined();
    expect(t.fromCaller({ method: 'ACK', toTag: 'busy-tag' })).toBe('absorbed');
    expect(t.ptx.server.state).toBe('confirmed');
    t.drain();
  });

  it('RFC 6026 off: the server transaction ends with the first 2xx, a second branch\'s 2xx still goes up', () => {
    const t = setup({ layer: { rfc6026: false } });
    t.up();
    const a = t.branch(PBX_A);
    const b = t.branch(PBX_B);
    t.answer(b, 180);
    t.answer(a, 200);
    expect(t.ptx.server.terminated).toBe(true);
    t.answer(b, 200);
    expect(t.upLines()).toEqual([180, 200, 200]);
    // Retransmissions of a 2xx now match nothing: the core relays them statelessly (§16.7).
    expect(t.h.layer.table.matchResponse(responseTo(t.outs.get(a)!, 200, { toTag: 'tag-0' }))).toBeUndefined();
    t.drain();
  });

  it('the caller cannot be reached (transport error upstream): the branches still end on their own', () => {
    const t = setup({ init: { frTimerMs: 2000 } });
    t.up();
    t.branch();
    t.ptx.server.transportError();
    expect(t.ptx.server.terminated).toBe(true);
    expect(t.ptx.addBranch({ target: PBX_B, bytes: Buffer.from('x'), branch: 'z9hG4bKx' })).toBe('terminated');
    t.drain();
  });
});

describe('transports', () => {
  it('TCP in, UDP out: responses on the caller\'s connection, retransmissions downstream', () => {
    const t = setup({ upstream: UPSTREAM_TCP });
    expect(t.up().map((s) => [s.msg.status, s.target.connectionId])).toEqual([[100, 7]]);
    const a = t.branch(PBX_A);
    t.h.advance(1600);
    expect(t.down()).toEqual(['INVITE→10.0.0.21', 'INVITE→10.0.0.21', 'INVITE→10.0.0.21']);
    t.answer(a, 486);
    expect(t.up().map((s) => [s.msg.status, s.target.protocol])).toEqual([[486, 'tcp']]);
    // no Timer G over TCP: nothing more upstream, Timer H still bounds the wait for the ACK
    t.h.advance(31_000);
    expect(t.up()).toEqual([]);
    t.drain();
  });

  it('UDP in, TCP out: no retransmissions downstream (Timer B still applies), Timer G upstream', () => {
    const t = setup({ init: { frTimerMs: 60_000 } });
    t.up();
    t.branch(PBX_TCP);
    t.h.advance(32_000);
    expect(t.down()).toEqual(['INVITE→10.0.0.23']);
    // Timer B → 408 upstream, retransmitted over UDP by Timer G until the ACK
    expect(t.upLines()).toEqual([408]);
    t.h.advance(600);
    expect(t.upLines()).toEqual([408]);
    expect(t.fromCaller({ method: 'ACK', toTag: 'x' })).toBe('absorbed');
    t.h.advance(10_000);
    expect(t.upLines()).toEqual([]);
    t.drain();
  });

  it('a transport error on the branch counts as 503 (§16.9), so the caller gets 500', () => {
    const t = setup();
    t.up();
    t.branch().client.transportError();
    expect(t.upLines()).toEqual([500]);
    t.drain();
  });
});

describe('bounds', () => {
  it('the table cap: ProxyTransaction.create answers "full" beyond it', () => {
    const h = new Harness({ maxTransactions: 2 });
    const mk = (i: number) => {
      const req = request({ branch: `z9hG4bKcap${i}` });
      return ProxyTransaction.create(h.layer, { request: req, key: requestKey(req), source: { address: '192.0.2.1', port: 5062 }, upstream: UPSTREAM_UDP });
    };
    const a = mk(1);
    const b = mk(2);
    expect(a).toBeInstanceOf(ProxyTransaction);
    expect(b).toBeInstanceOf(ProxyTransaction);
    expect(mk(3)).toBe('full');
    expect(h.layer.stats.refusedFull).toBe(1);
    (a as ProxyTransaction).reply(404);
    h.advance(40_000);
    expect(mk(3)).toBeInstanceOf(ProxyTransaction);
  });

  it('ACK and CANCEL never create one', () => {
    const h = new Harness();
    for (const method of ['ACK', 'CANCEL']) {
      const req = request({ method });
      expect(() => ProxyTransaction.create(h.layer, { request: req, key: requestKey(req), source: { address: '192.0.2.1', port: 5062 }, upstream: UPSTREAM_UDP })).toThrow(RangeError);
    }
  });

  it('many transactions through every path leave no timer and no table entry behind', () => {
    const h = new Harness();
    let ended = 0;
    for (let i = 0; i < 200; i++) {
      const req = request({ branch: `z9hG4bKmany${i}`, callId: `many-${i}` });
      const ptx = ProxyTransaction.create(h.layer, {
        request: req,
        key: requestKey(req),
        source: { address: '192.0.2.1', port: 5062 },
        upstream: i % 3 === 0 ? UPSTREAM_TCP : UPSTREAM_UDP,
        frTimerMs: 1000 + (i % 7) * 500,
        host: { onTerminated: () => ended++ },
      });
      if (ptx === 'full') throw new Error('full');
      const t = i % 2 === 0 ? PBX_A : PBX_TCP;
      const out = outgoing({ ourBranch: `z9hG4bKb${i}`, callId: `many-${i}` });
      const b = ptx.addBranch({ target: t, bytes: out.bytes, branch: `z9hG4bKb${i}` });
      if (typeof b === 'string') throw new Error(b);
      const deliver = (status: number) => {
        const r = responseTo(out.msg, status, { toTag: 'x' });
        h.layer.table.matchResponse(r)?.receive(r);
      };
      switch (i % 5) {
        case 0: deliver(180); deliver(200); break;
        case 1: deliver(486); break;
        case 2: deliver(180); break; // fr_inv_timer → CANCEL, never answered
        case 3: break; // silent: fr_timer
        case 4: deliver(180); ptx.receiveCancel(undefined); deliver(487); break;
      }
    }
    h.advance(600_000);
    expect(ended).toBe(200);
    expect(h.pendingTimers).toBe(0);
    expect(h.layer.table.serverCount).toBe(0);
    expect(h.layer.table.clientCount).toBe(0);
    expect(h.errors).toEqual([]);
  });
});
