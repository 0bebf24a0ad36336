/**
 * The transaction table: every live server and client transaction, found in O(1).
 *
 * - Server transactions (§17.2.3) are filed by RequestKey.id (the branch for RFC 3261
 *   peers, the RFC 2543 key otherwise) in buckets: an INVITE and its CANCEL share a branch,
 *   and so can requests from different sent-bys; a bucket holds at most MAX_BUCKET
 *   transactions, so a lookup compares a handful at most.
 * - Client transactions (§17.1.3) are filed by the branch we put in our Via: a response
 *   matches when its top Via branch is that branch and its CSeq method is the transaction's
 *   method (the INVITE and the CANCEL we send on one branch share it).
 *
 * A hard cap on live server transactions: every request that creates one is counted, and
 * beyond `maxServer` the table admits no more — the owner answers 503 with Retry-After.
 * Client transactions are bounded through it (a server transaction has at most
 * `maxBranches` branches and one CANCEL per branch).
 */
import type { SipMessage } from '../sip/message.js';
import type { ClientTransaction } from './client.js';
import type { RequestKey } from './key.js';
import type { ServerTransaction } from './server.js';

/** Most transactions one key may file: an INVITE, its CANCEL, and a few odd peers. */
export const MAX_BUCKET = 8;

export const DEFAULT_MAX_TRANSACTIONS = 100_000;

export class TransactionTable {
  readonly maxServer: number;
  private readonly servers = new Map<string, ServerTransaction>();
  private readonly legacy = new Map<string, ServerTransaction>();
  private readonly clients = new Map<string, ClientTransaction>();
  private _serverCount = 0;
  private _clientCount = 0;

  constructor(maxServer = DEFAULT_MAX_TRANSACTIONS) {
    if (!Number.isInteger(maxServer) || maxServer < 1) throw new RangeError(`maxServer must be a positive integer, not ${maxServer}`);
    this.maxServer = maxServer;
  }

  get serverCount(): number {
    return this._serverCount;
  }

  get clientCount(): number {
    return this._clientCount;
  }

  /** No new server transaction can be created: the owner answers 503 + Retry-After. */
  get full(): boolean {
    return this._serverCount >= this.maxServer;
  }

  /** Could a server transaction with this key be filed now (below the cap, room in its bucket)? */
  admits(key: RequestKey): boolean {
    if (this._serverCount >= this.maxServer) return false;
    let n = 0;
    for (let t = (key.rfc3261 ? this.servers : this.legacy).get(key.id); t !== undefined; t = t.nextInBucket) n++;
    return n < MAX_BUCKET;
  }

  // ------------------------------------------------------------------ server side (§17.2.3)

  /**
   * The server transaction this request belongs to: a retransmission of the request that
   * created it, or the ACK of an INVITE (matched to the INVITE's transaction), or undefined.
   */
  findServer(key: RequestKey): ServerTransaction | undefined {
    const want = key.method === 'ACK' ? 'INVITE' : key.method;
    if (key.rfc3261) {
      for (let t = this.servers.get(key.id); t !== undefined; t = t.nextInBucket) {
        const k = t.key;
        if (k.method === want && k.sentByPort === key.sentByPort && k.sentByHost === key.sentByHost) return t;
      }
      return undefined;
    }
    for (let t = this.legacy.get(key.id); t !== undefined; t = t.nextInBucket) {
      const k = t.key;
      if (k.method !== want || k.requestUri !== key.requestUri) continue;
      // §17.2.3: the ACK's To tag is the To tag of the response the transaction sent.
      const toTag = key.method === 'ACK' ? (t.finalToTag ?? k.toTag) : k.toTag;
      if (key.toTag === toTag) return t;
    }
    return undefined;
  }

  /**
   * The INVITE server transaction a CANCEL is for (§9.2: §17.2.3 matching with the CANCEL's
   * method taken as INVITE), or undefined.
   */
  findInvite(cancel: RequestKey): ServerTransaction | undefined {
    if (cancel.rfc3261) {
      for (let t = this.servers.get(cancel.id); t !== undefined; t = t.nextInBucket) {
        const k = t.key;
        if (k.method === 'INVITE' && k.sentByPort === cancel.sentByPort && k.sentByHost === cancel.sentByHost) return t;
      }
      return undefined;
    }
    for (let t = this.legacy.get(cancel.id); t !== undefined; t = t.nextInBucket) {
      const k = t.key;
      if (k.method === 'INVITE' && k.requestUri === cancel.requestUri && k.toTag === cancel.toTag) return t;
    }
    return undefined;
  }

  /** Files a new server transaction; false when the cap or its bucket is full. */
  addServer(tx: ServerTransaction): boolean {
    if (!this.admits(tx.key)) return false;
    const map = tx.key.rfc3261 ? this.servers : this.legacy;
    tx.nextInBucket = map.get(tx.key.id);
    map.set(tx.key.id, tx);
    this._serverCount++;
    return true;
  }

  removeServer(tx: ServerTransaction): void {
    const map = tx.key.rfc3261 ? this.servers : this.legacy;
    const head = map.get(tx.key.id);
    if (head === tx) {
      if (tx.nextInBucket === undefined) map.delete(tx.key.id);
      else map.set(tx.key.id, tx.nextInBucket);
    } else {
      let p = head;
      while (p !== undefined && p.nextInBucket !== tx) p = p.nextInBucket;
      if (p === undefined) return; // not filed
      p.nextInBucket = tx.nextInBucket;
    }
    tx.nextInBucket = undefined;
    this._serverCount--;
  }

  // ------------------------------------------------------------------ client side (§17.1.3)

  findClient(branch: string, method: string): ClientTransaction | undefined {
    for (let t = this.clients.get(branch); t !== undefined; t = t.nextInBucket) if (t.method === method) return t;
    return undefined;
  }

  /**
   * The client transaction a response belongs to: its top Via branch and its CSeq method
   * (§17.1.3), or undefined (also for a response whose Via or CSeq cannot be read).
   */
  matchResponse(msg: SipMessage): ClientTransaction | undefined {
    if (this._clientCount === 0) return undefined;
    let branch: string | undefined;
    let method: string;
    try {
      branch = msg.topVia?.branch;
      if (branch === undefined) return undefined;
      method = msg.cseq.method;
    } catch {
      return undefined;
    }
    return this.findClient(branch, method);
  }

  addClient(tx: ClientTransaction): void {
    tx.nextInBucket = this.clients.get(tx.branch);
    this.clients.set(tx.branch, tx);
    this._clientCount++;
  }

  removeClient(tx: ClientTransaction): void {
    const head = this.clients.get(tx.branch);
    if (head === tx) {
      if (tx.nextInBucket === undefined) this.clients.delete(tx.branch);
      else this.clients.set(tx.branch, tx.nextInBucket);
    } else {
      let p = head;
      while (p !== undefined && p.nextInBucket !== tx) p = p.nextInBucket;
      if (p === undefined) return;
      p.nextInBucket = tx.nextInBucket;
    }
    tx.nextInBucket = undefined;
    this._clientCount--;
  }
}
