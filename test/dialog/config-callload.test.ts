/**
 * The `dialog` and `cdr` config keys (defaults, overrides, one clear line per bad value), and
 * call-load selection (algorithm 10) over live counts: maxload as a ceiling, 0 or absent as
 * unlimited, failover that skips full destinations.
 */
import { describe, expect, it } from 'vitest';
import { applyConfig, defaultConfig } from '../../src/config/schema.js';
import { DispatcherHolder } from '../../src/dispatcher/holder.js';
import { parseAlgorithm } from '../../src/dispatcher/algorithm.js';
import type { DispatcherRow } from '../../src/dispatcher/types.js';
import { catchError } from '../helpers/errors.js';
import { FakeClock, KEY, row } from '../dispatcher/helpers.js';

describe('dialog and cdr config', () => {
  it('dialogs are off by default (nothing changes for current users); the README defaults', () => {
    expect(defaultConfig().dialog).toEqual({ enabled: false, timeoutS: 43_200, max: 100_000, timerCS: 180, keepaliveS: 0, keepaliveFailures: 2 });
    expect(defaultConfig().cdr).toEqual({ enabled: true, flushMs: 1000, keepDays: 90, maxQueue: 100_000 });
  });

  it('takes every key', () => {
    const c = applyConfig(defaultConfig(), {
      dialog: { enabled: true, timeoutS: 3600, max: 5000, timerCS: 200, keepaliveS: 30, keepaliveFailures: 3 },
      cdr: { enabled: false, flushMs: 250, keepDays: 0, maxQueue: 10 },
    });
    expect(c.dialog).toEqual({ enabled: true, timeoutS: 3600, max: 5000, timerCS: 200, keepaliveS: 30, keepaliveFailures: 3 });
    expect(c.cdr).toEqual({ enabled: false, flushMs: 250, keepDays: 0, maxQueue: 10 });
  });

  it.each([
    [{ dialog: { enabled: 'maybe' } }, 'config dialog.enabled: expected true or false'],
    [{ dialog: { timeoutS: 0 } }, 'config dialog.timeoutS: expected a whole number from 1 to 604800, got 0'],
    [{ dialog: { max: -1 } }, 'config dialog.max: expected a whole number from 1 to 10000000'],
    [{ dialog: { keepalive: 30 } }, 'config dialog.keepalive: unknown option (known: enabled, timeoutS, max, timerCS, keepaliveS, keepaliveFailures)'],
    [{ dialog: { keepaliveS: -1 } }, 'config dialog.keepaliveS: expected a whole number from 0 to 86400, got -1'],
    [{ dialog: { keepaliveS: 1.5 } }, 'config dialog.keepaliveS: expected a whole number from 0 to 86400'],
    [{ dialog: { keepaliveFailures: 0 } }, 'config dialog.keepaliveFailures: expected a whole number from 1 to 100, got 0'],
    [{ dialog: 'on' }, 'config dialog: expected a mapping'],
    [{ cdr: { flushMs: 5 } }, 'config cdr.flushMs: expected a whole number from 10 to 60000, got 5'],
    [{ cdr: { keepDays: 'forever' } }, 'config cdr.keepDays: expected a whole number from 0 to 36500'],
  ])('refuses %j with one line', (input, message) => {
    const err = catchError(() => applyConfig(defaultConfig(), input));
    expect(err.message.startsWith(message)).toBe(true);
    expect(err.message).not.toContain('\n');
  });
});

async function load(rows: DispatcherRow[]) {
  const holder = new DispatcherHolder({ clock: new FakeClock() });
  await holder.reload(rows);
  return holder;
}

describe('call-load (algorithm 10)', () => {
  const A = 'sip:10.0.2.1:5060';
  const B = 'sip:10.0.2.2:5060';
  const C = 'sip:10.0.2.3:5060';

  it('is algorithm 10, by number and by name', () => {
    expect(parseAlgorithm(10)).toBe('call-load');
    expect(parseAlgorithm('call-load')).toBe('call-load');
  });

  it('picks the fewest calls relative to maxload; a full one is skipped; all full: none', async () => {
    const h = await load([row(1, A, { attrs: 'maxload=2' }), row(1, B, { attrs: 'maxload=4' })]);
    const picked: string[] = [];
    for (let i = 0; i < 6; i++) {
      const d = h.current.select(1, 10, KEY)!;
      picked.push(d.uri);
      d.stats.calls.active++; // what the dialog tracker does when the call is created
    }
    // loads: A 0/2, B 0/4 → A; A 1/2=0.5, B 0 → B; B 0.25 → B; A .5 = B .5 → A (set order); B .5 → B ...
    expect(picked.filter((u) => u === A)).toHaveLength(2);
    expect(picked.filter((u) => u === B)).toHaveLength(4);
    expect(h.current.select(1, 10, KEY)).toBeNull();
    // A call ends on A: A takes the next one.
    h.current.set(1)!.destinations.find((d) => d.uri === A)!.stats.calls.active--;
    expect(h.current.select(1, 'call-load', KEY)!.uri).toBe(A);
  });

  it('maxload 0 or absent is unlimited, never full', async () => {
    const h = await load([row(1, A, { attrs: 'maxload=0' }), row(1, B)]);
    for (let i = 0; i < 1000; i++) h.current.select(1, 10, KEY)!.stats.calls.active++;
    const [a, b] = h.current.set(1)!.destinations;
    expect(a!.stats.calls.active).toBe(500);
    expect(b!.stats.calls.active).toBe(500);
  });

  it('failover (ds_next_dst) yields the next destination that is neither tried nor full', async () => {
    const h = await load([row(1, A, { attrs: 'maxload=1' }), row(1, B, { attrs: 'maxload=1' }), row(1, C, { attrs: 'maxload=1' })]);
    const [a, b, c] = h.current.set(1)!.destinations;
    b!.stats.calls.active = 1;
    expect(h.current.next(1, [a!])).toBe(c);
    c!.stats.calls.active = 1;
    expect(h.current.next(1, [a!])).toBeNull();
  });

  it('the count survives a reload: the same counter object carries over', async () => {
    const h = await load([row(1, A)]);
    const before = h.current.set(1)!.destinations[0]!;
    before.stats.calls.active = 3;
    await h.reload([row(1, A), row(1, B)]);
    const after = h.current.set(1)!.destinations.find((d) => d.uri === A)!;
    expect(after.stats.calls).toBe(before.stats.calls);
    before.stats.calls.active--; // a call that began before the reload ends
    expect(after.stats.calls.active).toBe(2);
  });
});
