/**
 * The dispatcher's data model: destination sets as Kamailio's dispatcher module keeps them
 * (table `dispatcher`: id, setid, destination, flags, priority, attrs, description), plus the
 * run-time state a proxy needs (state, resolved targets, counters).
 */
import type { SipUri } from '../sip/uri.js';
import type { Target } from '../transport/types.js';

/** One row of the `dispatcher` table (migrations/002_dispatcher.sql), as the store reads it. */
export type { DispatcherRow } from '../store/dispatcher.js';

/**
 * A destination's state. Kamailio keeps a letter pair (AP, IP, DX, TX ...); here the first
 * letter is the state and the probing letter is derived (see `kamailioStateLetters`):
 * - active: picked by the algorithms;
 * - inactive: not picked; probes bring it back after `successes` good answers;
 * - disabled: administratively out (Kamailio 'D'); probes neither run nor change it;
 * - probing: not picked yet; it is being checked and becomes active after `successes`
 *   good answers (Kamailio's flag 8, a destination brought up by keepalives).
 */
export type DestinationState = 'active' | 'inactive' | 'disabled' | 'probing';

export const DESTINATION_STATES: readonly DestinationState[] = ['active', 'inactive', 'disabled', 'probing'];

/**
 * Bits of the `flags` column, as Kamailio's dispatcher list defines them
 * (bit 0 inactive, bit 1 trying, bit 2 admin disabled, bit 3 probing). They set the
 * state a destination starts in when it is first loaded.
 */
export const DS_FLAG_INACTIVE = 1;
export const DS_FLAG_TRYING = 2;
export const DS_FLAG_DISABLED = 4;
export const DS_FLAG_PROBING = 8;
export const DS_FLAGS_MASK = DS_FLAG_INACTIVE | DS_FLAG_TRYING | DS_FLAG_DISABLED | DS_FLAG_PROBING;

/** The `attrs` column, parsed (`weight=50;rweight=20;duid=pbx-a;maxload=100`). */
export interface DestinationAttrs {
  /** Percent of the set's calls for algorithm 9 (0..100). */
  weight?: number;
  /** Relative weight for algorithm 11 (1..100). */
  rweight?: number;
  /** Unique destination id (Kamailio: call-load dispatching). */
  duid?: string;
  /** Upper limit of active calls (Kamailio: call-load dispatching); 0 = no limit. */
  maxload?: number;
  /** From URI of this destination's OPTIONS probes (Kamailio `ping_from`). */
  ping_from?: string;
}

export interface ProbeResult {
  /** Epoch milliseconds (from the injected clock) when the probe finished. */
  at: number;
  ok: boolean;
  status?: number;
  latencyMs?: number;
  /** Why it failed: 'timeout', 'status 503 not in ok codes', ... */
  reason?: string;
}

export interface DestinationStats {
  requestsSent: number;
  lastProbe: ProbeResult | undefined;
  /**
   * Moving average of the probe round-trip time, ms: each new sample moves it by 1/8 of the
   * difference, the smoothing RFC 6298 §2 uses for TCP's SRTT. Undefined until a probe is answered.
   */
  probeLatencyAvgMs: number | undefined;
  /** Probes that failed (timeout or a final code not in okCodes), since the destination was first loaded. */
  probeFailures: number;
  /**
   * Times a request that had been sent here was sent on to another destination of the set
   * (failover). Counted by the transaction layer through DispatcherSets.countFailover; the
   * stateless proxy never fails over, so it stays 0 until that layer exists.
   */
  failovers: number;
  /**
   * Branches to it that timed out with no final response (transaction mode, Kamailio's
   * ds_mark_dst): `probe.failures` of them in a row take it out of rotation.
   */
  timeouts: number;
  /**
   * requestsSent as it was at each of the last SENT_HISTORY_SLOTS seconds (a ring written by
   * SentRateSampler, off the per-message path); shared, like the rest, across reloads.
   */
  sentHistory: Float64Array;
  /**
   * Calls (dialogs) now on this destination: up when a dialog is created for a request sent
   * here, down on every way it ends (src/dialog/). One object shared by every copy of the
   * stats across reloads, so a call that began before a reload is taken off the same count.
   */
  calls: { active: number };
  /** Epoch milliseconds of the last state change (or of the first load). */
  stateSince: number;
  stateReason: string;
}

/** Consecutive probe outcomes; reset on every state change. */
export interface DestinationHealth {
  failures: number;
  successes: number;
}

export interface Destination {
  readonly id: number;
  readonly setid: number;
  /** The destination URI as written in the table. */
  readonly uri: string;
  readonly parsed: SipUri;
  /** setid + normalized URI: what identifies "the same destination" across reloads. */
  readonly key: string;
  readonly flags: number;
  readonly priority: number;
  readonly attrs: DestinationAttrs;
  /** The attrs column as written. */
  readonly attrsText: string;
  readonly description: string;
  state: DestinationState;
  /** Where to send, in preference order (RFC 3263); replaced whole on re-resolution. */
  targets: readonly Target[];
  /** How the targets were found ('literal', 'A/AAAA', 'SRV _sip._udp.example.com', ...). */
  resolvedVia: string;
  stats: DestinationStats;
  health: DestinationHealth;
}

/** What the hashing algorithms look at (Kamailio: $ci, $fu, $tu, $ru). */
export interface SelectionKey {
  callId: string;
  fromUri: string;
  toUri: string;
  requestUri: string;
}

export interface StateChange {
  setid: number;
  uri: string;
  from: DestinationState;
  to: DestinationState;
  reason: string;
}

export type StateChangeListener = (change: StateChange) => void;

/** Injected clock: every timer the dispatcher uses goes through this (fake time in tests). */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    // Timers of the dispatcher (probes, DNS refresh) never keep a process alive on their own.
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};
