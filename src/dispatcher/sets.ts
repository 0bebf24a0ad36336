/**
 * All destination sets, built whole from table rows and swapped whole by the holder
 * (DESIGN.md "Nothing half-loaded"). The proxy core calls `select` per request: one Map
 * lookup and an O(1) pick.
 */
import { SipctlError, usageError } from '../errors.js';
import type { Algorithm } from './algorithm.js';
import { destinationKey, parseDestinationUri } from './destination-uri.js';
import type { Resolution } from './resolve.js';
import type { CheckedRow } from './row.js';
import { SENT_HISTORY_SLOTS } from './sent-rate.js';
import { DestinationSet } from './set.js';
import {
  DESTINATION_STATES,
  DS_FLAG_DISABLED,
  DS_FLAG_INACTIVE,
  DS_FLAG_PROBING,
  type Clock,
  type Destination,
  type DestinationState,
  type DispatcherRow,
  type SelectionKey,
  type StateChange,
  type StateChangeListener,
} from './types.js';

export interface SetsContext {
  clock: Clock;
  onStateChange?: StateChangeListener;
}

/** A row ready to become a destination: validated and resolved. */
export interface PreparedRow {
  row: DispatcherRow;
  checked: CheckedRow;
  resolution: Resolution;
}

/** The state a destination starts in, from the flags column (Kamailio bit meanings). */
export function initialState(flags: number): { state: DestinationState; reason: string } {
  if (flags & DS_FLAG_DISABLED) return { state: 'disabled', reason: `flags ${flags}: admin disabled` };
  if (flags & DS_FLAG_INACTIVE) return { state: 'inactive', reason: `flags ${flags}: inactive` };
  if (flags & DS_FLAG_PROBING) return { state: 'probing', reason: `flags ${flags}: probing until probes succeed` };
  return { state: 'active', reason: 'loaded' };
}

/** `maxload` set (above 0) and reached: no more calls for now. 0 or absent: unlimited. */
export function atMaxLoad(d: Destination): boolean {
  const max = d.attrs.maxload;
  return max !== undefined && max > 0 && d.stats.calls.active >= max;
}

export class DispatcherSets {
  private readonly sets: Map<number, DestinationSet>;
  private readonly keyed: Map<string, Destination>;
  private readonly ctx: SetsContext;
  /** State changes decided while building (flags edited in the table); reported after the swap. */
  readonly pendingChanges: StateChange[] = [];

  private constructor(sets: Map<number, DestinationSet>, keyed: Map<string, Destination>, ctx: SetsContext) {
    this.sets = sets;
    this.keyed = keyed;
    this.ctx = ctx;
  }

  static empty(ctx: SetsContext): DispatcherSets {
    return new DispatcherSets(new Map(), new Map(), ctx);
  }

  /**
   * Builds new sets from prepared rows. A destination that was already loaded (same setid and
   * normalized URI) keeps its state, counters and probe history, unless its flags column
   * changed: then the new flags decide its state, as an admin edit should.
   * Throws SipctlError E_DS_DUPLICATE when two rows name the same destination in one set.
   */
  static build(rows: readonly PreparedRow[], previous: DispatcherSets | undefined, ctx: SetsContext): DispatcherSets {
    const now = ctx.clock.now();
    const grouped = new Map<number, { dests: Destination[]; uris: string[] }>();
    const keyed = new Map<string, Destination>();
    const pending: StateChange[] = [];
    for (const { row, checked, resolution } of rows) {
      const key = destinationKey(checked.setid, checked.uri.normalized);
      const twin = keyed.get(key);
      if (twin !== undefined) {
        throw new SipctlError(
          'E_DS_DUPLICATE',
          `dispatcher rows ${twin.id} and ${row.id} both name ${checked.uri.normalized} in set ${checked.setid}; remove one`,
        );
      }
      const old = previous?.keyed.get(key);
      let state: DestinationState;
      let stats: Destination['stats'];
      let health: Destination['health'];
      if (old !== undefined && old.flags === checked.flags) {
        state = old.state;
        stats = { ...old.stats };
        health = { ...old.health };
      } else {
        const init = initialState(checked.flags);
        state = init.state;
        health = { failures: 0, successes: 0 };
        if (old === undefined) {
          stats = {
            requestsSent: 0,
            lastProbe: undefined,
            probeLatencyAvgMs: undefined,
            probeFailures: 0,
            failovers: 0,
            timeouts: 0,
            calls: { active: 0 },
            sentHistory: new Float64Array(SENT_HISTORY_SLOTS),
            stateSince: now,
            stateReason: init.reason,
          };
        } else {
          const reason = `flags changed from ${old.flags} to ${checked.flags}`;
          stats = { ...old.stats, stateSince: now, stateReason: reason };
          if (old.state !== state) pending.push({ setid: checked.setid, uri: row.destination, from: old.state, to: state, reason });
        }
      }
      const d: Destination = {
        id: row.id,
        setid: checked.setid,
        uri: row.destination,
        parsed: checked.uri.parsed,
        key,
        flags: checked.flags,
        priority: checked.priority,
        attrs: checked.attrs,
        attrsText: row.attrs ?? '',
        description: row.description ?? '',
        state,
        targets: resolution.targets,
        resolvedVia: resolution.via,
        stats,
        health,
      };
      keyed.set(key, d);
      let g = grouped.get(checked.setid);
      if (g === undefined) grouped.set(checked.setid, (g = { dests: [], uris: [] }));
      g.dests.push(d);
      g.uris.push(checked.uri.normalized);
    }
    const sets = new Map<number, DestinationSet>();
    for (const setid of [...grouped.keys()].sort((a, b) => a - b)) {
      const g = grouped.get(setid)!;
      sets.set(setid, new DestinationSet(setid, g.dests, g.uris));
    }
    const built = new DispatcherSets(sets, keyed, ctx);
    built.pendingChanges.push(...pending);
    return built;
  }

  /**
   * Picks a destination of `setid` by `algorithm` (name or Kamailio number) and counts the
   * request against it. null when the set does not exist or none of its destinations is
   * active (the route answers 503). Hot path: no allocation, no I/O.
   */
  select(setid: number, algorithm: Algorithm | number, key: SelectionKey): Destination | null {
    const set = this.sets.get(setid);
    if (set === undefined) return null;
    const d = set.pick(algorithm, key);
    if (d !== null) d.stats.requestsSent++;
    return d;
  }

  /**
   * Failover order: the algorithm's pick first (counted, like `select`), then the other
   * active destinations by priority. A caller that moves on to a later candidate counts it
   * with `countSent`.
   */
  candidates(setid: number, algorithm: Algorithm | number, key: SelectionKey): Destination[] {
    const set = this.sets.get(setid);
    if (set === undefined) return [];
    const list = set.order(algorithm, key);
    if (list.length > 0) list[0]!.stats.requestsSent++;
    return list;
  }

  countSent(d: Destination): void {
    d.stats.requestsSent++;
  }

  /**
   * A request that had gone to `d` goes on to another destination (the transaction layer's
   * failover, Kamailio's ds_next_dst). The hook that layer calls; counted per destination.
   */
  countFailover(d: Destination): void {
    d.stats.failovers++;
  }

  /**
   * Kamailio's ds_next_dst: the first active destination of the set, in the set's failover
   * order (priority, then id: the order `candidates` gives after the algorithm's pick), that
   * is not one of `tried`. Counted as sent.
   */
  next(setid: number, tried: readonly Destination[]): Destination | null {
    const set = this.sets.get(setid);
    if (set === undefined) return null;
    for (const d of set.destinations) {
      if (d.state !== 'active' || tried.includes(d)) continue;
      // A destination at its maxload takes no more calls, failover included (call-load).
      if (atMaxLoad(d)) continue;
      d.stats.requestsSent++;
      return d;
    }
    return null;
  }

  /**
   * Kamailio's ds_mark_dst: a branch to `d` timed out. It stays in rotation, marked trying
   * ('T'), until `threshold` such timeouts in a row take it out (inactive; probing, when on
   * for its set, brings it back).
   */
  markTimeout(d: Destination, threshold: number): void {
    d.stats.timeouts++;
    if (d.state !== 'active') return;
    d.health.failures++;
    d.health.successes = 0;
    if (d.health.failures >= threshold) this.transition(d, 'inactive', `${d.health.failures} transaction timeouts in a row`);
  }

  /** `d` answered a request: its run of timeouts (the trying mark) ends. */
  markAnswered(d: Destination): void {
    if (d.state === 'active' && d.health.failures > 0) d.health.failures = 0;
  }

  has(setid: number): boolean {
    return this.sets.has(setid);
  }

  set(setid: number): DestinationSet | undefined {
    return this.sets.get(setid);
  }

  /** Set ids in ascending order. */
  setIds(): number[] {
    return [...this.sets.keys()];
  }

  get total(): number {
    return this.keyed.size;
  }

  /** By identity (setid + normalized URI), as used across reloads. */
  byKey(key: string): Destination | undefined {
    return this.keyed.get(key);
  }

  *all(): IterableIterator<Destination> {
    for (const set of this.sets.values()) yield* set.destinations;
  }

  /**
   * Admin state change (Kamailio dispatcher.set_state). `uri` is a destination of the set
   * (any spelling that normalizes the same) or 'all'. Returns how many destinations changed.
   */
  setState(setid: number, uri: string, state: DestinationState, reason: string): number {
    if (!DESTINATION_STATES.includes(state)) {
      throw usageError('E_DS_BAD_STATE', `unknown state '${String(state)}'; use one of: ${DESTINATION_STATES.join(', ')}`);
    }
    const set = this.sets.get(setid);
    if (set === undefined) {
      const known = this.setIds();
      throw new SipctlError(
        'E_DS_NO_SET',
        `no dispatcher set ${setid} is loaded${known.length ? ` (loaded sets: ${known.join(', ')})` : ' (no sets loaded)'}`,
        { usage: true },
      );
    }
    let targets: readonly Destination[];
    if (uri === 'all') {
      targets = set.destinations;
    } else {
      const d = set.get(parseDestinationUri(uri).normalized);
      if (d === undefined) {
        throw new SipctlError(
          'E_DS_NO_DESTINATION',
          `set ${setid} has no destination ${uri} (it has: ${set.destinations.map((x) => x.uri).join(', ')})`,
          { usage: true },
        );
      }
      targets = [d];
    }
    const changes: StateChange[] = [];
    for (const d of targets) {
      const c = this.applyState(d, state, reason);
      if (c !== null) changes.push(c);
    }
    if (changes.length > 0) set.rebuild();
    // Reported once the set's tables agree with the new states.
    for (const c of changes) this.ctx.onStateChange?.(c);
    return changes.length;
  }

  /**
   * Moves one destination to `to`, resets its probe counters, rebuilds its set's tables and
   * reports the change. Returns false (and does nothing) when it is already in that state.
   */
  transition(d: Destination, to: DestinationState, reason: string): boolean {
    const change = this.applyState(d, to, reason);
    if (change === null) return false;
    this.sets.get(d.setid)?.rebuild();
    this.ctx.onStateChange?.(change);
    return true;
  }

  private applyState(d: Destination, to: DestinationState, reason: string): StateChange | null {
    const from = d.state;
    if (from === to) return null;
    d.state = to;
    d.health.failures = 0;
    d.health.successes = 0;
    d.stats.stateSince = this.ctx.clock.now();
    d.stats.stateReason = reason;
    return { setid: d.setid, uri: d.uri, from, to, reason };
  }
}
