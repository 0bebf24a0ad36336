/**
 * The layer's timer queue: one clock timer for every transaction timer, each firing at its
 * exact due time, in due order (ties: the order armed), none left behind.
 */
import { describe, expect, it } from 'vitest';
import { TimerQueue, type TimerEntry } from '../../src/transaction/timer-queue.js';
import { FakeClock } from './helpers.js';

function setup() {
  const clock = new FakeClock(0);
  const fired: Array<{ at: number; kind: number }> = [];
  const owner = { onTimer: (kind: number) => fired.push({ at: clock.now(), kind }) };
  const q = new TimerQueue(clock, (e) => e.owner.onTimer(e.kind));
  return { clock, fired, owner, q };
}

describe('TimerQueue', () => {
  it('fires each timer at its due time, in order, ties in the order armed, on one clock timer', () => {
    const { clock, fired, owner, q } = setup();
    q.add(owner, 1, 500);
    q.add(owner, 2, 100);
    q.add(owner, 3, 500);
    q.add(owner, 4, 32_000);
    expect(clock.pending).toBe(1);
    clock.advance(40_000);
    expect(fired).toEqual([
      { at: 100, kind: 2 },
      { at: 500, kind: 1 },
      { at: 500, kind: 3 },
      { at: 32_000, kind: 4 },
    ]);
    expect(q.size).toBe(0);
    expect(clock.pending).toBe(0);
  });

  it('a timer armed while firing runs at its own time (a retransmission timer re-armed before a longer one)', () => {
    const { clock, fired, q } = setup();
    const owner = {
      onTimer: (kind: number) => {
        fired.push({ at: clock.now(), kind });
        if (kind === 1 && clock.now() < 2000) q.add(owner, 1, 1000);
        if (kind === 1 && clock.now() === 2000) q.add(owner, 9, 0);
      },
    };
    q.add(owner, 1, 1000);
    q.add(owner, 2, 1500);
    clock.advance(10_000);
    expect(fired).toEqual([
      { at: 1000, kind: 1 },
      { at: 1500, kind: 2 },
      { at: 2000, kind: 1 },
      { at: 2000, kind: 9 },
    ]);
    expect(clock.pending).toBe(0);
  });

  it('removed timers never fire; removing the last one clears the clock timer', () => {
    const { clock, fired, owner, q } = setup();
    const a = q.add(owner, 1, 100);
    const b = q.add(owner, 2, 200);
    q.remove(a);
    q.remove(a); // twice is fine
    expect(clock.pending).toBe(1);
    q.remove(b);
    expect(q.size).toBe(0);
    expect(clock.pending).toBe(0);
    clock.advance(1000);
    expect(fired).toEqual([]);
  });

  it('agrees with a sorted reference over many random arms and removals', () => {
    const { clock, fired, owner, q } = setup();
    let seed = 42;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const live: Array<{ e: TimerEntry; due: number; kind: number }> = [];
    const expected: Array<{ at: number; kind: number }> = [];
    for (let i = 0; i < 5000; i++) {
      if (live.length > 0 && rnd(3) === 0) {
        const [x] = live.splice(rnd(live.length), 1);
        q.remove(x!.e);
      } else {
        const ms = rnd(64_000);
        live.push({ e: q.add(owner, i, ms), due: ms, kind: i });
      }
    }
    for (const x of live.sort((a, b) => a.due - b.due || a.kind - b.kind)) expected.push({ at: x.due, kind: x.kind });
    clock.advance(70_000);
    expect(fired).toEqual(expected);
    expect(q.size).toBe(0);
    expect(clock.pending).toBe(0);
  });
});
