import { describe, expect, it } from 'vitest';
import { DispatcherHolder } from '../../src/dispatcher/holder.js';
import { dumpSets } from '../../src/dispatcher/dump.js';
import { Prober, isProbeBranch, type ProbeConfig } from '../../src/dispatcher/probe.js';
import type { DispatcherRow, StateChange } from '../../src/dispatcher/types.js';
import { parseMessage } from '../../src/sip/parse.js';
import type { Target } from '../../src/transport/types.js';
import { FakeClock, row } from './helpers.js';

const A = 'sip:10.0.0.1:5060';
const B = 'sip:10.0.0.2:5060';

interface Sent {
  at: number;
  target: Target;
  bytes: Buffer;
}

async function setup(rows: DispatcherRow[], config: Partial<ProbeConfig> = {}, sets?: Record<number, Partial<ProbeConfig>>) {
  const clock = new FakeClock();
  const changes: StateChange[] = [];
  const holder = new DispatcherHolder({ clock, onStateChange: (c) => changes.push(c) });
  await holder.reload(rows);
  const sent: Sent[] = [];
  const start = clock.now();
  const prober = new Prober(holder, {
    io: {
      send: (target, bytes) => sent.push({ at: clock.now() - start, target, bytes }),
      localVia: (t) => ({ transport: t.protocol === 'tcp' ? 'TCP' : 'UDP', host: '192.0.2.10', port: 5060 }),
      now: () => clock.now(),
      setTimeout: (fn, ms) => clock.setTimeout(fn, ms),
      clearTimeout: (h) => clock.clearTimeout(h),
    },
    config: { interval: 3600, ...config },
    sets,
  });
  const branchOf = (s: Sent) => parseMessage(s.bytes).topVia!.branch!;
  const dest = (uri: string, setid = 1) => holder.current.set(setid)!.destinations.find((d) => d.uri === uri)!;
  return { clock, changes, holder, sent, prober, branchOf, dest };
}

describe('the OPTIONS a probe sends', () => {
  it('is a well-formed RFC 3261 §11 request to the destination URI', async () => {
    const { prober, sent } = await setup([row(1, 'sip:pbx@10.0.0.1:5070;transport=tcp')]);
    prober.start();
    expect(sent).toHaveLength(1);
    expect(sent[0]!.target).toEqual({ protocol: 'tcp', address: '10.0.0.1', port: 5070 });
    const m = parseMessage(sent[0]!.bytes);
    expect(m.method).toBe('OPTIONS');
    expect(m.requestUriText).toBe('sip:pbx@10.0.0.1:5070;transport=tcp');
    expect(m.topVia!.transport).toBe('TCP');
    expect(m.topVia!.host).toBe('192.0.2.10');
    expect(m.topVia!.branch!.startsWith('z9hG4bKsipctlp.')).toBe(true);
    expect(isProbeBranch(m.topVia!.branch!)).toBe(true);
    expect(m.maxForwards).toBe(70);
    expect(m.cseq).toEqual({ seq: 1, method: 'OPTIONS' });
    expect(m.from.tag).toBeTruthy();
    expect(m.to.uri.toString()).toBe('sip:pbx@10.0.0.1:5070;transport=tcp');
    expect(m.to.tag).toBeUndefined();
    expect(m.callId.length).toBeGreaterThan(10);
    expect(m.header('user-agent')).toMatch(/^sipctl/);
    expect(m.contentLength).toBe(0);
    prober.stop();
  });

  it('uses a fresh branch per probe and the ping_from attribute as From', async () => {
    const { prober, sent, clock } = await setup([row(1, A, { attrs: 'ping_from=sip:health@lb.example.com' })], { interval: 60, t1Ms: 100 });
    prober.start();
    clock.advance(60_000);
    const branches = new Set(sent.map((s) => parseMessage(s.bytes).topVia!.branch));
    expect(branches.size).toBe(2); // two probes (each with its retransmissions)
    expect(parseMessage(sent[0]!.bytes).from.uri.toString()).toBe('sip:health@lb.example.com');
    prober.stop();
  });
});

describe('UDP retransmission (RFC 3261 §17.1.2.2)', () => {
  it('retransmits at Timer E = T1 doubling to T2, until Timer F = 64*T1, then counts a failure', async () => {
    const { prober, sent, clock, dest, changes } = await setup([row(1, A)]);
    prober.start();
    clock.advance(31_999);
    expect(sent.map((s) => s.at)).toEqual([0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
    expect(new Set(sent.map((s) => s.bytes.toString())).size).toBe(1); // the same request each time
    expect(dest(A).state).toBe('active');
    clock.advance(1);
    expect(dest(A).state).toBe('inactive');
    expect(dest(A).stats.lastProbe).toMatchObject({ ok: false, reason: 'timeout: no final response in 32000 ms' });
    expect(changes).toEqual([{ setid: 1, uri: A, from: 'active', to: 'inactive', reason: 'probe: 1 consecutive failures (timeout: no final response in 32000 ms)' }]);
    clock.advance(10_000);
    expect(sent).toHaveLength(11);
    expect(prober.inFlight).toBe(0);
    prober.stop();
  });

  it('scales with T1, and Timer F follows 64*T1 unless set', async () => {
    const { prober, sent, clock, dest } = await setup([row(1, A)], { t1Ms: 100 });
    prober.start();
    clock.advance(6_399);
    expect(sent.map((s) => s.at)).toEqual([0, 100, 300, 700, 1500, 3100, 6300]);
    expect(dest(A).state).toBe('active');
    clock.advance(1);
    expect(dest(A).state).toBe('inactive');
    prober.stop();
  });

  it('does not retransmit over TCP; Timer F still applies', async () => {
    const { prober, sent, clock, dest } = await setup([row(1, 'sip:10.0.0.1;transport=tcp')]);
    prober.start();
    clock.advance(32_000);
    expect(sent.map((s) => s.at)).toEqual([0]);
    expect(dest('sip:10.0.0.1;transport=tcp').state).toBe('inactive');
    prober.stop();
  });

  it('stops retransmitting on a provisional response, but still times out at Timer F', async () => {
    const { prober, sent, clock, dest, branchOf } = await setup([row(1, A)]);
    prober.start();
    clock.advance(600);
    expect(prober.handleResponse(branchOf(sent[0]!), 100)).toBe(true);
    clock.advance(31_399);
    expect(sent.map((s) => s.at)).toEqual([0, 500]);
    expect(dest(A).state).toBe('active');
    clock.advance(1);
    expect(dest(A).state).toBe('inactive');
    prober.stop();
  });
});

describe('probe outcomes and state transitions', () => {
  it('a 200 ends the probe with its latency; state stays active', async () => {
    const { prober, sent, clock, dest, branchOf } = await setup([row(1, A)]);
    prober.start();
    clock.advance(700);
    expect(prober.handleResponse(branchOf(sent[0]!), 200)).toBe(true);
    expect(dest(A).stats.lastProbe).toEqual({ at: clock.now(), ok: true, status: 200, latencyMs: 700 });
    clock.advance(30_000);
    expect(sent).toHaveLength(2); // the retransmission at 500 only
    expect(dest(A).state).toBe('active');
    expect(prober.inFlight).toBe(0);
    prober.stop();
  });

  it('tells probe branches from others', async () => {
    const { prober } = await setup([row(1, A)]);
    expect(prober.handleResponse('z9hG4bK776asdhds', 200)).toBe(false);
    expect(prober.handleResponse('z9hG4bKsipctlp.zz.000000', 200)).toBe(true); // late answer: ours, consumed
    expect(isProbeBranch('z9hG4bKsipctl.other')).toBe(false);
  });

  it('needs `failures` consecutive failures to go inactive, `successes` to come back', async () => {
    const { prober, sent, clock, dest, branchOf, holder, changes } = await setup([row(1, A)], { interval: 10, failures: 2, successes: 2, timeoutMs: 5000 });
    prober.start();
    const answerLast = (status: number) => {
      expect(prober.handleResponse(branchOf(sent.at(-1)!), status)).toBe(true);
    };
    answerLast(503); // failure 1 (code not in okCodes)
    expect(dest(A).state).toBe('active');
    expect(dest(A).stats.lastProbe).toMatchObject({ ok: false, status: 503, reason: 'status 503 not in ok codes (200)' });
    expect(dumpSets(holder.current, (s) => prober.isProbed(s)).sets[0]!.destinations[0]!.flags).toBe('TP');
    clock.advance(10_000);
    answerLast(200); // success resets the failure count
    clock.advance(10_000);
    answerLast(500);
    expect(dest(A).state).toBe('active');
    clock.advance(10_000); // next probe: no answer → timeout at +5 s
    clock.advance(5_000);
    expect(dest(A).state).toBe('inactive');
    expect(dumpSets(holder.current, (s) => prober.isProbed(s)).sets[0]!.destinations[0]!.flags).toBe('IP');
    clock.advance(5_000);
    answerLast(200);
    expect(dest(A).state).toBe('inactive');
    clock.advance(10_000);
    answerLast(200);
    expect(dest(A).state).toBe('active');
    expect(changes.map((c) => `${c.from}->${c.to}`)).toEqual(['active->inactive', 'inactive->active']);
    prober.stop();
  });

  it('accepts the configured ok codes, per set', async () => {
    const { prober, sent, dest, branchOf } = await setup([row(1, A), row(2, B)], {}, { 2: { okCodes: [200, 404] } });
    prober.start();
    const toB = sent.find((s) => s.target.address === '10.0.0.2')!;
    const toA = sent.find((s) => s.target.address === '10.0.0.1')!;
    prober.handleResponse(branchOf(toB), 404);
    prober.handleResponse(branchOf(toA), 404);
    expect(dest(B, 2).state).toBe('active');
    expect(dest(B, 2).stats.lastProbe!.ok).toBe(true);
    expect(dest(A).state).toBe('inactive');
    prober.stop();
  });

  it('brings a probing destination up, and never probes or changes a disabled one', async () => {
    const { prober, sent, clock, dest, branchOf, holder } = await setup([row(1, A, { flags: 8 }), row(1, B, { flags: 4 })], { interval: 30 });
    prober.start();
    expect(sent.map((s) => s.target.address)).toEqual(['10.0.0.1']);
    prober.handleResponse(branchOf(sent[0]!), 200);
    expect(dest(A).state).toBe('active');
    // admin disables A while a probe is out: the answer is recorded, the state stays
    clock.advance(30_000);
    const inFlight = sent.at(-1)!;
    holder.current.setState(1, A, 'disabled', 'admin');
    prober.handleResponse(branchOf(inFlight), 200);
    expect(dest(A).state).toBe('disabled');
    expect(dest(A).stats.lastProbe!.ok).toBe(true);
    const before = sent.length;
    clock.advance(120_000);
    expect(sent.length).toBe(before); // neither is probed any more
    prober.stop();
  });

  it('sends one probe per destination at a time and none when the interval is 0', async () => {
    const { prober, sent, clock } = await setup([row(1, A), row(2, B)], { interval: 1 }, { 2: { interval: 0 } });
    prober.start();
    clock.advance(3_000); // interval 1 s, but the first probe waits for Timer F (32 s)
    expect(new Set(sent.map((s) => parseMessage(s.bytes).topVia!.branch)).size).toBe(1);
    expect(sent.every((s) => s.target.address === '10.0.0.1')).toBe(true);
    expect(prober.isProbed(2)).toBe(false);
    prober.stop();
  });

  it('follows reloads: an answer lands on the reloaded destination, new sets get probed', async () => {
    const { prober, sent, dest, branchOf, holder } = await setup([row(1, A, { id: 1, flags: 8 })]);
    prober.start();
    const first = sent[0]!;
    await holder.reload([row(1, A, { id: 1, flags: 8 }), row(5, B, { id: 2 })]);
    expect(sent.some((s) => s.target.address === '10.0.0.2')).toBe(true);
    prober.handleResponse(branchOf(first), 200);
    expect(dest(A).state).toBe('active');
    prober.stop();
  });

  it('stop() cancels every timer', async () => {
    const { prober, clock } = await setup([row(1, A), row(1, B)], { interval: 5 });
    prober.start();
    expect(clock.pending).toBeGreaterThan(0);
    prober.stop();
    expect(clock.pending).toBe(0);
  });
});
