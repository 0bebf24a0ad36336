/**
 * OPTIONS health probing (Kamailio: ds_ping_interval, ds_probing_threshold,
 * ds_inactive_threshold, ds_ping_reply_codes). Every `interval` seconds each destination
 * that is not admin-disabled gets an OPTIONS; `failures` consecutive failures (Timer F
 * timeout, or a final code not in okCodes) make it inactive, `successes` consecutive
 * successes make an inactive or probing destination active.
 *
 * The prober never touches a socket: it is given an IO object, and the proxy core hands it
 * every response whose top Via branch is a probe's (`handleResponse`). Probes never block
 * forwarding: sending is fire-and-forget and all waiting is timers.
 */
import type { Target } from '../transport/types.js';
import type { DispatcherHolder } from './holder.js';
import { buildOptionsRequest, isProbeBranch, newProbeBranch, type LocalVia } from './options-request.js';
import type { DispatcherSets } from './sets.js';
import type { Destination, ProbeResult } from './types.js';

export { isProbeBranch, PROBE_BRANCH_PREFIX } from './options-request.js';

export interface ProbeConfig {
  /** Seconds between probes of a destination; 0 turns probing off. */
  interval: number;
  /** Consecutive failures that make a destination inactive (Kamailio ds_probing_threshold). */
  failures: number;
  /** Consecutive successes that make it active again (Kamailio ds_inactive_threshold). */
  successes: number;
  /** Final status codes that count as "up" (Kamailio ds_ping_reply_codes; default 200 only). */
  okCodes: number[];
  /** RFC 3261 T1, the RTT estimate (ms). */
  t1Ms: number;
  /** Timer F, the non-INVITE transaction timeout (ms); default 64*T1 (§17.1.2.2). */
  timeoutMs: number;
}

export interface ProbeIO {
  send(target: Target, bytes: Buffer): void;
  localVia(target: Target): LocalVia;
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface ProberOptions {
  io: ProbeIO;
  /** Defaults for every set; fields not given take DEFAULT_PROBE_CONFIG's. */
  config?: Partial<ProbeConfig>;
  /** Per-set overrides. */
  sets?: Record<number, Partial<ProbeConfig>> | Map<number, Partial<ProbeConfig>>;
  /** From URI of probes (Kamailio ds_ping_from); a destination's ping_from attr wins. */
  fromUri?: string;
  userAgent?: string;
}

/** RFC 3261 §17.1.2.2: T2, the cap of the non-INVITE retransmit interval. */
export const T2_MS = 4000;

export const DEFAULT_PROBE_CONFIG: Readonly<ProbeConfig> = Object.freeze({
  interval: 0,
  failures: 1,
  successes: 1,
  okCodes: [200],
  t1Ms: 500,
  timeoutMs: 64 * 500,
});

/** Merges a partial config over a base; timeoutMs follows t1Ms (64*T1) unless given. */
export function probeConfig(base: ProbeConfig, over: Partial<ProbeConfig> = {}): ProbeConfig {
  const t1Ms = over.t1Ms ?? base.t1Ms;
  const timeoutMs = over.timeoutMs ?? (over.t1Ms !== undefined ? 64 * t1Ms : base.timeoutMs);
  return {
    interval: over.interval ?? base.interval,
    failures: Math.max(1, over.failures ?? base.failures),
    successes: Math.max(1, over.successes ?? base.successes),
    okCodes: [...(over.okCodes ?? base.okCodes)],
    t1Ms,
    timeoutMs,
  };
}

/** One probe in flight: a non-INVITE client transaction (§17.1.2). */
interface ProbeTransaction {
  branch: string;
  key: string;
  target: Target;
  bytes: Buffer;
  startedAt: number;
  config: ProbeConfig;
  /** Timer E interval now (UDP only); undefined once retransmission stopped. */
  timerE: number | undefined;
  timerEHandle: unknown;
  timerFHandle: unknown;
}

export class Prober {
  private readonly holder: DispatcherHolder;
  private readonly io: ProbeIO;
  private readonly base: ProbeConfig;
  private readonly overrides: Map<number, Partial<ProbeConfig>>;
  private readonly fromUri: string | undefined;
  private readonly userAgent: string;
  /** In-flight probes by branch. */
  private readonly transactions = new Map<string, ProbeTransaction>();
  /** ...and by destination key: at most one probe per destination at a time. */
  private readonly byKey = new Map<string, ProbeTransaction>();
  private readonly setTimers = new Map<number, unknown>();
  private unsubscribe: (() => void) | undefined;
  private running = false;

  constructor(holder: DispatcherHolder, options: ProberOptions) {
    this.holder = holder;
    this.io = options.io;
    this.base = probeConfig(DEFAULT_PROBE_CONFIG, options.config);
    const sets = options.sets ?? {};
    this.overrides = sets instanceof Map ? new Map(sets) : new Map(Object.entries(sets).map(([k, v]) => [Number(k), v]));
    this.fromUri = options.fromUri;
    this.userAgent = options.userAgent ?? 'sipctl';
  }

  configFor(setid: number): ProbeConfig {
    return probeConfig(this.base, this.overrides.get(setid));
  }

  /** Starts probing every set whose interval is not 0 (first round now), and follows reloads. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.unsubscribe = this.holder.onSwap((sets) => this.follow(sets));
    this.follow(this.holder.current);
  }

  /** Stops all timers and forgets in-flight probes (their answers are then ignored). */
  stop(): void {
    this.running = false;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    for (const h of this.setTimers.values()) this.io.clearTimeout(h);
    this.setTimers.clear();
    for (const t of this.transactions.values()) this.clearTimers(t);
    this.transactions.clear();
    this.byKey.clear();
  }

  /** Whether probes run for this set (the P/X letter of the dump). */
  isProbed(setid: number): boolean {
    return this.running && this.configFor(setid).interval > 0;
  }

  get inFlight(): number {
    return this.transactions.size;
  }

  /** Starts timers for sets that appeared, stops those of sets that went away. */
  private follow(sets: DispatcherSets): void {
    if (!this.running) return;
    const ids = new Set(sets.setIds());
    for (const [setid, h] of this.setTimers) {
      if (!ids.has(setid)) {
        this.io.clearTimeout(h);
        this.setTimers.delete(setid);
      }
    }
    for (const setid of ids) {
      if (this.setTimers.has(setid)) continue;
      const cfg = this.configFor(setid);
      if (cfg.interval <= 0) continue;
      this.round(setid);
    }
  }

  /** One probing round of a set, then the next one `interval` seconds later. */
  private round(setid: number): void {
    this.setTimers.delete(setid);
    if (!this.running) return;
    const set = this.holder.current.set(setid);
    if (set === undefined) return;
    const cfg = this.configFor(setid);
    if (cfg.interval <= 0) return;
    for (const d of set.destinations) this.probe(d, cfg);
    this.setTimers.set(setid, this.io.setTimeout(() => this.round(setid), cfg.interval * 1000));
  }

  /** Probes every (non-disabled) destination of a set now, whatever the interval. */
  probeSetNow(setid: number): void {
    const set = this.holder.current.set(setid);
    if (set === undefined) return;
    const cfg = this.configFor(setid);
    for (const d of set.destinations) this.probe(d, cfg);
  }

  private probe(d: Destination, cfg: ProbeConfig): void {
    // Kamailio: a disabled destination (DX) is not probed.
    if (d.state === 'disabled') return;
    if (this.byKey.has(d.key)) return; // the previous probe is still running
    const target = d.targets[0];
    if (target === undefined) return;
    const branch = newProbeBranch();
    const bytes = buildOptionsRequest({
      requestUri: d.parsed.toString(),
      via: this.io.localVia(target),
      branch,
      fromUri: d.attrs.ping_from ?? this.fromUri,
      userAgent: this.userAgent,
    });
    const t: ProbeTransaction = {
      branch,
      key: d.key,
      target,
      bytes,
      startedAt: this.io.now(),
      config: cfg,
      timerE: target.protocol === 'udp' ? cfg.t1Ms : undefined,
      timerEHandle: undefined,
      timerFHandle: undefined,
    };
    this.transactions.set(branch, t);
    this.byKey.set(d.key, t);
    this.io.send(target, bytes);
    // §17.1.2.2: over an unreliable transport, Timer E = T1, doubling up to T2.
    if (t.timerE !== undefined) this.armTimerE(t);
    // Timer F = 64*T1 for every transport: no final answer by then is a failure.
    t.timerFHandle = this.io.setTimeout(() => {
      this.finish(t, { ok: false, reason: `timeout: no final response in ${cfg.timeoutMs} ms` });
    }, cfg.timeoutMs);
  }

  private armTimerE(t: ProbeTransaction): void {
    t.timerEHandle = this.io.setTimeout(() => {
      if (t.timerE === undefined || !this.transactions.has(t.branch)) return;
      this.io.send(t.target, t.bytes);
      t.timerE = Math.min(2 * t.timerE, T2_MS);
      this.armTimerE(t);
    }, t.timerE!);
  }

  private clearTimers(t: ProbeTransaction): void {
    if (t.timerEHandle !== undefined) this.io.clearTimeout(t.timerEHandle);
    if (t.timerFHandle !== undefined) this.io.clearTimeout(t.timerFHandle);
    t.timerE = undefined;
    t.timerEHandle = undefined;
    t.timerFHandle = undefined;
  }

  /**
   * A response whose top Via branch is `branch`. Returns true when the branch is a probe's
   * (the core then drops the response: it is ours, not to be forwarded), false otherwise.
   * A 1xx stops retransmission but not Timer F; a final response ends the probe.
   */
  handleResponse(branch: string, status: number): boolean {
    if (!isProbeBranch(branch)) return false;
    const t = this.transactions.get(branch);
    if (t === undefined) return true; // a late or duplicate answer to a finished probe
    if (status < 200) {
      // Stop Timer E on a provisional, as this project's issue specifies. (RFC 3261
      // §17.1.2.2 would keep retransmitting at T2 in Proceeding; an OPTIONS rarely gets a 1xx.)
      if (t.timerEHandle !== undefined) this.io.clearTimeout(t.timerEHandle);
      t.timerE = undefined;
      t.timerEHandle = undefined;
      return true;
    }
    const ok = t.config.okCodes.includes(status);
    this.finish(t, ok ? { ok, status } : { ok, status, reason: `status ${status} not in ok codes (${t.config.okCodes.join(', ')})` });
    return true;
  }

  private finish(t: ProbeTransaction, outcome: { ok: boolean; status?: number; reason?: string }): void {
    if (this.transactions.get(t.branch) !== t) return;
    this.clearTimers(t);
    this.transactions.delete(t.branch);
    if (this.byKey.get(t.key) === t) this.byKey.delete(t.key);
    const now = this.io.now();
    const result: ProbeResult = { at: now, ok: outcome.ok };
    if (outcome.status !== undefined) {
      result.status = outcome.status;
      result.latencyMs = now - t.startedAt;
    }
    if (outcome.reason !== undefined) result.reason = outcome.reason;
    // Look the destination up in the sets in use now: a reload may have replaced the object.
    const sets = this.holder.current;
    const d = sets.byKey(t.key);
    if (d === undefined) return; // removed by a reload meanwhile
    d.stats.lastProbe = result;
    if (result.latencyMs !== undefined) {
      const avg = d.stats.probeLatencyAvgMs;
      // RFC 6298 §2.3: SRTT <- (1 - 1/8) * SRTT + 1/8 * R' (the first sample sets it, §2.2).
      d.stats.probeLatencyAvgMs = avg === undefined ? result.latencyMs : avg + (result.latencyMs - avg) / 8;
    }
    if (!result.ok) d.stats.probeFailures++;
    if (d.state === 'disabled') return; // admin-disabled stays disabled
    const cfg = t.config;
    if (result.ok) {
      d.health.successes++;
      d.health.failures = 0;
      if ((d.state === 'inactive' || d.state === 'probing') && d.health.successes >= cfg.successes) {
        sets.transition(d, 'active', `probe: ${d.health.successes} consecutive ok (${result.status})`);
      }
    } else {
      d.health.failures++;
      d.health.successes = 0;
      if ((d.state === 'active' || d.state === 'probing') && d.health.failures >= cfg.failures) {
        sets.transition(d, 'inactive', `probe: ${d.health.failures} consecutive failures (${result.reason})`);
      }
    }
  }
}
