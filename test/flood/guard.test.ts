/**
 * The flood guard alone, on fake time: the window, the block and its end, exemption, the
 * table's cap, unblock, and what it logs (once per block, never per message).
 */
import { describe, expect, it } from 'vitest';
import { FloodGuard, type FloodLimits } from '../../src/flood/guard.js';

const T0 = Date.UTC(2026, 10, 26, 12, 0, 0);

interface LogLine {
  level: string;
  kind: string;
  message: string;
  fields: Record<string, unknown>;
}

function setup(limits: Partial<FloodLimits> = {}, exempt: (address: string, port: number) => boolean = () => false) {
  const clock = { t: T0, now: () => clock.t };
  const lines: LogLine[] = [];
  const exemptAsked: string[] = [];
  const guard = new FloodGuard({
    limits: { maxRequests: 10, windowS: 2, blockS: 60, maxTracked: 1000, ...limits },
    isExempt: (address, port) => {
      exemptAsked.push(address);
      return exempt(address, port);
    },
    log: { limited: (level, kind, message, fields) => lines.push({ level, kind, message, fields: { ...fields } }) },
    clock,
  });
  /** n messages from `address`, `stepMs` apart; returns how many were allowed. */
  const send = (address: string, n: number, stepMs = 0, port = 5060): number => {
    let allowed = 0;
    for (let i = 0; i < n; i++) {
      if (guard.allows(address, port)) allowed++;
      clock.t += stepMs;
    }
    return allowed;
  };
  return { guard, clock, lines, exemptAsked, send };
}

describe('flood guard: the window and the block', () => {
  it('allows maxRequests messages in a window; the next one starts a block and is dropped', () => {
    const { guard, send, lines } = setup();
    expect(send('192.0.2.1', 10, 100)).toBe(10);
    expect(guard.allows('192.0.2.1', 5060)).toBe(false);
    expect(guard.stats()).toMatchObject({ blocked: 1, blocks: 1, dropped: 1, tracked: 1 });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'warn', kind: 'flood.block', message: 'flood: blocking a source' });
    expect(lines[0]!.fields).toMatchObject({ source: '192.0.2.1', count: 11, windowS: 2, blockS: 60 });
  });

  it('drops everything a blocked source sends, counts it, and logs nothing per message', () => {
    const { guard, send, lines } = setup();
    send('192.0.2.1', 11);
    expect(send('192.0.2.1', 5000, 1)).toBe(0);
    expect(guard.stats()).toMatchObject({ blocked: 1, blocks: 1, dropped: 5001 });
    expect(lines).toHaveLength(1);
    const [view] = guard.list().sources;
    expect(view).toMatchObject({ address: '192.0.2.1', state: 'blocked', count: 11, dropped: 5001 });
  });

  it('counts per window: a source that stays at the limit in every window is never blocked', () => {
    const { guard, send } = setup();
    // 10 messages spread over each 2 s window (one every 200 ms), for 30 windows.
    expect(send('192.0.2.1', 300, 200)).toBe(300);
    expect(guard.stats().blocks).toBe(0);
  });

  it('blocks within one window when the window is exceeded, not before', () => {
    const { guard, clock, send } = setup();
    expect(send('192.0.2.1', 10, 150)).toBe(10); // 10 messages over 1.5 s
    clock.t = T0 + 1999; // still the first window
    expect(guard.allows('192.0.2.1', 5060)).toBe(false);
  });

  it('keeps other sources apart', () => {
    const { guard, send } = setup();
    send('192.0.2.1', 50);
    expect(send('192.0.2.2', 10)).toBe(10);
    expect(guard.list().sources.map((s) => s.address)).toEqual(['192.0.2.1', '192.0.2.2']);
  });

  it('treats an IPv4-mapped IPv6 source as the IPv4 source', () => {
    const { guard, send } = setup();
    send('192.0.2.1', 6);
    send('::ffff:192.0.2.1', 5);
    expect(guard.stats()).toMatchObject({ tracked: 1, blocked: 1 });
    expect(guard.allows('192.0.2.1', 5060)).toBe(false);
  });
});

describe('flood guard: the end of a block', () => {
  it('lets the source in again after blockS and logs the end with the drop count', () => {
    const { guard, clock, send, lines } = setup();
    send('192.0.2.1', 11);
    send('192.0.2.1', 99, 100); // 9.9 s of dropped traffic
    clock.t = T0 + 60_000 - 1;
    expect(guard.allows('192.0.2.1', 5060)).toBe(false);
    clock.t = T0 + 60_000;
    expect(guard.allows('192.0.2.1', 5060)).toBe(true);
    expect(lines.map((l) => l.message)).toEqual(['flood: blocking a source', 'flood: block ended']);
    expect(lines[1]).toMatchObject({ level: 'info' });
    expect(lines[1]!.fields).toMatchObject({ source: '192.0.2.1', dropped: 101, reason: 'expired', blockedS: 60 });
    // A fresh window: the budget is whole again.
    expect(send('192.0.2.1', 9)).toBe(9);
    expect(guard.allows('192.0.2.1', 5060)).toBe(false);
    expect(guard.stats().blocks).toBe(2);
  });

  it('ends the block of a source that went quiet when swept, and forgets it', () => {
    const { guard, clock, send, lines } = setup();
    send('192.0.2.1', 20);
    clock.t = T0 + 59_000;
    guard.sweep();
    expect(guard.stats()).toMatchObject({ blocked: 1, tracked: 1 });
    clock.t = T0 + 61_000;
    guard.sweep();
    expect(guard.stats()).toMatchObject({ blocked: 0, tracked: 0 });
    expect(lines[1]!.fields).toMatchObject({ source: '192.0.2.1', dropped: 10, reason: 'expired' });
  });

  it('sweeps sources that sent nothing for a whole window, and keeps the others', () => {
    const { guard, clock, send } = setup();
    send('192.0.2.1', 3);
    clock.t += 1500;
    send('192.0.2.2', 3);
    clock.t += 600; // 2.1 s after .1, 0.6 s after .2
    guard.sweep();
    expect(guard.stats().tracked).toBe(1);
    expect(guard.list().tracked).toBe(1);
    clock.t += 2000;
    guard.sweep();
    expect(guard.stats().tracked).toBe(0);
  });
});

describe('flood guard: exemption', () => {
  it('asks only when a source crosses the limit, once per window, and never blocks an exempt one', () => {
    const { guard, send, exemptAsked } = setup({}, (a) => a === '10.0.0.21');
    expect(send('10.0.0.21', 10)).toBe(10);
    expect(exemptAsked).toEqual([]);
    expect(send('10.0.0.21', 5000, 0)).toBe(5000);
    expect(exemptAsked).toEqual(['10.0.0.21']);
    expect(guard.stats()).toMatchObject({ blocks: 0, dropped: 0, exemptChecks: 1 });
    expect(guard.list().sources[0]).toMatchObject({ address: '10.0.0.21', state: 'exempt', count: 5010 });
  });

  it('asks again in the next window (a reload may have changed the answer)', () => {
    let exempt = true;
    const { guard, clock, send, exemptAsked } = setup({}, () => exempt);
    send('10.0.0.21', 20);
    clock.t += 2000;
    exempt = false;
    expect(send('10.0.0.21', 20)).toBe(10);
    expect(exemptAsked).toHaveLength(2);
    expect(guard.stats().blocked).toBe(1);
  });

  it('passes the source port of the message that crossed the limit', () => {
    const ports: number[] = [];
    const { send } = setup({}, (_a, port) => {
      ports.push(port);
      return false;
    });
    send('10.0.0.21', 11, 0, 5080);
    expect(ports).toEqual([5080]);
  });

  it('lifts the blocks of sources that a reload made exempt', () => {
    const exempt = new Set<string>();
    const { guard, send, lines } = setup({}, (a) => exempt.has(a));
    send('192.0.2.1', 11);
    send('192.0.2.2', 11);
    exempt.add('192.0.2.2');
    expect(guard.recheckExemptions()).toBe(1);
    expect(guard.stats().blocked).toBe(1);
    expect(guard.allows('192.0.2.2', 5060)).toBe(true);
    expect(guard.allows('192.0.2.1', 5060)).toBe(false);
    expect(lines.at(-1)!.fields).toMatchObject({ source: '192.0.2.2', reason: 'exempt' });
  });
});

describe('flood guard: unblock', () => {
  it('lifts a block at once and starts the count again', () => {
    const { guard, send, lines } = setup();
    send('2001:db8::7', 30);
    const r = guard.unblock('2001:db8::7');
    expect(r).toMatchObject({ address: '2001:db8::7', unblocked: true, dropped: 20 });
    expect(r.blockedSince).toBe(new Date(T0).toISOString());
    expect(lines.at(-1)!.fields).toMatchObject({ source: '2001:db8::7', reason: 'unblocked', dropped: 20 });
    expect(send('2001:db8::7', 10)).toBe(10);
    expect(guard.allows('2001:db8::7', 5060)).toBe(false);
  });

  it('says so when the address is not blocked, and changes nothing', () => {
    const { guard, send } = setup();
    send('192.0.2.1', 5);
    expect(guard.unblock('192.0.2.1')).toEqual({ address: '192.0.2.1', unblocked: false, dropped: 0, blockedSince: null });
    expect(guard.unblock('192.0.2.99').unblocked).toBe(false);
    expect(guard.stats()).toMatchObject({ tracked: 1, blocked: 0 });
  });
});

describe('flood guard: the table cap', () => {
  it('never tracks more than maxTracked sources, whatever a spray of addresses sends', () => {
    const { guard, send } = setup({ maxTracked: 500 });
    for (let i = 0; i < 100_000; i++) send(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 1);
    expect(guard.stats()).toMatchObject({ tracked: 500, evicted: 100_000 - 500, blocks: 0 });
  });

  it('takes over the least recently seen unblocked source first, and keeps blocked ones', () => {
    const { guard, send } = setup({ maxTracked: 3 });
    send('192.0.2.1', 11); // blocked
    send('192.0.2.2', 1);
    send('192.0.2.3', 1);
    send('192.0.2.2', 1); // .3 is now the least recently seen
    send('192.0.2.4', 1);
    const tracked = guard.list().sources.map((s) => s.address);
    expect(tracked).toEqual(['192.0.2.1']); // the only blocked or hot one
    expect(guard.stats()).toMatchObject({ tracked: 3, blocked: 1, evicted: 1 });
    // .3 was forgotten, .2 was kept: .2's count goes on from 2.
    expect(send('192.0.2.2', 8)).toBe(8);
    expect(guard.allows('192.0.2.2', 5060)).toBe(false);
    expect(guard.allows('192.0.2.1', 5060)).toBe(false);
  });

  it('only when every entry is blocked, takes over the block that ends soonest', () => {
    const { guard, clock, send, lines } = setup({ maxTracked: 2 });
    send('192.0.2.1', 11);
    clock.t += 1000;
    send('192.0.2.2', 11);
    send('192.0.2.3', 1);
    expect(guard.stats()).toMatchObject({ tracked: 2, blocked: 1, evicted: 1 });
    expect(guard.allows('192.0.2.1', 5060)).toBe(true); // its block was lost at the cap
    expect(guard.allows('192.0.2.2', 5060)).toBe(false);
    expect(lines.find((l) => l.kind === 'flood.evict')!.fields).toMatchObject({ source: '192.0.2.1', reason: 'evicted' });
  });
});

describe('flood guard: list', () => {
  it('shows blocked sources first (latest first), then hot ones by count, not the quiet ones', () => {
    const { guard, clock, send } = setup();
    send('192.0.2.1', 11);
    clock.t += 10;
    send('192.0.2.2', 11);
    send('192.0.2.3', 5); // half the budget: hot
    send('192.0.2.4', 8);
    send('192.0.2.5', 4); // quiet
    const r = guard.list();
    expect(r.sources.map((s) => [s.address, s.state])).toEqual([
      ['192.0.2.2', 'blocked'],
      ['192.0.2.1', 'blocked'],
      ['192.0.2.4', 'hot'],
      ['192.0.2.3', 'hot'],
    ]);
    expect(r).toMatchObject({ enabled: true, maxRequests: 10, windowS: 2, blockS: 60, tracked: 5, maxTracked: 1000, blocked: 2, omitted: 0 });
    expect(r.sources[0]).toMatchObject({
      blockedSince: new Date(T0 + 10).toISOString(),
      blockedUntil: new Date(T0 + 10 + 60_000).toISOString(),
    });
    expect(guard.list(1)).toMatchObject({ omitted: 3 });
  });

  it('no longer shows a source as hot once its window is over', () => {
    const { guard, clock, send } = setup();
    send('192.0.2.3', 9);
    expect(guard.list().sources).toHaveLength(1);
    clock.t += 2000;
    expect(guard.list().sources).toHaveLength(0);
  });
});
