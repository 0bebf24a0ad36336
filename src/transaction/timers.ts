/**
 * The SIP timer values of RFC 3261 §17 (Table 4 of Appendix A) and the injected clock every
 * transaction timer goes through, so that each timer can be tested with fake time.
 *
 *   T1  500 ms  RTT estimate; Timers A, E, G start at T1; B, F, H, J are 64·T1
 *   T2  4 s     cap of the non-INVITE request and INVITE response retransmit interval
 *   T4  5 s     how long a message may stay in the network; Timers I and K
 *   D   32 s    (§17.1.1.2: "at least 32 seconds" for unreliable transports; 0 for reliable)
 *   L, M 64·T1  RFC 6026 §8.7 / §8.4: how long the INVITE transactions stay Accepted
 */
import { usageError } from '../errors.js';
import { systemClock, type Clock } from '../dispatcher/types.js';

// The dispatcher's prober uses the same clock shape: one type for both, so one fake clock
// drives either in tests.
export { systemClock, type Clock };

/**
 * The transaction layer's default clock: monotonic time (a wall-clock step must not fire or
 * delay SIP timers), timers unref'd like the dispatcher's (the sockets keep the process alive).
 */
export const monotonicClock: Clock = {
  now: () => performance.now(),
  setTimeout: systemClock.setTimeout,
  clearTimeout: systemClock.clearTimeout,
};

export interface TimerValues {
  /** RFC 3261 T1 (ms). */
  t1: number;
  /** RFC 3261 T2 (ms). */
  t2: number;
  /** RFC 3261 T4 (ms). */
  t4: number;
  /** Timer D over an unreliable transport (ms). */
  timerD: number;
  /** RFC 6026 Timers L and M (ms); 64·T1 unless given. */
  accepted: number;
}

export const DEFAULT_TIMERS: Readonly<TimerValues> = Object.freeze({
  t1: 500,
  t2: 4000,
  t4: 5000,
  timerD: 32_000,
  accepted: 64 * 500,
});

/** The longest timer value accepted (one day): beyond it, a typo rather than a choice. */
const MAX_TIMER_MS = 86_400_000;

/**
 * Fills in the defaults and checks every value (a positive whole number of ms, T2 ≥ T1).
 * `accepted` follows T1 (64·T1) unless given. Throws E_TX_TIMER.
 */
export function resolveTimers(over: Partial<TimerValues> = {}): TimerValues {
  const t1 = over.t1 ?? DEFAULT_TIMERS.t1;
  const out: TimerValues = {
    t1,
    t2: over.t2 ?? DEFAULT_TIMERS.t2,
    t4: over.t4 ?? DEFAULT_TIMERS.t4,
    timerD: over.timerD ?? DEFAULT_TIMERS.timerD,
    accepted: over.accepted ?? 64 * t1,
  };
  for (const [name, v] of Object.entries(out)) {
    if (!Number.isInteger(v) || v <= 0 || v > MAX_TIMER_MS) {
      throw usageError('E_TX_TIMER', `transaction timer ${name} must be a whole number of milliseconds from 1 to ${MAX_TIMER_MS}, not ${String(v)}`);
    }
  }
  if (out.t2 < out.t1) throw usageError('E_TX_TIMER', `transaction timer t2 (${out.t2} ms) must not be shorter than t1 (${out.t1} ms)`);
  return out;
}
