/**
 * Client transactions (RFC 3261 §17.1): what retransmits a request over UDP until a
 * response comes, times it out, and acknowledges a non-2xx final response to an INVITE.
 *
 *   INVITE (figure 5, with RFC 6026 §7.2 / figure 4 of RFC 6026):
 *     Calling    --Timer A (UDP only)--> resend, A = 2A
 *     Calling    --Timer B--> Terminated, timeout to the TU
 *     Calling    --1xx--> Proceeding (retransmissions stop; Timer B no longer applies)
 *     Calling/Proceeding --2xx--> Accepted (RFC 6026; Timer M) | Terminated (RFC 3261); to the TU
 *     Calling/Proceeding --300-699--> Completed: ACK sent, response to the TU, Timer D
 *                                     (32 s over UDP, 0 over TCP)
 *     Completed  --300-699--> resend the ACK (absorbed);  --Timer D--> Terminated
 *     Accepted   --2xx--> to the TU (a retransmission);   --Timer M--> Terminated
 *   non-INVITE (figure 6):
 *     Trying     --Timer E (UDP only)--> resend, E = min(2E, T2)
 *     Proceeding --Timer E (UDP only)--> resend, E = T2
 *     Trying/Proceeding --Timer F--> Terminated, timeout to the TU
 *     Trying/Proceeding --1xx--> Proceeding; to the TU
 *     Trying/Proceeding --200-699--> Completed; to the TU; Timer K (T4 over UDP, 0 over TCP)
 *     Completed  --any response--> absorbed;  --Timer K--> Terminated
 *   Any state: a transport error → Terminated, inform the TU.
 *
 * A proxy may give a branch up before the transaction ends on its own (fr_timer, a CANCEL
 * sent, another branch answered): `abandon()` stops the retransmissions and bounds what is
 * left by 64·T1 (§9.1: "if there is no final response for the original request in 64*T1
 * seconds ... the client SHOULD then consider the original transaction cancelled").
 *
 * The transaction is given the request as sent (bytes, branch, method) and parses the bytes
 * only when it must write an ACK or someone asks for `request` (a CANCEL is built from it).
 */
import type { SipMessage } from '../sip/message.js';
import { parseMessage } from '../sip/parse.js';
import type { Listener, Target } from '../transport/types.js';
import { buildAck } from './build.js';
import type { TransactionLayer } from './layer.js';
import type { TimerOwner } from './timer-queue.js';
import { ownBuffer } from './own-buffer.js';

export type ClientState = 'calling' | 'trying' | 'proceeding' | 'completed' | 'accepted' | 'terminated';

/** The owner of a client transaction (a proxy branch). */
export interface ClientTransactionUser {
  onProvisional(tx: ClientTransaction, response: SipMessage): void;
  /**
   * A final response: the first one, or (INVITE, RFC 6026 Accepted) a retransmitted 2xx
   * (`retransmission` true), which a proxy relays too (§16.7 step 5).
   */
  onFinal(tx: ClientTransaction, response: SipMessage, retransmission: boolean): void;
  /** Timer B or F fired (or the 64·T1 bound after abandon()): the owner treats it as a 408 (§8.1.3.1, §16.8). */
  onTimeout(tx: ClientTransaction): void;
  /** The transport could not deliver the request (§16.9: the owner treats it as a 503). */
  onTransportError(tx: ClientTransaction): void;
  /** The transaction has ended and left the table; its timers are released. */
  onClientTerminated(tx: ClientTransaction): void;
}

/** A user that needs no news (our CANCELs: their responses are absorbed, §16.10). */
export const QUIET_CLIENT_USER: ClientTransactionUser = {
  onProvisional: () => undefined,
  onFinal: () => undefined,
  onTimeout: () => undefined,
  onTransportError: () => undefined,
  onClientTerminated: () => undefined,
};

export interface ClientTransactionInit {
  /** The request as it goes out: our Via on top with `branch`. */
  bytes: Buffer;
  /** The branch of our top Via in `bytes` (the table key, §17.1.3). */
  branch: string;
  method: string;
  /** The next hop. Over TCP the transaction is reliable: no retransmissions, D and K are 0. */
  target: Target;
  /** The listener to send from (Transport.send's `via`). */
  via?: Listener;
  /** parseMessage(bytes), when the caller has it; otherwise parsed on first need. */
  request?: SipMessage;
  user?: ClientTransactionUser;
}

// timer kinds
const RETRANSMIT = 1; // A, E
const TIMEOUT = 2; // B, F, and the 64·T1 bound after abandon()
const WAIT = 3; // D, K, M

export abstract class ClientTransaction implements TimerOwner {
  readonly layer: TransactionLayer;
  readonly branch: string;
  readonly method: string;
  readonly target: Target;
  readonly via: Listener | undefined;
  readonly reliable: boolean;
  user: ClientTransactionUser;
  state: ClientState;
  /** Table bucket chain (see TransactionTable). */
  nextInBucket: ClientTransaction | undefined = undefined;
  /** The request bytes; released once nothing will be sent again or built from them. */
  protected bytes: Buffer | undefined;
  protected parsed: SipMessage | undefined;
  protected retransmitTimer: unknown = undefined;
  protected timeoutTimer: unknown = undefined;
  protected interval = 0;
  /** abandon() was called: retransmissions are over. */
  protected abandoned = false;
  private kept = false;

  protected constructor(layer: TransactionLayer, init: ClientTransactionInit, state: ClientState) {
    this.layer = layer;
    this.branch = init.branch;
    this.method = init.method;
    this.target = init.target;
    this.via = init.via;
    this.reliable = init.target.protocol === 'tcp';
    this.bytes = init.bytes; // usually answered within milliseconds: copied only when it is not (retained())
    this.parsed = init.request;
    this.user = init.user ?? QUIET_CLIENT_USER;
    this.state = state;
  }

  get terminated(): boolean {
    return this.state === 'terminated';
  }

  /** The request as sent, parsed (for building its CANCEL); undefined once released. */
  get request(): SipMessage | undefined {
    if (this.parsed === undefined && this.bytes !== undefined) this.parsed = parseMessage(this.bytes);
    return this.parsed;
  }

  /** Files the transaction in the table, sends the request and starts the timers. */
  start(): void {
    this.layer.table.addClient(this);
    this.layer.stats.clientCreated++;
    this.transmit(this.bytes!);
    const t = this.layer.timers;
    if (!this.reliable) {
      this.interval = t.t1;
      this.retransmitTimer = this.layer.arm(this, RETRANSMIT, this.interval);
    }
    // Timer B / Timer F: 64·T1 over every transport (§17.1.1.2, §17.1.2.2).
    this.timeoutTimer = this.layer.arm(this, TIMEOUT, 64 * t.t1);
  }

  /** A response that matched this transaction (§17.1.3). */
  abstract receive(response: SipMessage): void;

  /**
   * Give the request up: no more retransmissions, and the transaction ends on its own by
   * 64·T1 at the latest if no final response comes. Responses still match it.
   */
  abandon(): void {
    if (this.abandoned || this.state === 'terminated') return;
    this.abandoned = true;
    this.layer.disarm(this.retransmitTimer);
    this.retransmitTimer = undefined;
    if ((this.state === 'proceeding' || this.state === 'calling' || this.state === 'trying') && this.timeoutTimer === undefined) {
      this.timeoutTimer = this.layer.arm(this, TIMEOUT, 64 * this.layer.timers.t1);
    }
  }

  /** The transport could not deliver the request (§17.1.4): the transaction ends, the TU is told. */
  transportError(): void {
    if (this.state === 'terminated') return;
    // The user hears the news before the termination (which it also hears): in that order
    // it always knows which branch ended how.
    try {
      this.user.onTransportError(this);
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
    this.layer.table.removeClient(this);
    this.release();
    this.user.onClientTerminated(this);
  }

  onTimer(kind: number): void {
    if (this.state === 'terminated') return;
    if (kind === RETRANSMIT) this.onRetransmitTimer();
    else if (kind === TIMEOUT) {
      // Timer B / F: no final response in time.
      this.layer.stats.timeouts++;
      this.timeoutTimer = undefined;
      try {
        this.user.onTimeout(this);
      } finally {
        this.terminate();
      }
    } else {
      this.terminate();
    }
  }

  protected abstract onRetransmitTimer(): void;

  protected transmit(bytes: Buffer): void {
    this.layer.send(this.target, bytes, this.via);
  }

  /**
   * The request for a retransmission (Timer A / E): not answered within T1, it may be kept
   * for up to 32 s, so from now on in a buffer of its own (see own-buffer.ts).
   */
  protected retained(bytes: Buffer): Buffer {
    if (!this.kept) {
      this.kept = true;
      this.bytes = ownBuffer(bytes);
    }
    return this.bytes!;
  }

  /** Nothing more will be sent from the request or built from it. */
  protected release(): void {
    this.bytes = undefined;
    this.parsed = undefined;
  }

  protected stopTimers(): void {
    this.layer.disarm(this.retransmitTimer);
    this.layer.disarm(this.timeoutTimer);
    this.retransmitTimer = this.timeoutTimer = undefined;
  }

  /** Waits `ms` then terminates; 0 (a reliable transport) terminates now. */
  protected waitThenTerminate(ms: number): void {
    if (ms <= 0) {
      this.terminate();
      return;
    }
    this.timeoutTimer = this.layer.arm(this, WAIT, ms);
  }
}

/** Figure 5 (+ RFC 6026). */
export class InviteClientTransaction extends ClientTransaction {
  /** The ACK sent for our non-2xx final (resent for each retransmission of it). */
  private ack: Buffer | undefined = undefined;

  constructor(layer: TransactionLayer, init: ClientTransactionInit) {
    super(layer, init, 'calling');
  }

  receive(response: SipMessage): void {
    const status = response.status;
    switch (this.state) {
      case 'calling':
      case 'proceeding':
        if (status < 200) {
          if (this.state === 'calling') {
            // Proceeding: retransmissions stop, and Timer B only applies in Calling
            // (§17.1.1.2); from here the TU's Timer C (fr_inv_timer) bounds the wait — or
            // the 64·T1 bound when the branch was abandoned.
            this.state = 'proceeding';
            this.layer.disarm(this.retransmitTimer);
            this.retransmitTimer = undefined;
            if (!this.abandoned) {
              this.layer.disarm(this.timeoutTimer);
              this.timeoutTimer = undefined;
            }
          }
          this.user.onProvisional(this, response);
          return;
        }
        if (status < 300) {
          this.stopTimers();
          this.release();
          if (!this.layer.rfc6026) {
            try {
              this.user.onFinal(this, response, false);
            } finally {
              this.terminate();
            }
            return;
          }
          // RFC 6026 §7.2: Accepted for Timer M, so that retransmitted 2xx reach the TU.
          this.state = 'accepted';
          this.timeoutTimer = this.layer.arm(this, WAIT, this.layer.timers.accepted);
          this.user.onFinal(this, response, false);
          return;
        }
        // 300-699: ACK it ourselves (§17.1.1.3), hand it up, wait Timer D for retransmissions.
        this.stopTimers();
        this.state = 'completed';
        const ack = ackFor(this.request, response);
        this.ack = ack === undefined ? undefined : ownBuffer(ack);
        this.release();
        if (this.ack !== undefined) this.transmit(this.ack);
        try {
          this.user.onFinal(this, response, false);
        } finally {
          this.waitThenTerminate(this.reliable ? 0 : this.layer.timers.timerD);
        }
        return;
      case 'completed':
        // A retransmitted final: our ACK was lost; send it again, absorb the response.
        this.layer.stats.absorbed++;
        if (status >= 300 && this.ack !== undefined) {
          this.layer.stats.retransmissions++;
          this.transmit(this.ack);
        }
        return;
      case 'accepted':
        if (status >= 200 && status < 300) this.user.onFinal(this, response, true);
        else this.layer.stats.absorbed++;
        return;
      default:
        return;
    }
  }

  protected onRetransmitTimer(): void {
    // Timer A: resend, doubling (no T2 cap for INVITE, §17.1.1.2).
    if (this.state !== 'calling' || this.bytes === undefined) return;
    this.layer.stats.retransmissions++;
    this.transmit(this.retained(this.bytes));
    this.interval *= 2;
    this.retransmitTimer = this.layer.arm(this, RETRANSMIT, this.interval);
  }

  protected override release(): void {
    super.release();
    if (this.state === 'terminated') this.ack = undefined;
  }
}

/** Figure 6. */
export class NonInviteClientTransaction extends ClientTransaction {
  constructor(layer: TransactionLayer, init: ClientTransactionInit) {
    super(layer, init, 'trying');
  }

  receive(response: SipMessage): void {
    if (this.state !== 'trying' && this.state !== 'proceeding') {
      // Completed: retransmitted finals are absorbed (Timer K waits for them).
      this.layer.stats.absorbed++;
      return;
    }
    if (response.status < 200) {
      this.state = 'proceeding';
      this.user.onProvisional(this, response);
      return;
    }
    this.stopTimers();
    this.state = 'completed';
    this.release();
    try {
      this.user.onFinal(this, response, false);
    } finally {
      this.waitThenTerminate(this.reliable ? 0 : this.layer.timers.t4);
    }
  }

  protected onRetransmitTimer(): void {
    if (this.bytes === undefined) return;
    if (this.state === 'trying') {
      // Timer E in Trying: resend, doubling up to T2.
      this.layer.stats.retransmissions++;
      this.transmit(this.retained(this.bytes));
      this.interval = Math.min(2 * this.interval, this.layer.timers.t2);
    } else if (this.state === 'proceeding') {
      // Timer E in Proceeding: resend every T2.
      this.layer.stats.retransmissions++;
      this.transmit(this.retained(this.bytes));
      this.interval = this.layer.timers.t2;
    } else {
      return;
    }
    this.retransmitTimer = this.layer.arm(this, RETRANSMIT, this.interval);
  }
}

/**
 * The ACK for a non-2xx final, or undefined when it cannot be written (a response without a
 * readable To): the transaction still completes, and the next hop's Timer H ends its side.
 */
function ackFor(request: SipMessage | undefined, response: SipMessage): Buffer | undefined {
  if (request === undefined) return undefined;
  try {
    return buildAck(request, response);
  } catch {
    return undefined;
  }
}

/** Creates the client transaction for a request (INVITE or not); call start() to send it. */
export function createClientTransaction(layer: TransactionLayer, init: ClientTransactionInit): InviteClientTransaction | NonInviteClientTransaction {
  if (init.method === 'ACK') throw new RangeError('an ACK does not create a client transaction');
  return init.method === 'INVITE' ? new InviteClientTransaction(layer, init) : new NonInviteClientTransaction(layer, init);
}
