/**
 * The one reference the proxy reads destination sets through. `reload(rows)` validates and
 * resolves every row, builds new sets beside the old ones and swaps the reference; if any
 * row is bad or a name does not resolve, the old sets stay and the reload throws
 * E_DS_RELOAD_FAILED saying why (DESIGN.md "Nothing half-loaded").
 *
 * It also re-resolves host names when their DNS answers expire: a new answer replaces the
 * destination's targets; a failed lookup keeps the previous targets and is logged.
 */
import { SipctlError } from '../errors.js';
import type { Target } from '../transport/types.js';
import { checkRow } from './row.js';
import { SipResolver, type Resolution, type TargetResolver } from './resolve.js';
import { DispatcherSets, type PreparedRow } from './sets.js';
import { systemClock, type Clock, type DispatcherRow, type StateChangeListener } from './types.js';
import { destinationKey, type DestinationUri } from './destination-uri.js';

export interface HolderOptions {
  clock?: Clock;
  onStateChange?: StateChangeListener;
  resolver?: TargetResolver;
  /** Non-hot-path log lines (re-resolution results). Default: none. */
  log?: (line: string) => void;
  /** Seconds before retrying a failed re-resolution. Default 30. */
  retrySeconds?: number;
}

export interface ReloadSummary {
  sets: { setid: number; count: number; active: number }[];
  total: number;
  ms: number;
}

/** One name to keep fresh: every destination that resolved through it. */
interface Refresh {
  uri: DestinationUri;
  keys: string[];
  handle: unknown;
}

function resolutionKey(u: DestinationUri): string {
  return `${u.parsed.host}|${u.parsed.port ?? ''}|${u.explicitTransport ?? ''}`;
}

export class DispatcherHolder {
  private sets: DispatcherSets;
  private readonly clock: Clock;
  private readonly onStateChange: StateChangeListener | undefined;
  private readonly resolver: TargetResolver;
  private readonly log: (line: string) => void;
  private readonly retrySeconds: number;
  private readonly swapListeners = new Set<(sets: DispatcherSets) => void>();
  private refreshes = new Map<string, Refresh>();
  private queue: Promise<unknown> = Promise.resolve();
  /** Resolved target addresses, and address|port pairs, of every destination (isNextHop). */
  private hopAddresses = new Set<string>();
  private hopAddressPorts = new Set<string>();
  private closed = false;

  constructor(options: HolderOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.onStateChange = options.onStateChange;
    this.resolver = options.resolver ?? new SipResolver();
    this.log = options.log ?? (() => {});
    this.retrySeconds = options.retrySeconds ?? 30;
    this.sets = DispatcherSets.empty(this.context());
  }

  private context() {
    return { clock: this.clock, onStateChange: this.onStateChange };
  }

  /** The sets in use. Read it once per message: a reload swaps it whole. */
  get current(): DispatcherSets {
    return this.sets;
  }

  /** Called after every swap with the new sets (the prober follows set changes this way). */
  onSwap(listener: (sets: DispatcherSets) => void): () => void {
    this.swapListeners.add(listener);
    return () => this.swapListeners.delete(listener);
  }

  /** Reloads are serialized: a second one waits for the first. */
  reload(rows: readonly DispatcherRow[]): Promise<ReloadSummary> {
    const run = this.queue.then(() => this.reloadNow(rows));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async reloadNow(rows: readonly DispatcherRow[]): Promise<ReloadSummary> {
    const started = performance.now();
    const failed = (why: string, cause?: unknown) =>
      new SipctlError('E_DS_RELOAD_FAILED', `dispatcher reload failed, previous sets kept: ${why}`, { cause });
    let prepared: PreparedRow[];
    const names = new Map<string, { uri: DestinationUri; keys: string[]; resolution: Resolution }>();
    try {
      const checked = rows.map((row) => ({ row, checked: checkRow(row) }));
      // One lookup per distinct name, all at once.
      const pending = new Map<string, Promise<Resolution>>();
      for (const { checked: c } of checked) {
        const k = resolutionKey(c.uri);
        if (!pending.has(k)) pending.set(k, this.resolver.resolve(c.uri.parsed, c.uri.explicitTransport));
      }
      const settled = await Promise.allSettled(pending.values());
      const resolved = new Map<string, Resolution>();
      let i = 0;
      for (const k of pending.keys()) {
        const r = settled[i++]!;
        if (r.status === 'rejected') {
          const row = checked.find((c) => resolutionKey(c.checked.uri) === k)!;
          const why = r.reason instanceof Error ? r.reason.message : String(r.reason);
          throw new SipctlError('E_DS_UNRESOLVABLE', `dispatcher row ${row.row.id} (${row.row.destination}): ${why}`);
        }
        resolved.set(k, r.value);
      }
      prepared = checked.map(({ row, checked: c }) => {
        const k = resolutionKey(c.uri);
        const resolution = resolved.get(k)!;
        if (resolution.ttlSeconds !== Infinity) {
          let n = names.get(k);
          if (n === undefined) names.set(k, (n = { uri: c.uri, keys: [], resolution }));
          n.keys.push(destinationKey(c.setid, c.uri.normalized));
        }
        return { row, checked: c, resolution };
      });
    } catch (err) {
      throw failed(err instanceof Error ? err.message : String(err), err);
    }
    let next: DispatcherSets;
    try {
      next = DispatcherSets.build(prepared, this.sets, this.context());
    } catch (err) {
      throw failed(err instanceof Error ? err.message : String(err), err);
    }
    if (this.closed) throw failed('the dispatcher is closed');

    this.sets = next; // the swap: one reference assignment
    this.indexNextHops();
    for (const change of next.pendingChanges) this.onStateChange?.(change);
    next.pendingChanges.length = 0;
    this.rescheduleRefreshes(names);
    for (const l of this.swapListeners) l(next);

    return { ...summarize(next), ms: Math.round((performance.now() - started) * 1000) / 1000 };
  }

  private rescheduleRefreshes(names: Map<string, { uri: DestinationUri; keys: string[]; resolution: Resolution }>): void {
    for (const r of this.refreshes.values()) this.clock.clearTimeout(r.handle);
    this.refreshes = new Map();
    for (const [k, n] of names) {
      const r: Refresh = { uri: n.uri, keys: n.keys, handle: undefined };
      this.refreshes.set(k, r);
      this.scheduleRefresh(k, r, n.resolution.ttlSeconds);
    }
  }

  private scheduleRefresh(k: string, r: Refresh, seconds: number): void {
    r.handle = this.clock.setTimeout(() => {
      void this.refresh(k, r);
    }, seconds * 1000);
  }

  /** Re-resolves one name after its TTL; the targets change in place on every destination using it. */
  private async refresh(k: string, r: Refresh): Promise<void> {
    let resolution: Resolution;
    try {
      resolution = await this.resolver.resolve(r.uri.parsed, r.uri.explicitTransport);
    } catch (err) {
      if (this.closed || this.refreshes.get(k) !== r) return;
      const why = err instanceof Error ? err.message : String(err);
      this.log(`dispatcher: re-resolving ${r.uri.normalized} failed, keeping previous targets: ${why}`);
      this.scheduleRefresh(k, r, this.retrySeconds);
      return;
    }
    // A reload in the meantime resolved afresh and owns the schedule now.
    if (this.closed || this.refreshes.get(k) !== r) return;
    const current = this.sets;
    const before = current.byKey(r.keys[0]!)?.targets;
    if (before !== undefined && !sameTargets(before, resolution.targets)) {
      this.log(`dispatcher: ${r.uri.normalized} now resolves to ${resolution.targets.map(targetText).join(', ')} (${resolution.via})`);
    }
    for (const key of r.keys) {
      const d = current.byKey(key);
      if (d === undefined) continue;
      d.targets = resolution.targets;
      d.resolvedVia = resolution.via;
    }
    this.indexNextHops();
    this.scheduleRefresh(k, r, resolution.ttlSeconds);
  }

  /**
   * Whether a message from address[:port] comes from one of our destinations (Kamailio
   * ds_is_from_list). Port 0 or undefined matches any port. One Set lookup.
   */
  isNextHop(address: string, port?: number): boolean {
    // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
    if (address.startsWith('::ffff:') && address.indexOf('.') > 0) address = address.slice(7);
    if (port === undefined || port === 0) return this.hopAddresses.has(address);
    return this.hopAddressPorts.has(`${address}|${port}`);
  }

  private indexNextHops(): void {
    const addresses = new Set<string>();
    const pairs = new Set<string>();
    for (const d of this.sets.all()) {
      for (const t of d.targets) {
        addresses.add(t.address);
        pairs.add(`${t.address}|${t.port}`);
      }
    }
    this.hopAddresses = addresses;
    this.hopAddressPorts = pairs;
  }

  /** Stops DNS refresh timers. */
  close(): void {
    this.closed = true;
    for (const r of this.refreshes.values()) this.clock.clearTimeout(r.handle);
    this.refreshes.clear();
    this.swapListeners.clear();
  }
}

function targetText(t: Target): string {
  return `${t.protocol}:${t.address.includes(':') ? `[${t.address}]` : t.address}:${t.port}`;
}

function sameTargets(a: readonly Target[], b: readonly Target[]): boolean {
  return a.length === b.length && a.every((t, i) => targetText(t) === targetText(b[i]!));
}

export function summarize(sets: DispatcherSets): { sets: ReloadSummary['sets']; total: number } {
  return {
    sets: sets.setIds().map((setid) => {
      const s = sets.set(setid)!;
      return { setid, count: s.destinations.length, active: s.activeCount };
    }),
    total: sets.total,
  };
}
