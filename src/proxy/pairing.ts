/**
 * Where each recent INVITE was forwarded, and with which branch, so that its CANCEL and the
 * ACK for a non-2xx final response reach the same next hop whatever picked it (a round-robin
 * pick would otherwise send them elsewhere) with the INVITE's branch (how the next hop
 * matches them, §9.1, §17.1.1.3). Keyed by the transaction part of the stateless branch,
 * which the CANCEL and that ACK compute too (see RequestDigest in via.ts); the loop part
 * may differ — a CANCEL need not repeat the INVITE's Proxy-Authorization.
 *
 * Bounded and expiring: an entry lives until its INVITE is answered with a 2xx, or for
 * `ttlMs` (default 32 s = Timer B, 64·T1, after which the INVITE transaction is over at the
 * next hop, RFC 3261 §17.1.1.2), and at most `maxEntries` are kept (default 200,000: 32 s
 * of unanswered INVITEs at over 6,000 new calls/s), oldest dropped first. Insertion order is
 * expiry order, so pruning looks only at the front of the Map.
 */
import type { Target } from '../transport/types.js';

export interface PairingOptions {
  maxEntries?: number;
  ttlMs?: number;
  now?: () => number;
}

interface Entry {
  target: Target;
  /** The branch the INVITE went out with. */
  branch: string;
  expires: number;
}

/** Where an INVITE went and with which branch. */
export interface PairedInvite {
  readonly target: Target;
  readonly branch: string;
}

export class InvitePairing {
  private readonly map = new Map<string, Entry>();
  private readonly maxEntries: number;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(opts: PairingOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 200_000;
    this.ttlMs = opts.ttlMs ?? 32_000;
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.map.size;
  }

  remember(key: string, target: Target, branch: string): void {
    const now = this.now();
    const old = this.map.get(key);
    if (old !== undefined) {
      // A retransmission: keep the first pick (it is where the INVITE went).
      return;
    }
    this.map.set(key, { target, branch, expires: now + this.ttlMs });
    this.prune(now);
  }

  /**
   * The INVITE got a 2xx: its ACK follows the route set and a CANCEL is moot (§9.1: too
   * late), so the entry has done its job. Keeps the map small on the common path.
   */
  forget(key: string): void {
    this.map.delete(key);
  }

  lookup(key: string): PairedInvite | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    if (e.expires <= this.now()) {
      this.map.delete(key);
      return undefined;
    }
    return e;
  }

  private prune(now: number): void {
    // Drop a few from the front each time: amortized O(1), never a long pause.
    let budget = 8;
    for (const [k, e] of this.map) {
      if (budget-- === 0) break;
      if (e.expires <= now || this.map.size > this.maxEntries) this.map.delete(k);
      else break;
    }
  }
}
