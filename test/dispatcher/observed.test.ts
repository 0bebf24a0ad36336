/**
 * What the dispatcher keeps for operators: the probe round-trip moving average (RFC 6298
 * smoothing), probe failures, the failover hook, and requests sent in the last minute, as
 * `dispatcher dump` reports them. Fake time for probes; the sampler is driven second by second.
 */
import { describe, expect, it } from 'vitest';
import { DispatcherHolder } from '../../src/dispatcher/holder.js';
import { dumpSets } from '../../src/dispatcher/dump.js';
import { Prober } from '../../src/dispatcher/probe.js';
import { SentRateSampler, SENT_WINDOW_S } from '../../src/dispatcher/sent-rate.js';
import { parseMessage } from '../../src/sip/parse.js';
import { FakeClock, row } from './helpers.js';

const A = 'sip:10.0.0.1:5060';
const B = 'sip:10.0.0.2:5060';
const key = { callId: 'c', fromUri: 'sip:a@x', toUri: 'sip:b@x', requestUri: 'sip:b@x' };

describe('probe latency and failures', () => {
  it('keeps the last round trip and a moving average that moves 1/8 of the way per answer', async () => {
    const clock = new FakeClock();
    const holder = new DispatcherHolder({ clock });
    await holder.reload([row(1, A)]);
    const sent: Buffer[] = [];
    const prober = new Prober(holder, {
      io: {
        send: (_t, bytes) => sent.push(bytes),
        localVia: () => ({ transport: 'UDP', host: '192.0.2.10', port: 5060 }),
        now: () => clock.now(),
        setTimeout: (fn, ms) => clock.setTimeout(fn, ms),
        clearTimeout: (h) => clock.clearTimeout(h),
      },
      config: { interval: 10, t1Ms: 5000, timeoutMs: 30_000, failures: 5 },
    });
    const answer = (afterMs: number, status: number): void => {
      const branch = parseMessage(sent[sent.length - 1]!).topVia!.branch!;
      clock.advance(afterMs);
      expect(prober.handleResponse(branch, status)).toBe(true);
    };
    prober.start();
    answer(40, 200); // first sample sets the average
    clock.advance(10_000 - 40);
    answer(120, 200); // 40 + (120 - 40) / 8 = 50
    clock.advance(10_000 - 120);
    answer(10, 503); // a 503 is a failure, but its round trip counts: 50 + (10 - 50) / 8 = 45
    const d = dumpSets(holder.current).sets[0]!.destinations[0]!;
    expect(d.probeLatencyMs).toEqual({ last: 10, avg: 45 });
    expect(d.probeFailures).toBe(1);
    // A timeout is a failure with no round trip: the last is unknown, the average stays.
    clock.advance(10_000 - 10);
    clock.advance(40_000);
    const after = dumpSets(holder.current).sets[0]!.destinations[0]!;
    expect(after.probeFailures).toBe(2);
    expect(after.probeLatencyMs).toEqual({ last: null, avg: 45 });
    prober.stop();
  });
});

describe('requests sent in the last minute', () => {
  it('counts what was sent within the last 60 samples, and survives a reload', async () => {
    const holder = new DispatcherHolder({ clock: new FakeClock() });
    await holder.reload([row(1, A), row(1, B)]);
    const sampler = new SentRateSampler(holder);
    const dest = (uri: string) => holder.current.set(1)!.destinations.find((d) => d.uri === uri)!;
    for (let i = 0; i < 10; i++) holder.current.select(1, 'round-robin', key);
    sampler.sample();
    expect(sampler.sentLastMinute(dest(A))).toBe(5);
    // 30 s later, 4 more to each.
    for (let s = 0; s < 30; s++) sampler.sample();
    for (let i = 0; i < 8; i++) holder.current.select(1, 'round-robin', key);
    sampler.sample();
    expect(sampler.sentLastMinute(dest(A))).toBe(9);
    // A reload keeps the destinations' history.
    await holder.reload([row(1, A), row(1, B)]);
    expect(sampler.sentLastMinute(dest(A))).toBe(9);
    // Once the first ten are more than a minute old, only the later 4 count.
    for (let s = 0; s < SENT_WINDOW_S - 30; s++) sampler.sample();
    expect(sampler.sentLastMinute(dest(A))).toBe(4);
    for (let s = 0; s < SENT_WINDOW_S; s++) sampler.sample();
    expect(sampler.sentLastMinute(dest(A))).toBe(0);
    expect(dest(A).stats.requestsSent).toBe(9);
    const dumped = dumpSets(holder.current, () => false, (d) => sampler.sentLastMinute(d)).sets[0]!.destinations;
    expect(dumped.map((d) => [d.requestsSent, d.requestsLastMinute])).toEqual([
      [9, 0],
      [9, 0],
    ]);
  });

  it('counts failovers through the hook the transaction layer will call', async () => {
    const holder = new DispatcherHolder({ clock: new FakeClock() });
    await holder.reload([row(1, A)]);
    const d = holder.current.set(1)!.destinations[0]!;
    holder.current.countFailover(d);
    holder.current.countFailover(d);
    expect(dumpSets(holder.current).sets[0]!.destinations[0]!.failovers).toBe(2);
  });
});
