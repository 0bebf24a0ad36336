/**
 * The response context of a transaction-stateful proxy (RFC 3261 §16.7–§16.10): one server
 * transaction for the request as received, and one client transaction per branch (per
 * destination tried), Kamailio's `t_relay` transaction.
 *
 * - 100 Trying goes upstream at once for an INVITE (§16.2).
 * - Provisional responses other than 100 are forwarded while no final response has been
 *   sent (§16.7 step 5); 101–199 to an INVITE restart the branch's Timer C, which is
 *   Kamailio's `fr_inv_timer` (§16.7 step 2); a branch starts with `fr_timer`.
 * - Every 2xx is forwarded at once, the first one ending the search: the other pending
 *   branches are cancelled (§16.7 step 10).
 * - Other final responses are kept; when no branch is pending, the owner's failure hook may
 *   add a branch (failover: Kamailio's failure_route + ds_next_dst) or reply; otherwise the
 *   best response is chosen (§16.7 step 6, see select.ts) and sent upstream — a 503 as a 500
 *   (step 6), a branch that timed out as a local 408 (§16.8), a branch the transport could
 *   not reach as a 503 (§16.9, hence a 500 upstream).
 * - A 6xx ends the search: the other branches are cancelled, no branch may be added, and
 *   the failure hook is not asked (§16.7 step 5).
 * - Timer C / fr_timer expiry (§16.8): the branch counts as a 408; it is CANCELled when it
 *   had a provisional response, else its retransmissions stop and a provisional arriving
 *   later is answered with a CANCEL (§9.1: no CANCEL before a provisional).
 * - A CANCEL (§16.10) is answered 200 and sent on every pending branch that has had a
 *   provisional (the others get theirs when one comes); the INVITE's final response then
 *   comes from downstream (487). A cancelled transaction never fails over; if its branches
 *   end by timeout, the caller gets a local 487.
 *
 * It never touches a socket: everything goes out through the layer's `send`, and
 * everything comes in through the table (responses) and the owner (CANCEL).
 */
import type { SipMessage } from '../sip/message.js';
import { parseMessage } from '../sip/parse.js';
import type { Listener, Target } from '../transport/types.js';
import { buildCancel, type RequestSource } from './build.js';
import { createClientTransaction, type ClientTransaction, type ClientTransactionUser } from './client.js';
import type { RequestKey } from './key.js';
import type { TransactionLayer } from './layer.js';
import type { TimerOwner } from './timer-queue.js';
import { pickBest } from './select.js';
import { createServerTransaction, type ServerTransaction, type ServerTransactionUser } from './server.js';

/** Kamailio's fr_timer default: no final response on a branch by then is a 408 (ms). */
export const DEFAULT_FR_TIMER_MS = 30_000;
/** Kamailio's fr_inv_timer default: an INVITE branch that has rung gets this long for its final (ms). */
export const DEFAULT_FR_INV_TIMER_MS = 120_000;
/** Kamailio's MAX_BRANCHES default. */
export const DEFAULT_MAX_BRANCHES = 12;

/**
 * A response a branch received, before the proxy acts on it (Kamailio's onreply_route). It
 * may edit the response (e.g. append a header). Returning false drops a provisional
 * response; a final response cannot be dropped (it decides the transaction).
 */
export type ResponseHook = (ptx: ProxyTransaction, branch: ProxyBranch, response: SipMessage) => boolean | void;

/**
 * Every branch has ended without a 2xx and the transaction was neither cancelled nor ended
 * by a 6xx (Kamailio's failure_route). `best` is the best outcome so far (what goes upstream
 * if nothing else happens), `ended` the branch whose end made this call (what a failover
 * rule looks at: its status, `timedOut`, `data`). The hook may addBranch() (try another
 * destination), reply(), or do nothing: the best response then goes upstream.
 */
export type FailureHook = (ptx: ProxyTransaction, best: ProxyBranch, ended: ProxyBranch) => void;

/** What the owner of all proxy transactions provides (shared by every transaction). */
export interface ProxyTransactionHost {
  /** Default reply hook of every transaction (each may set its own). */
  onResponse?: ResponseHook;
  /** Default failure hook of every transaction (each may set its own). */
  onFailure?: FailureHook;
  /** The final response has gone upstream: no branch will be added, what builds one can go. */
  onFinalSent?(ptx: ProxyTransaction): void;
  /** The transaction and all its client transactions have ended; every timer is released. */
  onTerminated?(ptx: ProxyTransaction): void;
  /** A final failure (≥ 300) went upstream (the best response or a local reply): dialogs end with it. */
  onFinal?(ptx: ProxyTransaction, status: number, reason: string | undefined): void;
}

export interface ProxyTransactionInit {
  /** The request as received (parsed). */
  request: SipMessage;
  /** requestKey(request), as computed when the table was consulted. */
  key: RequestKey;
  /** Where it came from (received/rport of local responses). */
  source: RequestSource;
  /** Where responses go (§18.2.2); over TCP the connection it came on. */
  upstream: Target;
  host?: ProxyTransactionHost;
  frTimerMs?: number;
  frInvTimerMs?: number;
  maxBranches?: number;
  /** Send 100 Trying at once for an INVITE (§16.2). Default true. */
  trying?: boolean;
}

/** One destination to try: the request as it goes out there. */
export interface BranchSpec {
  target: Target;
  /** The request serialized for this branch, our Via on top with `branch`. */
  bytes: Buffer;
  /** Our Via's branch in `bytes`: unique per branch (a CANCEL and the ACK reuse it). */
  branch: string;
  /** Listener to send from. */
  via?: Listener;
  /** parseMessage(bytes), if the owner has it. */
  request?: SipMessage;
  /** The owner's note on this branch (e.g. the dispatcher destination), for the failure hook. */
  data?: unknown;
}

/** Why addBranch() refused. */
export type BranchRefusal = 'final-sent' | 'cancelled' | 'global-failure' | 'too-many-branches' | 'terminated';

// timer kinds of a branch
const FR_TIMER = 1;

/** One branch of a proxy transaction: a client transaction and what became of it. */
export class ProxyBranch implements ClientTransactionUser, TimerOwner {
  readonly ptx: ProxyTransaction;
  readonly index: number;
  readonly target: Target;
  readonly client: ClientTransaction;
  readonly data: unknown;
  /** The final outcome (0 while pending): a received status, or 408 (timeout) / 503 (transport error) of our own. */
  status = 0;
  /** `status` is ours, not received. */
  local = false;
  /** It ended by a timeout: fr_timer, fr_inv_timer, Timer B or F. */
  timedOut = false;
  /** The highest provisional status received (0: none). */
  provisional = 0;
  /** The final response received (non-2xx), kept for the best-response choice until a final goes upstream. */
  response: SipMessage | undefined = undefined;
  /** A CANCEL went out on this branch. */
  cancelSent = false;
  /** A CANCEL is due as soon as a provisional response arrives (§9.1). */
  cancelWanted = false;
  /** fr_timer / fr_inv_timer handle. */
  frTimer: unknown = undefined;

  constructor(ptx: ProxyTransaction, index: number, spec: BranchSpec) {
    this.ptx = ptx;
    this.index = index;
    this.target = spec.target;
    this.data = spec.data;
    this.client = createClientTransaction(ptx.layer, {
      bytes: spec.bytes,
      branch: spec.branch,
      method: ptx.method,
      target: spec.target,
      via: spec.via,
      request: spec.request,
      user: this,
    });
  }

  get pending(): boolean {
    return this.status === 0;
  }

  onProvisional(_tx: ClientTransaction, response: SipMessage): void {
    this.ptx.branchProvisional(this, response);
  }

  onFinal(_tx: ClientTransaction, response: SipMessage, retransmission: boolean): void {
    this.ptx.branchFinal(this, response, retransmission);
  }

  onTimeout(_tx: ClientTransaction): void {
    this.ptx.branchEnded(this, 408, true);
  }

  onTransportError(_tx: ClientTransaction): void {
    this.ptx.branchEnded(this, 503, false);
  }

  onClientTerminated(_tx: ClientTransaction): void {
    this.ptx.childEnded();
  }

  onTimer(_kind: number): void {
    this.frTimer = undefined;
    this.ptx.branchFrTimer(this);
  }
}

export class ProxyTransaction implements ServerTransactionUser {
  readonly layer: TransactionLayer;
  readonly server: ServerTransaction;
  readonly method: string;
  readonly branches: ProxyBranch[] = [];
  readonly host: ProxyTransactionHost | undefined;
  /** Kamailio's fr_timer for branches added from now on (ms). */
  frTimerMs: number;
  /** Kamailio's fr_inv_timer for provisional responses received from now on (ms). */
  frInvTimerMs: number;
  readonly maxBranches: number;
  /** This transaction's reply hook (Kamailio's t_on_reply); defaults to the host's. */
  onResponse: ResponseHook | undefined;
  /** This transaction's failure hook (Kamailio's t_on_failure); defaults to the host's. */
  onFailure: FailureHook | undefined;
  /** The status of the first final response sent upstream (0: none yet). */
  finalStatus = 0;
  /** A CANCEL for it was received (§16.10). */
  cancelled = false;
  /** What the owner (the proxy core) keeps with this transaction: how to build its next branch, its hooks. */
  owner: unknown = undefined;
  /** A 6xx was received: no new branches (§16.7 step 5). */
  globalFailure = false;
  /** Transactions (the server one and each branch's client one) still alive. */
  private live = 1;
  private _vars: Map<string, unknown> | undefined = undefined;
  private _terminated = false;

  private constructor(layer: TransactionLayer, init: ProxyTransactionInit) {
    this.layer = layer;
    this.method = init.request.method;
    this.host = init.host;
    this.frTimerMs = init.frTimerMs ?? DEFAULT_FR_TIMER_MS;
    this.frInvTimerMs = init.frInvTimerMs ?? DEFAULT_FR_INV_TIMER_MS;
    this.maxBranches = init.maxBranches ?? DEFAULT_MAX_BRANCHES;
    this.onResponse = init.host?.onResponse;
    this.onFailure = init.host?.onFailure;
    const server = createServerTransaction(layer, { request: init.request, key: init.key, source: init.source, upstream: init.upstream, user: this });
    if (server === 'full') throw new Error('unreachable: the table was checked'); // create() checks admits() first
    this.server = server;
  }

  /**
   * The response context for a request that matched no transaction, with its server
   * transaction filed in the table — or 'full' when the table's cap is reached (the owner
   * answers 503 with Retry-After). ACK and CANCEL do not create one (the owner looks the
   * CANCEL's INVITE up with table.findInvite and calls receiveCancel).
   *
   * Contract: before returning to the event loop the owner either adds a branch or replies;
   * a transaction with neither has no timer to end it.
   */
  static create(layer: TransactionLayer, init: ProxyTransactionInit): ProxyTransaction | 'full' {
    const m = init.request.method;
    if (m === 'ACK' || m === 'CANCEL') throw new RangeError(`a ${m} does not create a proxy transaction`);
    if (!layer.table.admits(init.key)) {
      layer.stats.refusedFull++;
      return 'full';
    }
    const ptx = new ProxyTransaction(layer, init);
    if (m === 'INVITE' && init.trying !== false) ptx.server.respondLocally(100);
    return ptx;
  }

  get isInvite(): boolean {
    return this.method === 'INVITE';
  }

  /** The request as received; undefined once the server transaction released it (after a 2xx or an ACK). */
  get request(): SipMessage | undefined {
    return this.server.request;
  }

  /**
   * A new parse of the request as received, without the edits made to `request` for an
   * earlier branch: what a failure hook edits and serializes for the next destination.
   */
  freshRequest(): SipMessage | undefined {
    const r = this.server.request;
    return r === undefined ? undefined : parseMessage(r.buffer);
  }

  /** Per-transaction state for routes (Kamailio's AVPs): lives exactly as long as the transaction. */
  get vars(): Map<string, unknown> {
    return (this._vars ??= new Map());
  }

  /** The server transaction and every client transaction have ended. */
  get terminated(): boolean {
    return this._terminated;
  }

  /** Branches without a final outcome yet. */
  get pendingBranches(): number {
    let n = 0;
    for (const b of this.branches) if (b.status === 0) n++;
    return n;
  }

  /** The best final outcome so far (§16.7 step 6), or undefined. */
  best(): ProxyBranch | undefined {
    return pickBest(this.branches);
  }

  /**
   * Send the request to one more destination (a new client transaction, started now, with
   * fr_timer armed), or say why not.
   */
  addBranch(spec: BranchSpec): ProxyBranch | BranchRefusal {
    if (this.server.terminated || this._terminated) return 'terminated';
    if (this.finalStatus !== 0) return 'final-sent';
    if (this.cancelled) return 'cancelled';
    if (this.globalFailure) return 'global-failure';
    if (this.branches.length >= this.maxBranches) return 'too-many-branches';
    const b = new ProxyBranch(this, this.branches.length, spec);
    this.branches.push(b);
    this.live++;
    b.client.start();
    // start() may have ended the transaction at once (nothing does today, but be exact).
    if (b.status === 0 && !b.client.terminated) b.frTimer = this.layer.arm(b, FR_TIMER, this.frTimerMs);
    return b;
  }

  /**
   * A local response upstream (the route's or the failure hook's reply). A final one ends
   * the search: pending branches are cancelled (§16.7 step 10). False when a final response
   * was already sent (or the request is gone).
   */
  reply(status: number, reason?: string, headers?: readonly string[], body?: { readonly type: string; readonly content: string }): boolean {
    if (this.finalStatus !== 0) return false;
    if (status < 200) return this.server.respondLocally(status, reason, headers, body);
    this.finalStatus = status;
    this.reportFinal(status, reason);
    const sent = this.server.respondLocally(status, reason, headers, body);
    this.endSearch();
    this.finalSent();
    return sent;
  }

  /**
   * A CANCEL for this transaction's INVITE (§16.10): answered 200 on its own server
   * transaction (`cancelTx`; when the table had no room for one, the owner answers it
   * statelessly and passes undefined), then CANCEL on every pending branch. Too late after a
   * final response (§9.2): only the 200.
   */
  receiveCancel(cancelTx?: ServerTransaction): void {
    cancelTx?.respondLocally(200);
    if (!this.isInvite || this.finalStatus !== 0 || this.cancelled) return;
    this.cancelled = true;
    for (const b of this.branches) {
      if (b.status !== 0) continue;
      // The branch's fr timer keeps running: it bounds the wait for the 487.
      if (b.provisional > 0) this.sendCancel(b);
      else b.cancelWanted = true;
    }
  }

  // ------------------------------------------------------------------ server transaction user

  onAckTimeout(_tx: ServerTransaction): void {
    // Timer H: the caller never acknowledged our non-2xx final. Nothing to undo.
  }

  onServerTransportError(_tx: ServerTransaction): void {
    // The caller cannot be reached; the branches still end on their own timers.
  }

  onServerTerminated(_tx: ServerTransaction): void {
    this.childEnded();
  }

  // ------------------------------------------------------------------ branch events (from ProxyBranch)

  /** @internal */
  branchProvisional(b: ProxyBranch, response: SipMessage): void {
    if (response.status > b.provisional) b.provisional = response.status;
    if (b.cancelWanted) {
      // Given up (fr_timer, a CANCEL, another branch answered) before it rang: now it may be cancelled.
      this.sendCancel(b);
      return;
    }
    if (b.status !== 0) return;
    // §16.7 step 2: Timer C restarts on 101–199 to an INVITE; that is fr_inv_timer.
    if (this.isInvite && response.status > 100) {
      this.layer.disarm(b.frTimer);
      b.frTimer = this.layer.arm(b, FR_TIMER, this.frInvTimerMs);
    }
    if (this.runResponseHook(b, response) === false) return;
    // §16.7 step 5: provisional responses but 100 go upstream until a final has.
    if (response.status === 100 || this.finalStatus !== 0) return;
    this.forwardUpstream(response);
  }

  /** @internal */
  branchFinal(b: ProxyBranch, response: SipMessage, retransmission: boolean): void {
    const status = response.status;
    if (status < 300) {
      if (!retransmission && b.status === 0) {
        b.status = status;
        this.clearFr(b);
      }
      this.runResponseHook(b, response);
      // §16.7 step 5: every 2xx goes upstream at once (retransmissions too: RFC 6026 Accepted).
      const first = this.finalStatus === 0;
      if (first) this.finalStatus = status;
      this.forwardUpstream(response);
      if (!retransmission) this.endSearch();
      if (first) this.finalSent();
      return;
    }
    // A late final on a branch we gave up: the client transaction acknowledged it; nothing else.
    if (b.status !== 0) return;
    b.status = status;
    b.response = response;
    this.clearFr(b);
    this.runResponseHook(b, response);
    if (status >= 600 && !this.globalFailure) {
      // §16.7 step 5: a 6xx ends the search; the other branches are cancelled and their
      // outcomes (487) still awaited before the best — the 6xx — goes upstream.
      this.globalFailure = true;
      this.cancelBranches(false);
    }
    this.checkDone(b);
  }

  /** @internal A branch ended without a response: timeout (408, §16.8) or transport error (503, §16.9). */
  branchEnded(b: ProxyBranch, status: number, timedOut: boolean): void {
    if (b.status !== 0) return;
    b.status = status;
    b.local = true;
    b.timedOut = timedOut;
    this.clearFr(b);
    this.checkDone(b);
  }

  /** @internal fr_timer or fr_inv_timer fired (§16.8, Timer C). */
  branchFrTimer(b: ProxyBranch): void {
    if (b.status !== 0 || this._terminated) return;
    this.layer.stats.frTimeouts++;
    b.status = 408;
    b.local = true;
    b.timedOut = true;
    if (this.isInvite) {
      if (b.provisional > 0) this.sendCancel(b);
      else {
        b.cancelWanted = true;
        b.client.abandon();
      }
    } else {
      b.client.abandon();
    }
    this.checkDone(b);
  }

  /** @internal A server or client transaction of this context terminated. */
  childEnded(): void {
    if (--this.live > 0 || this._terminated) return;
    this._terminated = true;
    for (const b of this.branches) this.clearFr(b);
    this._vars = undefined;
    const host = this.host;
    if (host?.onTerminated !== undefined) {
      try {
        host.onTerminated(this);
      } catch (err) {
        this.layer.report(err, 'onTerminated');
      }
    }
  }

  // ------------------------------------------------------------------ internals

  /** When nothing is pending and no final has gone upstream: failure hook, else the best response. */
  private checkDone(ended: ProxyBranch): void {
    if (this.finalStatus !== 0) return;
    for (const b of this.branches) if (b.status === 0) return;
    const best = pickBest(this.branches);
    if (best === undefined) return;
    const hook = this.onFailure;
    if (hook !== undefined && !this.cancelled && !this.globalFailure && !this.server.terminated) {
      try {
        hook(this, best, ended);
      } catch (err) {
        this.layer.report(err, 'onFailure');
      }
      if (this.finalStatus !== 0) return;
      for (const b of this.branches) if (b.status === 0) return;
    }
    this.sendBest(pickBest(this.branches) ?? best);
  }

  private sendBest(best: ProxyBranch): void {
    const status = best.status;
    if (this.cancelled && best.local) {
      // The caller cancelled and the branch never answered: what it waits for is a 487.
      this.finalStatus = 487;
      this.server.respondLocally(487);
    } else if (status === 503) {
      // §16.7 step 6: a 503 means "this proxy cannot serve", which is not what happened.
      this.finalStatus = 500;
      this.server.respondLocally(500);
    } else if (best.local || best.response === undefined) {
      this.finalStatus = status;
      this.server.respondLocally(status);
    } else {
      this.finalStatus = status;
      this.forwardUpstream(best.response);
    }
    this.reportFinal(this.finalStatus, best.local ? undefined : best.response?.reason);
    for (const b of this.branches) b.response = undefined;
    this.finalSent();
  }

  /** Tell the host the search is over (what it kept to build branches can go). */
  private finalSent(): void {
    const host = this.host;
    if (host?.onFinalSent === undefined) return;
    try {
      host.onFinalSent(this);
    } catch (err) {
      this.layer.report(err, 'onFinalSent');
    }
  }

  private reportFinal(status: number, reason: string | undefined): void {
    if (status < 300 || this.host?.onFinal === undefined) return;
    try {
      this.host.onFinal(this, status, reason);
    } catch (err) {
      this.layer.report(err, 'onFinal');
    }
  }

  /** §16.7 steps 3 and 9: our Via off, then out through the server transaction. */
  private forwardUpstream(response: SipMessage): void {
    let bytes: Buffer;
    try {
      response.removeTopVia();
      bytes = response.serialize();
    } catch (err) {
      this.layer.report(err, 'forward response');
      return;
    }
    const toTag = this.server.key.rfc3261 || response.status < 200 ? undefined : toTagOf(response);
    this.server.respond(response.status, bytes, toTag);
  }

  private runResponseHook(b: ProxyBranch, response: SipMessage): boolean | void {
    const hook = this.onResponse;
    if (hook === undefined) return undefined;
    try {
      return hook(this, b, response);
    } catch (err) {
      this.layer.report(err, 'onResponse');
      return undefined;
    }
  }

  /** A final response went upstream (§16.7 step 10): pending branches are cancelled and no longer timed. */
  private endSearch(): void {
    this.cancelBranches(true);
  }

  /**
   * CANCEL every pending INVITE branch that has rung; mark the others to be cancelled when
   * they do (§9.1). A non-INVITE branch cannot be cancelled: it is abandoned. With
   * `clearTimers`, the branches' fr timers stop (their outcome no longer matters).
   */
  private cancelBranches(clearTimers: boolean): void {
    for (const b of this.branches) {
      if (b.status !== 0) continue;
      if (clearTimers) this.clearFr(b);
      if (!this.isInvite) b.client.abandon();
      else if (b.provisional > 0) this.sendCancel(b);
      else b.cancelWanted = true;
    }
  }

  /** §9.1: a CANCEL on the branch, as its own client transaction; the INVITE then waits at most 64·T1 for its final. */
  private sendCancel(b: ProxyBranch): void {
    b.cancelWanted = false;
    if (b.cancelSent || !this.isInvite) return;
    const invite = b.client;
    const request = invite.request;
    if (request === undefined || invite.terminated || invite.state === 'completed' || invite.state === 'accepted') return;
    let bytes: Buffer;
    try {
      bytes = buildCancel(request);
    } catch (err) {
      this.layer.report(err, 'build CANCEL');
      return;
    }
    b.cancelSent = true;
    createClientTransaction(this.layer, { bytes, branch: invite.branch, method: 'CANCEL', target: invite.target, via: invite.via }).start();
    invite.abandon();
  }

  private clearFr(b: ProxyBranch): void {
    if (b.frTimer !== undefined) {
      this.layer.disarm(b.frTimer);
      b.frTimer = undefined;
    }
  }
}

function toTagOf(response: SipMessage): string | undefined {
  try {
    return response.to.tag;
  } catch {
    return undefined;
  }
}
