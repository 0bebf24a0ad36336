/**
 * Flood control per source address, in the manner of Kamailio's pike module: a source that
 * sends more than `maxRequests` messages within `windowS` seconds is blocked for `blockS`
 * seconds, and whatever it sends meanwhile is dropped without a reply (a reply would make us
 * an amplifier for spoofed floods, and tells a scanner it found something).
 *
 * It runs on every framed message before the message is parsed, so the check is O(1) and,
 * for a source already tracked, allocates nothing: one Map lookup keyed by the source
 * address text the transport already made, a few number compares, and a move to the tail
 * of an intrusive list. What is counted is every framed message, requests and responses
 * alike: pike counts requests only, but a forged response costs us the same parse as a
 * request, and counting it closes that way around the limit. Our next hops (PBXs, whose
 * responses at high call rates would otherwise cross any sane limit) are exempt.
 *
 * Window: a source's window opens with its first message and lasts `windowS`; the message
 * that makes the count `maxRequests + 1` inside it starts the block (and is dropped). A steady
 * sender is held to `maxRequests` per window; a burst that straddles two windows can pass up
 * to twice that, the same slack pike's per-unit counting has.
 *
 * Exemption is decided only when a source crosses the limit (never on the common path), and
 * the verdict is kept until the source's window ends, so a table reload is seen within one
 * window; `recheckExemptions()` lifts blocks on sources a reload has made exempt.
 *
 * Memory is bounded by `maxTracked` entries. Sources that are not blocked sit in a list by
 * last message (least recent first); blocked sources sit in a second list by block end. A new
 * source at the cap takes over the least recently seen unblocked entry; only when every entry
 * is blocked does it take over the block that would end soonest (that source's block is lost:
 * a spray of spoofed addresses large enough for that must not grow the table). `sweep()`,
 * run about once a second, ends expired blocks and forgets sources idle for a whole window.
 */
import type { LogFields } from '../log/logger.js';

export interface FloodLimits {
  /** Messages a source may send within one window; one more starts a block. */
  maxRequests: number;
  /** The window, in seconds. */
  windowS: number;
  /** How long a block lasts, in seconds. */
  blockS: number;
  /** The most sources tracked at once (the table's hard cap). */
  maxTracked: number;
}

export interface FloodClock {
  /** Milliseconds since the epoch (Date.now); injected so tests can use fake time. */
  now(): number;
}

/** Where the guard logs block starts and ends: the proxy's Logger fits. */
export interface FloodLog {
  limited(level: 'warn' | 'info', kind: string, message: string, fields?: LogFields): void;
}

/** Whether a source is exempt (an address-table group of `flood.exemptGroups`, a next hop). */
export type ExemptCheck = (address: string, port: number) => boolean;

export interface FloodGuardOptions {
  limits: FloodLimits;
  isExempt: ExemptCheck;
  log: FloodLog;
  clock?: FloodClock;
}

/** Why a block ended. */
export type BlockEnd = 'expired' | 'unblocked' | 'exempt' | 'evicted';

/** One source as `flood.list` shows it. */
export interface FloodSourceView {
  address: string;
  /** blocked; hot (at least half its budget used in the current window); exempt (over the limit, but exempt). */
  state: 'blocked' | 'hot' | 'exempt';
  /** Messages in the current window; for a blocked source, the count that started the block. */
  count: number;
  /** When the current window (or for a blocked source, the window that led to the block) opened. */
  windowStart: string;
  blockedSince: string | null;
  blockedUntil: string | null;
  /** Messages dropped during the current block. */
  dropped: number;
  lastSeen: string;
}

export interface FloodListResult {
  enabled: true;
  maxRequests: number;
  windowS: number;
  blockS: number;
  tracked: number;
  maxTracked: number;
  /** Sources blocked now. */
  blocked: number;
  /** Blocked and hot sources, blocked first (most recent block first), then by count. */
  sources: FloodSourceView[];
  /** How many more blocked or hot sources there were than `sources` holds. */
  omitted: number;
}

export interface FloodUnblockResult {
  address: string;
  /** False when the address was not blocked (nothing changed). */
  unblocked: boolean;
  /** Messages dropped during the block that was lifted. */
  dropped: number;
  blockedSince: string | null;
}

/** Counters since the proxy started, for `status`. */
export interface FloodStats {
  enabled: true;
  maxRequests: number;
  windowS: number;
  blockS: number;
  /** Sources in the table now. */
  tracked: number;
  maxTracked: number;
  /** Sources blocked now. */
  blocked: number;
  /** Blocks started. */
  blocks: number;
  /** Messages dropped because their source was blocked. */
  dropped: number;
  /** Entries taken over by a new source because the table was full. */
  evicted: number;
  /** Exemption checks made (once per source per window, at the limit only). */
  exemptChecks: number;
}

const VERDICT_UNKNOWN = 0;
const VERDICT_LIMITED = 1;
const VERDICT_EXEMPT = 2;

/** One tracked source. Fields are numbers from the start so their representation never changes. */
class SourceEntry {
  address: string;
  windowStart: number;
  count = 0;
  /** Exemption verdict for the current window (VERDICT_*). */
  verdict = VERDICT_UNKNOWN;
  /** 0 while not blocked. */
  blockedSince = 0;
  blockedUntil = 0;
  dropped = 0;
  lastSeen: number;
  prev: SourceEntry | null = null;
  next: SourceEntry | null = null;

  constructor(address: string, now: number) {
    this.address = address;
    this.windowStart = now;
    this.lastSeen = now;
  }
}

/** An intrusive doubly linked list: O(1) append, unlink and head, no allocation. */
class EntryList {
  head: SourceEntry | null = null;
  tail: SourceEntry | null = null;
  size = 0;

  append(e: SourceEntry): void {
    e.prev = this.tail;
    e.next = null;
    if (this.tail === null) this.head = e;
    else this.tail.next = e;
    this.tail = e;
    this.size++;
  }

  unlink(e: SourceEntry): void {
    if (e.prev === null) this.head = e.next;
    else e.prev.next = e.next;
    if (e.next === null) this.tail = e.prev;
    else e.next.prev = e.prev;
    e.prev = null;
    e.next = null;
    this.size--;
  }
}

/** The most sources `list()` returns (the rest are counted in `omitted`). */
export const FLOOD_LIST_LIMIT = 1000;

export class FloodGuard {
  private readonly maxRequests: number;
  private readonly windowMs: number;
  private readonly blockMs: number;
  private readonly maxTracked: number;
  private readonly isExempt: ExemptCheck;
  private readonly log: FloodLog;
  private readonly clock: FloodClock;
  private readonly entries = new Map<string, SourceEntry>();
  /** Unblocked sources, least recently seen first. */
  private readonly active = new EntryList();
  /** Blocked sources, soonest block end first (every block lasts blockMs, so: in start order). */
  private readonly blockedList = new EntryList();
  private blocks = 0;
  private dropped = 0;
  private evicted = 0;
  private exemptChecks = 0;

  constructor(opts: FloodGuardOptions) {
    this.maxRequests = opts.limits.maxRequests;
    this.windowMs = opts.limits.windowS * 1000;
    this.blockMs = opts.limits.blockS * 1000;
    this.maxTracked = opts.limits.maxTracked;
    this.isExempt = opts.isExempt;
    this.log = opts.log;
    this.clock = opts.clock ?? { now: Date.now };
  }

  /**
   * Whether a message from `sourceAddress`:`sourcePort` may go on to be parsed. False: drop
   * it silently (its source is blocked, or this message started the block). Never throws.
   */
  allows(sourceAddress: string, sourcePort: number): boolean {
    const address = plainAddress(sourceAddress);
    const now = this.clock.now();
    let e = this.entries.get(address);
    if (e === undefined) {
      e = this.track(address, now);
    } else if (e.blockedUntil !== 0) {
      if (now < e.blockedUntil) {
        e.dropped++;
        e.lastSeen = now;
        this.dropped++;
        return false;
      }
      this.endBlock(e, now, 'expired');
      this.active.append(e);
      e.windowStart = now;
      e.count = 0;
    } else if (e !== this.active.tail) {
      // Least recently seen first: this one moves to the end.
      this.active.unlink(e);
      this.active.append(e);
    }
    e.lastSeen = now;
    if (now - e.windowStart >= this.windowMs) {
      e.windowStart = now;
      e.count = 0;
      e.verdict = VERDICT_UNKNOWN;
    }
    if (++e.count <= this.maxRequests) return true;
    if (e.verdict === VERDICT_UNKNOWN) {
      this.exemptChecks++;
      e.verdict = this.isExempt(address, sourcePort) ? VERDICT_EXEMPT : VERDICT_LIMITED;
    }
    if (e.verdict === VERDICT_EXEMPT) return true;
    this.startBlock(e, now);
    e.dropped = 1;
    this.dropped++;
    return false;
  }

  /**
   * Ends expired blocks (logging each with its drop count) and forgets sources that sent
   * nothing for a whole window (their count would start again from 0 anyway). Cost: the
   * entries it removes, plus one.
   */
  sweep(): void {
    const now = this.clock.now();
    for (let e = this.blockedList.head; e !== null && e.blockedUntil <= now; e = this.blockedList.head) {
      this.endBlock(e, now, 'expired');
      this.entries.delete(e.address);
    }
    for (let e = this.active.head; e !== null && now - e.lastSeen >= this.windowMs; e = this.active.head) {
      this.active.unlink(e);
      this.entries.delete(e.address);
    }
  }

  /** Lifts the block on `address` (an IP literal) at once; its count starts again from 0. */
  unblock(address: string): FloodUnblockResult {
    const key = plainAddress(address);
    const e = this.entries.get(key);
    if (e === undefined || e.blockedUntil === 0) return { address: key, unblocked: false, dropped: 0, blockedSince: null };
    const now = this.clock.now();
    const result: FloodUnblockResult = { address: key, unblocked: true, dropped: e.dropped, blockedSince: iso(e.blockedSince) };
    this.endBlock(e, now, 'unblocked');
    e.windowStart = now;
    e.count = 0;
    e.lastSeen = now;
    this.active.append(e);
    return result;
  }

  /**
   * After the address table or the next hops changed: blocked sources that are exempt now are
   * unblocked, and every verdict is asked again the next time a source is over the limit.
   */
  recheckExemptions(): number {
    const now = this.clock.now();
    let lifted = 0;
    for (let e = this.blockedList.head; e !== null; ) {
      const next: SourceEntry | null = e.next;
      // The port is not kept per source; 0 matches address entries for any port.
      if (this.isExempt(e.address, 0)) {
        this.endBlock(e, now, 'exempt');
        e.windowStart = now;
        e.count = 0;
        e.lastSeen = now;
        this.active.append(e);
        lifted++;
      }
      e = next;
    }
    for (let e = this.active.head; e !== null; e = e.next) e.verdict = VERDICT_UNKNOWN;
    return lifted;
  }

  /** Blocked sources, then hot ones (at least half the budget used in the current window). */
  list(limit = FLOOD_LIST_LIMIT): FloodListResult {
    const now = this.clock.now();
    const blocked: SourceEntry[] = [];
    for (let e = this.blockedList.tail; e !== null; e = e.prev) {
      // An expired block not yet swept is over: it is no longer shown as blocked.
      if (e.blockedUntil > now) blocked.push(e);
    }
    const hot: SourceEntry[] = [];
    const hotFrom = Math.ceil(this.maxRequests / 2);
    for (let e = this.active.head; e !== null; e = e.next) {
      if (now - e.windowStart < this.windowMs && e.count >= hotFrom) hot.push(e);
    }
    hot.sort((a, b) => b.count - a.count);
    const all = blocked.concat(hot);
    const shown = all.slice(0, limit);
    return {
      enabled: true,
      maxRequests: this.maxRequests,
      windowS: this.windowMs / 1000,
      blockS: this.blockMs / 1000,
      tracked: this.entries.size,
      maxTracked: this.maxTracked,
      blocked: blocked.length,
      sources: shown.map((e) => this.view(e)),
      omitted: all.length - shown.length,
    };
  }

  stats(): FloodStats {
    return {
      enabled: true,
      maxRequests: this.maxRequests,
      windowS: this.windowMs / 1000,
      blockS: this.blockMs / 1000,
      tracked: this.entries.size,
      maxTracked: this.maxTracked,
      blocked: this.blockedList.size,
      blocks: this.blocks,
      dropped: this.dropped,
      evicted: this.evicted,
      exemptChecks: this.exemptChecks,
    };
  }

  // ------------------------------------------------------------------ internals

  /** A new entry at the end of the active list, taking over an old one at the cap. */
  private track(address: string, now: number): SourceEntry {
    let e: SourceEntry;
    if (this.entries.size < this.maxTracked) {
      e = new SourceEntry(address, now);
    } else {
      // At the cap: the least recently seen unblocked source, else the block that ends first.
      const victim = this.active.head ?? this.blockedList.head!;
      if (victim.blockedUntil !== 0) this.endBlock(victim, now, 'evicted');
      else this.active.unlink(victim);
      this.entries.delete(victim.address);
      this.evicted++;
      e = victim;
      e.address = address;
      e.windowStart = now;
      e.count = 0;
      e.verdict = VERDICT_UNKNOWN;
      e.dropped = 0;
      e.lastSeen = now;
    }
    this.entries.set(address, e);
    this.active.append(e);
    return e;
  }

  private startBlock(e: SourceEntry, now: number): void {
    this.active.unlink(e);
    e.blockedSince = now;
    e.blockedUntil = now + this.blockMs;
    e.dropped = 0;
    this.blockedList.append(e);
    this.blocks++;
    // Once per block, never per message; limited() bounds even a spray of many sources.
    this.log.limited('warn', 'flood.block', 'flood: blocking a source', {
      source: e.address,
      count: e.count,
      windowS: this.windowMs / 1000,
      blockS: this.blockMs / 1000,
      until: new Date(e.blockedUntil).toISOString(),
    });
  }

  /** Takes `e` off the blocked list (the caller puts it elsewhere or forgets it) and logs the end. */
  private endBlock(e: SourceEntry, now: number, why: BlockEnd): void {
    this.blockedList.unlink(e);
    this.log.limited('info', why === 'evicted' ? 'flood.evict' : 'flood.unblock', 'flood: block ended', {
      source: e.address,
      dropped: e.dropped,
      blockedS: Math.round((now - e.blockedSince) / 100) / 10,
      reason: why,
    });
    e.blockedSince = 0;
    e.blockedUntil = 0;
    e.dropped = 0;
    e.verdict = VERDICT_UNKNOWN;
  }

  private view(e: SourceEntry): FloodSourceView {
    const blocked = e.blockedUntil !== 0;
    return {
      address: e.address,
      state: blocked ? 'blocked' : e.verdict === VERDICT_EXEMPT && e.count > this.maxRequests ? 'exempt' : 'hot',
      count: e.count,
      windowStart: iso(e.windowStart),
      blockedSince: blocked ? iso(e.blockedSince) : null,
      blockedUntil: blocked ? iso(e.blockedUntil) : null,
      dropped: e.dropped,
      lastSeen: iso(e.lastSeen),
    };
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * One key per peer: a dual-stack socket reports an IPv4 peer as `::ffff:a.b.c.d`, which is
 * that IPv4 address. Checked by its first character so an IPv4 source costs one compare.
 */
export function plainAddress(address: string): string {
  if (address.charCodeAt(0) !== 58 /* ':' */) return address;
  return address.startsWith('::ffff:') && address.indexOf('.') > 0 ? address.slice(7) : address;
}
