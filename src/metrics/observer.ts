/**
 * What the running proxy tells an operator: one object over the plain counters the parts
 * keep (the core's stats and per-kind arrays, the transport's and flood control's stats, the
 * dispatcher's destinations, the tables), read when someone asks — `sipctl status`, a
 * Prometheus scrape, `/readyz` — and never on the per-message path.
 *
 * The one thing it keeps itself is a once-a-second sample of the message and call counters
 * (a ring of the last RATE_WINDOW_S seconds) for "per second over the last 10 s", and the
 * drift of that timer, which is the event loop's lag.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GroupCount } from '../acl/table.js';
import type { CaptureStats } from '../capture/mirror.js';
import type { DispatcherHolder } from '../dispatcher/holder.js';
import type { SentRateSampler } from '../dispatcher/sent-rate.js';
import type { Destination } from '../dispatcher/types.js';
import type { FloodStats } from '../flood/guard.js';
import type { ProxyStats } from '../proxy/core.js';
import { DROP_REASON_NAMES, DropReason, METHOD_NAMES, type CoreCounters } from '../proxy/counters.js';
import type { TransportStats } from '../transport/types.js';

/** Seconds over which `status` computes its recent rates. */
export const RATE_WINDOW_S = 10;

/**
 * Transaction counters, from the transaction layer (src/transaction/) once it exists: it
 * registers itself with `Observability.setTransactionSource`. Until then the proxy is
 * stateless, `status` says so (transactions: null) and /metrics has no sipctl_transactions_*.
 */
export interface TransactionStats {
  /** Server and client transactions alive now. */
  inUse: number;
  /** Transactions created since start. */
  created: number;
  /** Transactions ended by a timer (B, F, H, ...) rather than a final response or ACK. */
  timedOut: number;
}

export type TransactionSource = () => TransactionStats;

/** When a table was last (re)loaded, how long it took, and whether it worked. */
export interface ReloadRecord {
  /** Epoch ms of the end of the last attempt. */
  at: number;
  /** Duration of the last successful load, ms. */
  ms: number;
  ok: boolean;
  /** Why the last attempt failed (when !ok). */
  error?: string;
  /** Failed attempts since start. */
  failures: number;
  /** Epoch ms of the last successful load. */
  lastSuccessAt: number;
}

/** The address table's and the dispatcher's reloads, as start.ts reports them. */
export class ReloadLog {
  address: ReloadRecord | undefined;
  dispatcher: ReloadRecord | undefined;

  succeeded(which: 'address' | 'dispatcher', ms: number, at = Date.now()): void {
    const prev = this[which];
    this[which] = { at, ms, ok: true, failures: prev?.failures ?? 0, lastSuccessAt: at };
  }

  failed(which: 'address' | 'dispatcher', error: unknown, at = Date.now()): void {
    const prev = this[which];
    this[which] = {
      at,
      ms: prev?.ms ?? 0,
      ok: false,
      error: error instanceof Error ? error.message : String(error),
      failures: (prev?.failures ?? 0) + 1,
      lastSuccessAt: prev?.lastSuccessAt ?? 0,
    };
  }

  /** Runs a reload and records how it went; the result or the error passes through. */
  async track<T extends { ms: number }>(which: 'address' | 'dispatcher', run: () => Promise<T>): Promise<T> {
    try {
      const report = await run();
      this.succeeded(which, report.ms);
      return report;
    } catch (err) {
      this.failed(which, err);
      throw err;
    }
  }
}

/** Everything the observer reads, handed over by src/serve/start.ts. */
export interface ObservedProxy {
  readonly mode: 'forward' | 'dispatcher';
  /** How requests are relayed by default (config `mode`). */
  readonly relay: 'stateless' | 'transaction';
  /** Listeners as bound ("udp:127.0.0.1:5060"). */
  readonly listeners: readonly string[];
  /** How many --listen specs were configured. */
  readonly configuredListeners: number;
  readonly core: { readonly stats: ProxyStats; readonly counters: CoreCounters; readonly pairing: { readonly size: number } };
  readonly transportStats: () => TransportStats;
  readonly floodStats: () => FloodStats | undefined;
  readonly addressTable: () => { readonly size: number; groupCounts(): GroupCount[] };
  readonly dispatcher: DispatcherHolder;
  /** The sets the dispatcher rules use (empty with --forward). */
  readonly ruleSets: readonly number[];
  readonly sentRate: SentRateSampler;
  readonly isProbed: (setid: number) => boolean;
  readonly capture: { readonly collector: string; stats(): CaptureStats } | undefined;
  readonly reloads: ReloadLog;
  /** The metrics listener once bound ("127.0.0.1:9090"). */
  metricsListen?: string;
}

export interface ReadinessCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface Readiness {
  ready: boolean;
  checks: ReadinessCheck[];
}

interface Sample {
  at: number;
  messages: number;
  calls: number;
}

/** Messages received by the transports: datagrams (less keep-alive probes) and framed TCP messages. */
export function messagesReceived(t: TransportStats): number {
  return t.udpDatagramsIn - t.udpProbesDropped + t.tcpMessagesIn;
}

/** What dialog tracking reports (status, /metrics). */
export interface DialogStats {
  active: number;
  /** Live calls by state: INVITE sent, no answer with a To tag yet / a 1xx with a To tag / answered. */
  trying: number;
  early: number;
  confirmed: number;
  /** In-dialog keepalive OPTIONS sent (dialog.keepaliveS). */
  keepalivesSent: number;
  created: number;
  ended: Record<string, number>;
  cdrWritten: number;
  cdrDropped: number;
  cdrQueued: number;
}

export class Observability {
  readonly version = sipctlVersion();
  readonly startedAt = Date.now();
  private transactionSource: TransactionSource | undefined;
  private readonly transactionListeners: Array<() => void> = [];
  private readonly samples: Sample[] = [];
  private readonly lags: number[] = [];
  private timer: NodeJS.Timeout | undefined;
  private lastTick = 0;
  private closing = false;

  constructor(readonly proxy: ObservedProxy) {}

  /** Starts the once-a-second sampler (unref'd: it never keeps the process alive). */
  start(): void {
    if (this.timer !== undefined) return;
    this.lastTick = performance.now();
    this.sample(Date.now());
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  /** Stops sampling; readiness reports not ready from now on (the proxy is shutting down). */
  stop(): void {
    this.closing = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Dialog tracking's counters (src/dialog/), when `dialog.enabled`. */
  dialogSource: (() => DialogStats) | undefined = undefined;

  /** The transaction layer's hook: from now on its counters are in `status` and /metrics. */
  setTransactionSource(source: TransactionSource): void {
    this.transactionSource = source;
    for (const l of this.transactionListeners) l();
  }

  /** Transaction counters, or undefined while the proxy is stateless. */
  transactions(): TransactionStats | undefined {
    return this.transactionSource?.();
  }

  /** Called when a transaction source is registered (the Prometheus registry adds its metrics then). */
  onTransactionSource(listener: () => void): void {
    this.transactionListeners.push(listener);
    if (this.transactionSource !== undefined) listener();
  }

  private tick(): void {
    const now = performance.now();
    // A 1 s timer that fires late fired late because the loop was busy: that delay is its lag.
    this.lags.push(Math.max(0, now - this.lastTick - 1000));
    if (this.lags.length > RATE_WINDOW_S) this.lags.shift();
    this.lastTick = now;
    this.sample(Date.now());
    this.proxy.sentRate.sample();
  }

  private sample(at: number): void {
    this.samples.push({ at, messages: messagesReceived(this.proxy.transportStats()), calls: this.proxy.core.counters.initialInvites });
    if (this.samples.length > RATE_WINDOW_S + 1) this.samples.shift();
  }

  /** Requests refused by the address table (responses from unadmitted sources are drops, not refusals). */
  requestsRefused(): number {
    return this.proxy.core.stats.rejected - this.proxy.core.counters.drops[DropReason.NotAdmitted]!;
  }

  /** Drops by reason, flood control's included. */
  dropsByReason(): Record<string, number> {
    const out: Record<string, number> = {};
    const drops = this.proxy.core.counters.drops;
    for (let i = 0; i < DROP_REASON_NAMES.length; i++) out[DROP_REASON_NAMES[i]!] = drops[i]!;
    out.flood = this.proxy.floodStats()?.dropped ?? 0;
    return out;
  }

  requestsByMethod(): Record<string, number> {
    const out: Record<string, number> = {};
    const a = this.proxy.core.counters.requestsByMethod;
    for (let i = 0; i < METHOD_NAMES.length; i++) out[METHOD_NAMES[i]!] = a[i]!;
    return out;
  }

  /** Per second over the last RATE_WINDOW_S seconds (fewer just after start) and since start. */
  rates(): { windowS: number; messagesPerS: { recent: number; sinceStart: number }; callsPerS: { recent: number; sinceStart: number } } {
    const now = Date.now();
    const messages = messagesReceived(this.proxy.transportStats());
    const calls = this.proxy.core.counters.initialInvites;
    const oldest = this.samples[0];
    const span = oldest === undefined ? 0 : (now - oldest.at) / 1000;
    const uptime = Math.max(0.001, (now - this.startedAt) / 1000);
    const per = (v: number, s: number) => (s <= 0 ? 0 : Math.round((v / s) * 10) / 10);
    return {
      windowS: Math.round(Math.min(span, RATE_WINDOW_S + 1)),
      messagesPerS: { recent: per(messages - (oldest?.messages ?? messages), span), sinceStart: per(messages, uptime) },
      callsPerS: { recent: per(calls - (oldest?.calls ?? calls), span), sinceStart: per(calls, uptime) },
    };
  }

  /** The largest event-loop lag seen by the 1 s sampler over the last RATE_WINDOW_S seconds, ms. */
  eventLoopLagMs(): number {
    let max = 0;
    for (const l of this.lags) if (l > max) max = l;
    return Math.round(max * 10) / 10;
  }

  /** Per set: its destinations and how many are active. */
  setSummaries(): { setid: number; destinations: number; active: number }[] {
    const sets = this.proxy.dispatcher.current;
    return sets.setIds().map((setid) => {
      const s = sets.set(setid)!;
      return { setid, destinations: s.destinations.length, active: s.activeCount };
    });
  }

  /** Every destination of every set, for the per-destination metrics and `top`. */
  destinations(): Destination[] {
    return [...this.proxy.dispatcher.current.all()];
  }

  readiness(): Readiness {
    const p = this.proxy;
    const checks: ReadinessCheck[] = [];
    checks.push({
      name: 'listeners',
      ok: !this.closing && p.listeners.length === p.configuredListeners,
      detail: this.closing ? 'shutting down' : `${p.listeners.length} of ${p.configuredListeners} bound: ${p.listeners.join(', ')}`,
    });
    const a = p.reloads.address;
    checks.push({
      name: 'address table',
      ok: a !== undefined && a.lastSuccessAt > 0,
      detail: a === undefined || a.lastSuccessAt === 0 ? 'not loaded' : `${p.addressTable().size} entries loaded`,
    });
    const d = p.reloads.dispatcher;
    checks.push({
      name: 'dispatcher sets',
      ok: d !== undefined && d.lastSuccessAt > 0,
      detail: d === undefined || d.lastSuccessAt === 0 ? 'not loaded' : `${p.dispatcher.current.total} destinations loaded`,
    });
    if (p.mode === 'dispatcher') {
      const sets = p.dispatcher.current;
      for (const setid of p.ruleSets) {
        const s = sets.set(setid);
        const active = s?.activeCount ?? 0;
        checks.push({
          name: `set ${setid}`,
          ok: active > 0,
          detail: s === undefined ? 'no such set loaded (its requests get the no-destination answer)' : `${active} of ${s.destinations.length} destinations active`,
        });
      }
    }
    return { ready: checks.every((c) => c.ok), checks };
  }

  /** Live calls by state and CDR progress, or null when dialog tracking is off. */
  dialogStatus(): { active: number; trying: number; early: number; confirmed: number; created: number; cdrWritten: number; cdrQueued: number } | null {
    const d = this.dialogSource?.();
    if (d === undefined) return null;
    return { active: d.active, trying: d.trying, early: d.early, confirmed: d.confirmed, created: d.created, cdrWritten: d.cdrWritten, cdrQueued: d.cdrQueued };
  }

  /** The `status` control command's answer (and `sipctl status --json`). */
  status(): Record<string, unknown> {
    const p = this.proxy;
    const t = p.transportStats();
    const flood = p.floodStats();
    const tx = this.transactions();
    const drops = this.dropsByReason();
    let dropped = 0;
    for (const k in drops) dropped += drops[k]!;
    const table = p.addressTable();
    return {
      pid: process.pid,
      version: this.version,
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      startedAt: new Date(this.startedAt).toISOString(),
      listeners: [...p.listeners],
      mode: p.mode,
      relay: p.relay,
      rates: this.rates(),
      messages: {
        received: messagesReceived(t),
        requestsByMethod: this.requestsByMethod(),
        calls: p.core.counters.initialInvites,
        forwarded: p.core.stats.forwarded,
        responsesRelayed: p.core.stats.responsesForwarded,
        localReplies: p.core.stats.replied,
        refused: this.requestsRefused(),
        dropped,
        dropsByReason: drops,
      },
      transactions: tx ?? null,
      dialogs: this.dialogStatus(),
      tcp: { inbound: t.tcpConnectionsInbound, outbound: t.tcpConnectionsOutbound },
      eventLoopLagMs: this.eventLoopLagMs(),
      addressTable: { entries: table.size, groups: table.groupCounts(), lastReload: reloadView(p.reloads.address) },
      dispatcher: { sets: this.setSummaries(), lastReload: reloadView(p.reloads.dispatcher) },
      capture: p.capture === undefined ? null : { collector: p.capture.collector, ...p.capture.stats() },
      metrics: p.metricsListen ?? null,
      // The fields `status` had before (kept for scripts that read them).
      stats: p.core.stats,
      transport: t,
      pairing: p.core.pairing.size,
      flood: flood ?? { enabled: false },
      memory: process.memoryUsage(),
    };
  }
}

function reloadView(r: ReloadRecord | undefined): Record<string, unknown> | null {
  if (r === undefined) return null;
  return {
    at: new Date(r.at).toISOString(),
    ok: r.ok,
    ms: r.ms,
    failures: r.failures,
    ...(r.error !== undefined ? { error: r.error } : {}),
  };
}

let version: string | undefined;

/** sipctl's version, from the package.json above this file (dist/ or the source tree). */
export function sipctlVersion(): string {
  if (version !== undefined) return version;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'sipctl' && typeof pkg.version === 'string') return (version = pkg.version);
    } catch {
      // not here; look one folder up
    }
    dir = dirname(dir);
  }
  return (version = 'unknown');
}
