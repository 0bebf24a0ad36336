/**
 * The CDR writer: ended calls are queued in memory and written every `cdr.flushMs` in one
 * transaction (one INSERT per 200 rows), never on the per-message path. A flush runs at most
 * one at a time; rows that arrive meanwhile wait for the next. Graceful shutdown (close)
 * writes what is queued; a crash loses at most the rows of the last interval (plus the one
 * being written). The queue is bounded (`cdr.maxQueue`): when the database cannot keep up,
 * new rows are dropped and counted rather than memory growing without end.
 *
 * Retention: rows that started more than `cdr.keepDays` ago are deleted every hour (and
 * once at start), in the background.
 */
import type { Logger } from '../log/logger.js';
import type { CdrRepository, NewCdr } from '../store/cdr.js';
import type { CallRecord } from './tracker.js';

export interface CdrWriterOptions {
  /** Runs `fn` in one write transaction of the store. */
  write(fn: (cdr: CdrRepository) => Promise<void>): Promise<void>;
  /** Deletes rows started before `beforeMs`. */
  prune(beforeMs: number): Promise<number>;
  node: string;
  flushMs: number;
  keepDays: number;
  maxQueue: number;
  logger: Logger;
  now?: () => number;
}

export interface CdrWriterStats {
  queued: number;
  written: number;
  dropped: number;
  failedFlushes: number;
}

const PRUNE_EVERY_MS = 3_600_000;
/** A flush that fails keeps its rows for the next one; a batch larger than this waits for the next interval. */
const MAX_BATCH = 10_000;

export class CdrWriter {
  private queue: NewCdr[] = [];
  private flushing: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly pruneTimer: NodeJS.Timeout | undefined;
  private closed = false;
  readonly stats: CdrWriterStats = { queued: 0, written: 0, dropped: 0, failedFlushes: 0 };

  constructor(private readonly opts: CdrWriterOptions) {
    this.timer = setInterval(() => void this.flush(), opts.flushMs);
    this.timer.unref();
    if (opts.keepDays > 0) {
      this.pruneTimer = setInterval(() => void this.prune(), PRUNE_EVERY_MS);
      this.pruneTimer.unref();
      setImmediate(() => void this.prune());
    }
  }

  /** An ended call (the dialog tracker's onEnd). O(1): a row object pushed on the queue. */
  add(r: CallRecord): void {
    if (this.closed) return;
    if (this.queue.length >= this.opts.maxQueue) {
      this.stats.dropped++;
      this.opts.logger.limited('warn', 'cdr.dropped', 'CDR queue full (cdr.maxQueue): a call record was dropped; the database does not keep up', {
        queued: this.queue.length,
      });
      return;
    }
    const end = r.endMs;
    this.queue.push({
      node: this.opts.node,
      call_id: r.callId,
      from_uri: r.fromUri,
      to_uri: r.toUri,
      source: r.source,
      setid: r.setid,
      destination: r.destination,
      start_ms: r.startMs,
      answer_ms: r.answerMs,
      end_ms: end,
      duration: (end - r.startMs) / 1000,
      billable: r.answerMs === null ? 0 : (end - r.answerMs) / 1000,
      code: r.code,
      reason: r.reason.slice(0, 200),
      ended_by: r.endedBy,
    });
    this.stats.queued = this.queue.length;
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Write what is queued now (one transaction). Resolves when written (or failed and kept). */
  flush(): Promise<void> {
    if (this.flushing !== undefined) return this.flushing;
    if (this.queue.length === 0) return Promise.resolve();
    const batch = this.queue.length <= MAX_BATCH ? this.queue : this.queue.slice(0, MAX_BATCH);
    this.queue = this.queue.length <= MAX_BATCH ? [] : this.queue.slice(MAX_BATCH);
    this.flushing = this.opts
      .write((cdr) => cdr.insert(batch))
      .then(
        () => {
          this.stats.written += batch.length;
        },
        (err: unknown) => {
          this.stats.failedFlushes++;
          // Kept for the next flush (in front, so the order stays), within the bound.
          const room = Math.max(0, this.opts.maxQueue - this.queue.length);
          const kept = batch.slice(0, room);
          this.stats.dropped += batch.length - kept.length;
          this.queue = kept.concat(this.queue);
          this.opts.logger.limited('error', 'cdr.write', 'writing call records failed; they are kept for the next attempt', {
            rows: batch.length,
            error: err instanceof Error ? err.message : String(err),
          });
        },
      )
      .finally(() => {
        this.flushing = undefined;
        this.stats.queued = this.queue.length;
      });
    return this.flushing;
  }

  private async prune(): Promise<void> {
    if (this.closed) return;
    const before = (this.opts.now ?? Date.now)() - this.opts.keepDays * 86_400_000;
    try {
      const n = await this.opts.prune(before);
      if (n > 0) this.opts.logger.info('old call records deleted (cdr.keepDays)', { rows: n, keepDays: this.opts.keepDays });
    } catch (err) {
      this.opts.logger.limited('warn', 'cdr.prune', 'deleting old call records failed; will try again in an hour', {
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }

  /** Graceful shutdown: stop the timers, write everything queued. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    if (this.pruneTimer !== undefined) clearInterval(this.pruneTimer);
    // A flush in progress first, then whatever is left (in batches of MAX_BATCH).
    for (let rounds = 0; rounds < 1000; rounds++) {
      if (this.flushing !== undefined) await this.flushing;
      if (this.queue.length === 0) break;
      const before = this.stats.failedFlushes;
      await this.flush();
      if (this.stats.failedFlushes > before) break; // the store is gone: nothing more to do
    }
    this.closed = true;
  }
}
