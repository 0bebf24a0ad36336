/**
 * Every transaction timer of one layer in a single queue (a binary min-heap by due time),
 * with one clock timer armed for the earliest. A proxy holds hundreds of thousands of SIP
 * timers (A, B, fr_timer per branch; L and M per answered call for 32 s); as Node timers
 * each would cost a Timeout object plus a closure (~240 bytes) and an async id, here an
 * entry costs one small object and a heap slot.
 *
 * Timers fire at exactly their due time on the injected clock (fake time in tests sees the
 * same instants as with one clock timer each), in due order, ties in the order they were
 * armed. A removed entry leaves the heap at once; when the heap empties, the clock timer is
 * cleared too, so an idle layer holds no timer at all.
 */
import type { Clock } from './timers.js';

export interface TimerOwner {
  onTimer(kind: number): void;
}

export class TimerEntry {
  due: number;
  seq: number;
  owner: TimerOwner;
  kind: number;
  /** Position in the heap; -1 when not queued (fired or removed). */
  index = -1;

  constructor(due: number, seq: number, owner: TimerOwner, kind: number) {
    this.due = due;
    this.seq = seq;
    this.owner = owner;
    this.kind = kind;
  }
}

export class TimerQueue {
  private readonly heap: TimerEntry[] = [];
  private readonly clock: Clock;
  private readonly fire: (entry: TimerEntry) => void;
  private seq = 0;
  /** The clock timer, and the due time it was armed for (Infinity: none). */
  private handle: unknown = undefined;
  private armedFor = Infinity;
  private readonly wake = (): void => this.onWake();
  /** Inside onWake: arming waits until the due timers have run. */
  private firing = false;

  /** `fire` runs each due entry; it must not throw (the layer wraps owners' callbacks). */
  constructor(clock: Clock, fire: (entry: TimerEntry) => void) {
    this.clock = clock;
    this.fire = fire;
  }

  /** Timers queued. */
  get size(): number {
    return this.heap.length;
  }

  add(owner: TimerOwner, kind: number, ms: number): TimerEntry {
    const e = new TimerEntry(this.clock.now() + ms, this.seq++, owner, kind);
    const heap = this.heap;
    e.index = heap.length;
    heap.push(e);
    this.up(e.index);
    // Only a new earliest timer needs the clock moved (not while firing: onWake arms at the end).
    if (heap[0] === e && e.due < this.armedFor && !this.firing) this.arm(e.due);
    return e;
  }

  remove(e: TimerEntry): void {
    const i = e.index;
    if (i < 0) return;
    e.index = -1;
    const heap = this.heap;
    const last = heap.pop()!;
    if (last !== e) {
      heap[i] = last;
      last.index = i;
      this.down(i);
      this.up(last.index);
    }
    if (heap.length === 0) this.disarm();
    // Otherwise an early wake-up just finds nothing due and arms for the new earliest.
  }

  private onWake(): void {
    this.handle = undefined;
    this.armedFor = Infinity;
    const heap = this.heap;
    this.firing = true;
    try {
      // Bounded: a callback that keeps arming 0 ms timers could otherwise hold the loop.
      for (let budget = 100_000; budget > 0 && heap.length > 0; budget--) {
        const top = heap[0]!;
        if (top.due > this.clock.now()) break;
        this.remove(top);
        this.fire(top);
      }
    } finally {
      this.firing = false;
    }
    if (heap.length > 0) this.arm(heap[0]!.due);
  }

  private arm(due: number): void {
    if (this.handle !== undefined) this.clock.clearTimeout(this.handle);
    this.armedFor = due;
    this.handle = this.clock.setTimeout(this.wake, Math.max(0, due - this.clock.now()));
  }

  private disarm(): void {
    if (this.handle !== undefined) this.clock.clearTimeout(this.handle);
    this.handle = undefined;
    this.armedFor = Infinity;
  }

  private less(a: TimerEntry, b: TimerEntry): boolean {
    return a.due < b.due || (a.due === b.due && a.seq < b.seq);
  }

  private up(i: number): void {
    const heap = this.heap;
    const e = heap[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = heap[p]!;
      if (!this.less(e, parent)) break;
      heap[i] = parent;
      parent.index = i;
      i = p;
    }
    heap[i] = e;
    e.index = i;
  }

  private down(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const e = heap[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.less(heap[r]!, heap[l]!) ? r : l;
      const child = heap[c]!;
      if (!this.less(child, e)) break;
      heap[i] = child;
      child.index = i;
      i = c;
    }
    heap[i] = e;
    e.index = i;
  }
}
