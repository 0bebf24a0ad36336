/**
 * Server transactions (RFC 3261 §17.2): what absorbs a retransmitted request and answers it
 * with the last response again, and what retransmits a non-2xx final response to an INVITE
 * over UDP until the ACK comes.
 *
 *   INVITE (figure 7, with RFC 6026 §7.1 / figure 5 of RFC 6026):
 *     Proceeding --1xx from TU--> Proceeding (sent; a retransmitted INVITE gets it again)
 *     Proceeding --2xx from TU--> Accepted (RFC 6026; Timer L) | Terminated (RFC 3261)
 *     Proceeding --300-699 from TU--> Completed (Timer G over UDP, Timer H)
 *     Completed  --Timer G--> resend the final, G = min(2G, T2)
 *     Completed  --INVITE--> resend the final
 *     Completed  --ACK--> Confirmed (Timer I: T4 over UDP, 0 over TCP)
 *     Completed  --Timer H--> Terminated, inform the TU (no ACK came)
 *     Confirmed  --ACK--> absorbed;  --Timer I--> Terminated
 *     Accepted   --INVITE--> absorbed; --ACK--> passed to the TU; --2xx from TU--> sent;
 *                --Timer L--> Terminated
 *   non-INVITE (figure 8):
 *     Trying     --request--> absorbed (nothing to resend yet)
 *     Trying/Proceeding --1xx from TU--> Proceeding (sent; a retransmission gets it again)
 *     Trying/Proceeding --200-699 from TU--> Completed (Timer J: 64·T1 over UDP, 0 over TCP)
 *     Completed  --request--> resend the final; --Timer J--> Terminated
 *   Any state: a transport error → Terminated, inform the TU.
 *
 * A proxy exception (§16.7 step 5, "any 2xx response to an INVITE MUST be forwarded"): a
 * 2xx handed to an INVITE server transaction that is past Proceeding is still sent, without
 * changing its state — a second branch's 2xx after the first, or after a non-2xx final.
 *
 * The transaction never interprets a response it is given: `respond(status, bytes)`.
 */
import type { SipMessage } from '../sip/message.js';
import type { Target } from '../transport/types.js';
import { buildLocalResponse, localResponseToTag, type RequestSource } from './build.js';
import type { RequestKey } from './key.js';
import type { TransactionLayer } from './layer.js';
import type { TimerOwner } from './timer-queue.js';
import { ownBuffer } from './own-buffer.js';

export type ServerState = 'trying' | 'proceeding' | 'completed' | 'confirmed' | 'accepted' | 'terminated';

/** What a request that matched the transaction is: absorbed by it, or to be processed by the core (the ACK of a 2xx, RFC 6026 Accepted). */
export type ServerDisposition = 'absorbed' | 'pass';

/** The owner of a server transaction (the proxy's response context, or a no-op). */
export interface ServerTransactionUser {
  /** Timer H fired: the final non-2xx response was never acknowledged (§17.2.1). */
  onAckTimeout(tx: ServerTransaction): void;
  onServerTransportError(tx: ServerTransaction): void;
  /** The transaction has ended and left the table; its timers are released. */
  onServerTerminated(tx: ServerTransaction): void;
}

/** A user that needs no news (e.g. a CANCEL's own transaction). */
export const QUIET_SERVER_USER: ServerTransactionUser = {
  onAckTimeout: () => undefined,
  onServerTransportError: () => undefined,
  onServerTerminated: () => undefined,
};

// timer kinds
const RETRANSMIT = 1; // G
const TIMEOUT = 2; // H
const WAIT = 3; // I, J, L

export interface ServerTransactionInit {
  /** The request as received (parsed). The transaction keeps it until it is no longer needed for a local response. */
  request: SipMessage;
  /** requestKey(request), computed once when the table was consulted. */
  key: RequestKey;
  /** Where the request came from (received/rport of local responses). */
  source: RequestSource;
  /** Where its responses go (§18.2.2; for TCP the connection it came on). Over TCP the transaction is reliable. */
  upstream: Target;
  user?: ServerTransactionUser;
}

export abstract class ServerTransaction implements TimerOwner {
  readonly layer: TransactionLayer;
  readonly key: RequestKey;
  readonly method: string;
  readonly upstream: Target;
  readonly source: RequestSource;
  readonly reliable: boolean;
  user: ServerTransactionUser;
  state: ServerState;
  /** The request as received; released when no local response can follow (Accepted, Confirmed, Terminated). */
  request: SipMessage | undefined;
  /** Status of the last response sent (0: none). */
  lastStatus = 0;
  /** The To tag of the final response sent, for RFC 2543 ACK matching (§17.2.3). */
  finalToTag: string | undefined = undefined;
  /** Table bucket chain (see TransactionTable). */
  nextInBucket: ServerTransaction | undefined = undefined;
  protected lastResponse: Buffer | undefined = undefined;
  protected retransmitTimer: unknown = undefined;
  protected timeoutTimer: unknown = undefined;
  protected interval = 0;

  protected constructor(layer: TransactionLayer, init: ServerTransactionInit, state: ServerState) {
    this.layer = layer;
    this.key = init.key;
    this.method = init.request.method;
    this.request = init.request;
    this.upstream = init.upstream;
    this.source = init.source;
    this.reliable = init.upstream.protocol === 'tcp';
    this.user = init.user ?? QUIET_SERVER_USER;
    this.state = state;
  }

  /** True once the transaction has ended. */
  get terminated(): boolean {
    return this.state === 'terminated';
  }

  /** A request that matched this transaction (a retransmission, or the ACK of an INVITE). */
  abstract receive(msg: SipMessage): ServerDisposition;

  /**
   * Send a response (from the TU: forwarded or local). `toTag` is the response's To tag,
   * needed only for RFC 2543 ACK matching (`!key.rfc3261`). False when the state does not
   * allow it (a second final response): nothing was sent.
   */
  abstract respond(status: number, bytes: Buffer, toTag?: string): boolean;

  /** A local response built from the request (§8.2.6); false when not allowed or the request is gone. */
  respondLocally(status: number, reason?: string, headers?: readonly string[], body?: { readonly type: string; readonly content: string }): boolean {
    const request = this.request;
    if (request === undefined) return false;
    const bytes = buildLocalResponse(request, this.source, status, reason, headers, body);
    return this.respond(status, bytes, !this.key.rfc3261 && status > 100 ? localResponseToTag(request) : undefined);
  }

  /** The transport could not deliver our response (§17.2.4): the transaction ends and the TU is told. */
  transportError(): void {
    if (this.state === 'terminated') return;
    // The user hears the news before the termination (which it also hears).
    try {
      this.user.onServerTransportError(this);
    } finally {
      this.terminate();
    }
  }

  /** Ends the transaction now: timers released, out of the table, user told. Idempotent. */
  terminate(): void {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    this.layer.disarm(this.retransmitTimer);
    this.layer.disarm(this.timeoutTimer);
    this.retransmitTimer = this.timeoutTimer = undefined;
    this.layer.table.removeServer(this);
    this.request = undefined;
    this.lastResponse = undefined;
    this.user.onServerTerminated(this);
  }

  abstract onTimer(kind: number): void;

  protected transmit(bytes: Buffer): void {
    this.layer.send(this.upstream, bytes);
  }

  protected resend(): void {
    if (this.lastResponse === undefined) return;
    this.layer.stats.retransmissions++;
    this.transmit(this.lastResponse);
  }

  /** Waits `ms` then terminates; 0 (a reliable transport) terminates now (§17.2.1, §17.2.2). */
  protected waitThenTerminate(ms: number): void {
    if (ms <= 0) {
      this.terminate();
      return;
    }
    this.timeoutTimer = this.layer.arm(this, WAIT, ms);
  }
}

/** Figure 7 (+ RFC 6026). */
export class InviteServerTransaction extends ServerTransaction {
  constructor(layer: TransactionLayer, init: ServerTransactionInit) {
    super(layer, init, 'proceeding');
  }

  receive(msg: SipMessage): ServerDisposition {
    const stats = this.layer.stats;
    if (msg.method === 'ACK') {
      switch (this.state) {
        case 'completed': {
          // ACK of our non-2xx final: stop retransmitting, absorb the ACKs still to come.
          this.layer.disarm(this.retransmitTimer);
          this.layer.disarm(this.timeoutTimer);
          this.retransmitTimer = this.timeoutTimer = undefined;
          this.state = 'confirmed';
          this.request = undefined;
          this.lastResponse = undefined;
          stats.absorbed++;
          this.waitThenTerminate(this.reliable ? 0 : this.layer.timers.t4);
          return 'absorbed';
        }
        case 'accepted':
          // RFC 6026 §7.1: the ACK of a 2xx goes to the TU (for a proxy: relayed like any request).
          return 'pass';
        default:
          stats.absorbed++;
          return 'absorbed';
      }
    }
    // A retransmitted INVITE.
    stats.absorbed++;
    if (this.state === 'proceeding' || this.state === 'completed') this.resend();
    return 'absorbed';
  }

  respond(status: number, bytes: Buffer, toTag?: string): boolean {
    const success = status >= 200 && status < 300;
    if (this.state !== 'proceeding') {
      // §16.7 step 5: every 2xx is forwarded, whatever was sent before.
      if (!success) return false;
      this.lastStatus = status;
      this.transmit(bytes);
      return true;
    }
    this.lastStatus = status;
    this.transmit(bytes);
    if (status < 200) {
      this.lastResponse = bytes; // until the final: usually milliseconds (see own-buffer.ts)
      return true;
    }
    if (success) {
      this.lastResponse = undefined;
      if (!this.layer.rfc6026) {
        this.terminate();
        return true;
      }
      // RFC 6026 §7.1: Accepted, Timer L. Retransmissions of the 2xx are the UAS core's
      // job (a proxy relays them from downstream), so nothing is kept to resend.
      this.state = 'accepted';
      this.request = undefined;
      this.timeoutTimer = this.layer.arm(this, WAIT, this.layer.timers.accepted);
      return true;
    }
    this.lastResponse = ownBuffer(bytes);
    this.finalToTag = toTag;
    this.state = 'completed';
    const t = this.layer.timers;
    if (!this.reliable) {
      this.interval = t.t1;
      this.retransmitTimer = this.layer.arm(this, RETRANSMIT, this.interval);
    }
    this.timeoutTimer = this.layer.arm(this, TIMEOUT, 64 * t.t1);
    return true;
  }

  onTimer(kind: number): void {
    if (this.state === 'terminated') return;
    if (kind === RETRANSMIT) {
      // Timer G: resend the final, doubling up to T2.
      if (this.state !== 'completed') return;
      this.resend();
      this.interval = Math.min(2 * this.interval, this.layer.timers.t2);
      this.retransmitTimer = this.layer.arm(this, RETRANSMIT, this.interval);
    } else if (kind === TIMEOUT) {
      // Timer H: no ACK came.
      this.timeoutTimer = undefined;
      try {
        this.user.onAckTimeout(this);
      } finally {
        this.terminate();
      }
    } else {
      // Timer I (Confirmed) or Timer L (Accepted).
      this.terminate();
    }
  }
}

/** Figure 8. */
export class NonInviteServerTransaction extends ServerTransaction {
  constructor(layer: TransactionLayer, init: ServerTransactionInit) {
    super(layer, init, 'trying');
  }

  receive(_msg: SipMessage): ServerDisposition {
    this.layer.stats.absorbed++;
    // Trying: discarded (nothing sent yet); Proceeding: the last provisional; Completed: the final.
    if (this.state === 'proceeding' || this.state === 'completed') this.resend();
    return 'absorbed';
  }

  respond(status: number, bytes: Buffer, _toTag?: string): boolean {
    if (this.state !== 'trying' && this.state !== 'proceeding') return false;
    this.lastStatus = status;
    // A final is kept for Timer J (32 s over UDP); a provisional only until the final.
    this.lastResponse = status < 200 ? bytes : ownBuffer(bytes);
    this.transmit(bytes);
    if (status < 200) {
      this.state = 'proceeding';
      return true;
    }
    this.state = 'completed';
    this.request = undefined;
    this.waitThenTerminate(this.reliable ? 0 : 64 * this.layer.timers.t1);
    return true;
  }

  onTimer(_kind: number): void {
    if (this.state === 'terminated') return;
    // Timer J.
    this.terminate();
  }
}

/**
 * Creates the server transaction for a request and files it in the table, or returns
 * 'full' (the cap is reached, or the key's bucket is full): the owner answers 503.
 * ACK never creates a transaction (§17.2.1: an ACK that matches none is the TU's).
 */
export function createServerTransaction(layer: TransactionLayer, init: ServerTransactionInit): ServerTransaction | 'full' {
  if (init.request.method === 'ACK') throw new RangeError('an ACK does not create a server transaction');
  if (!layer.table.admits(init.key)) {
    layer.stats.refusedFull++;
    return 'full';
  }
  const tx = init.request.method === 'INVITE' ? new InviteServerTransaction(layer, init) : new NonInviteServerTransaction(layer, init);
  layer.table.addServer(tx);
  layer.stats.serverCreated++;
  return tx;
}
