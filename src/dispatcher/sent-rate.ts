/**
 * Requests sent to each destination over the last minute, for `sipctl dispatcher dump`.
 *
 * The per-request path only increments `requestsSent` (sets.ts); once a second this sampler
 * writes that count into the destination's ring of the last SENT_HISTORY_SLOTS seconds, so
 * "sent in the last minute" is the count now minus the count a minute ago: no clock read, no
 * allocation, no per-request bookkeeping of times.
 */
import type { DispatcherHolder } from './holder.js';
import type { Destination } from './types.js';

/** The window, in seconds. */
export const SENT_WINDOW_S = 60;
/** One slot per second of the window, plus the one being written. */
export const SENT_HISTORY_SLOTS = SENT_WINDOW_S + 1;

export class SentRateSampler {
  /** Seconds sampled so far; slot `tick % SENT_HISTORY_SLOTS` holds the latest sample. */
  private tick = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly holder: DispatcherHolder) {}

  /** Samples every second until stop(); the timer never keeps the process alive. */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.sample(), 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One sample of every destination loaded now (called by the timer; tests call it directly). */
  sample(): void {
    this.tick++;
    const slot = this.tick % SENT_HISTORY_SLOTS;
    for (const d of this.holder.current.all()) d.stats.sentHistory[slot] = d.stats.requestsSent;
  }

  /**
   * Requests sent to `d` in the last SENT_WINDOW_S seconds (to the last sample), or since it
   * was loaded when that is more recent. A destination loaded after the last sample counts
   * what it was sent since.
   */
  sentLastMinute(d: Destination): number {
    const ring = d.stats.sentHistory;
    // The oldest slot of the ring is the one the next sample will overwrite: SENT_WINDOW_S
    // seconds before the latest. A destination younger than that still holds 0 there.
    const oldest = ring[(this.tick + 1) % SENT_HISTORY_SLOTS]!;
    return Math.max(0, d.stats.requestsSent - oldest);
  }
}
