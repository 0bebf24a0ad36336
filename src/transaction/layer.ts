/**
 * What every transaction of one proxy shares: the clock, the timer values, the table, the
 * way out to the transport, and the counters. One object, referenced by each transaction,
 * so that a transaction carries no per-instance closures or option copies.
 */
import type { Listener, Target } from '../transport/types.js';
import { DEFAULT_MAX_TRANSACTIONS, TransactionTable } from './table.js';
import { TimerEntry, TimerQueue, type TimerOwner } from './timer-queue.js';
import { monotonicClock, resolveTimers, type Clock, type TimerValues } from './timers.js';

export type { TimerOwner };

export interface TransactionLayerOptions {
  /**
   * The transport's send: where a transaction's own messages go (requests and their
   * retransmissions, the ACK and the CANCEL it builds, responses and their retransmissions).
   * Must not throw (Transport.send reports failures through its own onError).
   */
  send(target: Target, bytes: Buffer, via?: Listener): void;
  /** Default: a monotonic clock (performance.now; a wall-clock step does not move SIP timers), timers unref'd. */
  clock?: Clock;
  /** T1, T2, T4, Timer D, RFC 6026 L/M; defaults of RFC 3261 Table 4. */
  timers?: Partial<TimerValues>;
  /** Cap on live server transactions (default 100,000). */
  maxTransactions?: number;
  /**
   * RFC 6026 (default true): after a 2xx the INVITE client transaction waits in Accepted
   * (Timer M) so that retransmitted 2xx still reach its user, and the INVITE server
   * transaction waits in Accepted (Timer L) absorbing retransmitted INVITEs. false: RFC 3261
   * as published — both end at the 2xx; later 2xx retransmissions match nothing and the
   * owner relays them statelessly (§17.1.1.2, §16.7).
   */
  rfc6026?: boolean;
  /** Called when a callback run from a timer threw (the transaction layer goes on). */
  onError?(err: unknown, where: string): void;
}

export interface TransactionStats {
  serverCreated: number;
  clientCreated: number;
  /** Requests refused because the table was full. */
  refusedFull: number;
  /** Requests and responses a transaction re-sent (Timers A, E, G; a request retransmission answered again). */
  retransmissions: number;
  /** Retransmitted requests and responses absorbed by a transaction. */
  absorbed: number;
  /** Client transactions that timed out (Timer B or F). */
  timeouts: number;
  /** Proxy branches ended by fr_timer / fr_inv_timer (§16.8), usually long before Timer B. */
  frTimeouts: number;
  /** Callbacks that threw inside a timer (reported through onError). */
  errors: number;
}

export class TransactionLayer {
  readonly clock: Clock;
  readonly timers: TimerValues;
  readonly table: TransactionTable;
  readonly rfc6026: boolean;
  readonly send: (target: Target, bytes: Buffer, via?: Listener) => void;
  readonly stats: TransactionStats = {
    serverCreated: 0,
    clientCreated: 0,
    refusedFull: 0,
    retransmissions: 0,
    absorbed: 0,
    timeouts: 0,
    frTimeouts: 0,
    errors: 0,
  };
  private readonly onError: ((err: unknown, where: string) => void) | undefined;
  private readonly queue: TimerQueue;

  constructor(opts: TransactionLayerOptions) {
    this.send = opts.send;
    this.clock = opts.clock ?? monotonicClock;
    this.timers = resolveTimers(opts.timers);
    this.table = new TransactionTable(opts.maxTransactions ?? DEFAULT_MAX_TRANSACTIONS);
    this.rfc6026 = opts.rfc6026 ?? true;
    this.onError = opts.onError;
    this.queue = new TimerQueue(this.clock, (e) => {
      try {
        e.owner.onTimer(e.kind);
      } catch (err) {
        this.report(err, 'timer');
      }
    });
  }

  /** Timers armed and not yet fired or disarmed, over every transaction of the layer. */
  get timerCount(): number {
    return this.queue.size;
  }

  /**
   * Arms a timer that calls owner.onTimer(kind) in `ms`; returns its handle for disarm(). A
   * throw inside is caught and reported: it never reaches the event loop.
   */
  arm(owner: TimerOwner, kind: number, ms: number): unknown {
    return this.queue.add(owner, kind, ms);
  }

  /** Disarms a timer (undefined, or one that already fired, is fine). */
  disarm(handle: unknown): void {
    if (handle instanceof TimerEntry) this.queue.remove(handle);
  }

  report(err: unknown, where: string): void {
    this.stats.errors++;
    if (this.onError !== undefined) {
      try {
        this.onError(err, where);
      } catch {
        // the error reporter itself failed: nothing more to do
      }
    }
  }
}
