/** Shared test helpers: a fake clock (injected timers) and row builders. */
import type { Clock, DispatcherRow } from '../../src/dispatcher/types.js';

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

/** Manual time: timers fire only inside advance(), in time order. */
export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private timers = new Map<number, Timer>();

  constructor(start = 1_700_000_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), seq: id, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  get pending(): number {
    return this.timers.size;
  }

  /** Moves time forward by ms, firing due timers in order (bounded: at most 100,000 firings). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let fired = 0; fired < 100_000; fired++) {
      let next: [number, Timer] | undefined;
      for (const e of this.timers) {
        if (e[1].at <= end && (next === undefined || e[1].at < next[1].at || (e[1].at === next[1].at && e[1].seq < next[1].seq))) next = e;
      }
      if (next === undefined) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}

let nextId = 1;

export function row(setid: number, destination: string, extra: Partial<DispatcherRow> = {}): DispatcherRow {
  return { id: nextId++, setid, destination, flags: 0, priority: 0, attrs: '', description: '', ...extra };
}

export const KEY = { callId: 'a84b4c76e66710@pc33.example.com', fromUri: 'sip:alice@example.com', toUri: 'sip:bob@example.com', requestUri: 'sip:bob@example.com' };

export function keyFor(i: number) {
  return {
    callId: `call-${i}@host.example`,
    fromUri: `sip:user${i}@example.com`,
    toUri: `sip:dest${i}@example.com`,
    requestUri: `sip:dest${i}@example.com;user=phone`,
  };
}
