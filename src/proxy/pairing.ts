/**
 * Where each recent INVITE was forwarded, so that its CANCEL and the ACK for a non-2xx final
 * response reach the same next hop whatever picked it (a round-robin pick would otherwise
 * send them elsewhere). Keyed by the stateless branch we gave the INVITE, which the CANCEL
 * and that ACK get too (see statelessBranch).
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
  expires: number;
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

  remember(branch: string, target: Target): void {
    const now = this.now();
    const old = this.map.get(branch);
    if (old !== undefined) {
      // A retransmission: keep the first pick (it is where the INVITE went).
      return;
    }
    this.map.set(branch, { target, expires: now + this.ttlMs });
    this.prune(now);
  }

  /**
   * The INVITE got a 2xx: its ACK follows the route set and a CANCEL is moot (§9.1: too
   * late), so the entry has done its job. Keeps the map small on the common path.
   */
  forget(branch: string): void {
    this.map.delete(branch);
  }

  lookup(branch: string): Target | undefined {
    const e = this.map.get(branch);
    if (e === undefined) return undefined;
    if (e.expires <= this.now()) {
      this.map.delete(branch);
      return undefined;
    }
    return e.target;
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
