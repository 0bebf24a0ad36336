/**
 * The proxy core's seam to the transaction layer (src/transaction/): Kamailio's t_relay.
 * The core decides per request whether it goes statefully (config `mode`, or the route's
 * `ctx.stateful`); from then on this file:
 *
 * - absorbs what belongs to a transaction before the route runs again: a retransmitted
 *   request (its server transaction answers it with the last response, §17.2), the ACK for a
 *   non-2xx final (§17.2.1), and a CANCEL for a pending INVITE (answered 200 and sent on to
 *   every branch, §16.10);
 * - relays a request as a proxy transaction (§16.7–§16.10): one branch per destination
 *   tried, 100 Trying at once for an INVITE (§16.2), fr_timer / fr_inv_timer (§16.8);
 * - hands each response to its client transaction (§17.1.3), running the route's reply hooks;
 * - when every branch has failed, runs the failure hook (Kamailio's failure_route), which
 *   may try the next destination of the set (ds_next_dst) — failover — or reply; a branch
 *   that timed out marks its destination (ds_mark_dst).
 *
 * A failover branch is the request as the route left it (its edits and the Max-Forwards
 * decrement), with our per-destination edits made again for the new destination: the
 * Record-Route and Path of the interface it leaves from, received/rport, and our Via with a
 * branch of its own (the first branch's, with `-k`: branches of one transaction must differ,
 * §16.6 step 8).
 */
import type { ProxyConfig } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { FailureContext, FailureDecision, ReplyContext, ReplyOptions, Route } from '../route/api.js';
import type { SipMessage } from '../sip/message.js';
import { parseMessage } from '../sip/parse.js';
import { parseUri, type SipUri } from '../sip/uri.js';
import {
  createServerTransaction,
  ProxyTransaction,
  requestKey,
  TransactionLayer,
  type ProxyBranch,
  type ProxyTransactionHost,
} from '../transaction/index.js';
import type { Inbound, Listener, Target, Transport } from '../transport/types.js';
import { reasonPhrase } from '../sip/status.js';
import { replyDecision, type RequestCtx } from './context.js';
import { CORE_HEADERS } from './guarded.js';
import { ResponseCtx } from './response-context.js';
import type { DialogObserver, DispatchPick, Dispatch } from './services.js';

/** What the core gives the seam: how to build a branch's bytes, reply statelessly, reach next hops. */
export interface StatefulCore {
  readonly config: ProxyConfig;
  readonly logger: Logger;
  readonly dispatch: Dispatch;
  readonly route: Route;
  readonly transport: Transport;
  /** Dialog tracking, when on (src/dialog/). */
  readonly dialogs: DialogObserver | undefined;
  /**
   * Our per-destination edits (Record-Route, Path, received/rport, our Via with `branch`) on
   * `msg` for `target`: the bytes to send and the listener they leave from, or why they cannot.
   */
  prepareBranch(
    msg: SipMessage,
    inbound: Inbound,
    target: Target,
    edits: { recordRoute: boolean; path: boolean },
    branch: string,
  ): { bytes: Buffer; out: Listener } | { status: number; reason: string; headers?: readonly string[] };
  replyOrDrop(msg: SipMessage, inbound: Inbound, status: number, reason: string | undefined, headers: readonly string[] | undefined, admitted: boolean): void;
  /** A target for an IP-literal URI (forward() in a failure hook). */
  literalTarget(uri: SipUri): Target | undefined;
  /** Counters the core keeps for everything it relays. */
  countForwarded(): void;
  countResponseRelayed(): void;
}

/** What the core keeps with each proxy transaction (ProxyTransaction.owner). */
interface Relayed {
  /** Where the request came in; undefined once the final response has gone (no more branches). */
  inbound: Inbound | undefined;
  /**
   * The request after the route's edits and Max-Forwards, before our per-destination edits,
   * to build failover branches from; released with `inbound` when the final response has gone.
   */
  base: Buffer | undefined;
  readonly edits: { recordRoute: boolean; path: boolean };
  /** The first branch's id; branch k of a failover is `${branch}-${k}`. */
  readonly branch: string;
  /** The route the transaction started with: its reply and failure hooks stay even when `sipctl route reload` swaps the route. */
  readonly route: Route;
  readonly replyHook: ((ctx: ReplyContext) => void) | undefined;
  readonly failureHook: ((ctx: FailureContext) => FailureDecision) | undefined;
  /** The set the request was dispatched to (failover picks the next one there), if any. */
  setid: number | undefined;
  /** The dispatcher's handles of the destinations tried, in order. */
  readonly tried: unknown[];
}

export class StatefulRelay {
  readonly layer: TransactionLayer;
  private readonly host: ProxyTransactionHost;

  constructor(private readonly core: StatefulCore) {
    const t = core.config.transaction;
    this.layer = new TransactionLayer({
      send: (target, bytes, via) => core.transport.send(target, bytes, via),
      timers: { t1: t.t1Ms, t2: t.t2Ms, t4: t.t4Ms },
      maxTransactions: t.maxTransactions,
      onError: (err, where) =>
        core.logger.limited('error', 'transaction.error', 'a transaction callback failed', { where, error: err instanceof Error ? err.message : String(err) }),
    });
    this.host = {
      // Dialogs (src/dialog/): an INVITE's final failure upstream ends its call.
      onFinal: (ptx, status, reason) => {
        const dialogs = this.core.dialogs;
        const request = ptx.request;
        if (dialogs === undefined || request === undefined || request.method !== 'INVITE') return;
        try {
          dialogs.final(request, status, reason);
        } catch {
          // the response went upstream whatever the dialog module made of it
        }
      },
      onResponse: (ptx, branch, response) => this.onBranchResponse(ptx, branch, response),
      onFailure: (ptx, best, ended) => this.onFailure(ptx, best, ended),
      // The search is over: a transaction lives on for up to 32 s after it (RFC 6026
      // Accepted, Timers J and K), and needs nothing to build branches from any more.
      onFinalSent: (ptx) => {
        const relayed = ptx.owner as Relayed | undefined;
        if (relayed !== undefined) relayed.base = relayed.inbound = undefined;
      },
      onTerminated: (ptx) => {
        for (const b of ptx.branches) if (b.target.protocol === 'tcp') this.answeredOverTcp(b);
      },
    };
  }

  // ------------------------------------------------------------------ TCP next hops that fail

  /**
   * TCP branches still waiting for their first response, by next hop. When the transport
   * cannot reach that next hop (the connect is refused or times out, the connection's queue
   * overflows), §17.1.4 says the transaction learns it at once: those branches end as 503
   * (and fail over) instead of waiting for fr_timer. UDP has no such signal.
   */
  private readonly tcpAwaiting = new Map<string, Set<ProxyBranch>>();
  /** TCP send failures reported so far (a failure during a branch's own start is its own). */
  private tcpFailures = 0;

  /** The transport could not reach tcp:address:port: every branch waiting on it has failed. */
  nextHopFailed(address: string, port: number): void {
    this.tcpFailures++;
    const key = `${address}:${port}`;
    const waiting = this.tcpAwaiting.get(key);
    if (waiting === undefined) return;
    this.tcpAwaiting.delete(key);
    for (const b of waiting) if (!b.client.terminated) b.client.transportError();
  }

  /** Start a branch; over TCP, remember it until it is answered, or fail it if its send just failed. */
  private startBranch(ptx: ProxyTransaction, spec: Parameters<ProxyTransaction['addBranch']>[0]): ReturnType<ProxyTransaction['addBranch']> {
    const failures = this.tcpFailures;
    const added = ptx.addBranch(spec);
    if (typeof added === 'string' || spec.target.protocol !== 'tcp' || added.client.terminated) return added;
    if (this.tcpFailures !== failures) {
      added.client.transportError(); // refused synchronously (no listener, the outbound budget)
      return added;
    }
    const key = `${spec.target.address}:${spec.target.port}`;
    let waiting = this.tcpAwaiting.get(key);
    if (waiting === undefined) this.tcpAwaiting.set(key, (waiting = new Set()));
    waiting.add(added);
    return added;
  }

  private answeredOverTcp(b: ProxyBranch): void {
    const key = `${b.target.address}:${b.target.port}`;
    const waiting = this.tcpAwaiting.get(key);
    if (waiting === undefined || !waiting.delete(b)) return;
    if (waiting.size === 0) this.tcpAwaiting.delete(key);
  }

  /** Transactions in the table now (server and client). */
  get live(): number {
    return this.layer.table.serverCount + this.layer.table.clientCount;
  }

  // ------------------------------------------------------------------ requests

  /**
   * A request that belongs to a transaction we hold: absorbed here (true), and the route does
   * not see it again. A 2xx's ACK and everything that matches nothing go on (false).
   */
  absorb(msg: SipMessage, inbound: Inbound, upstream: Target): boolean {
    const table = this.layer.table;
    if (table.serverCount === 0) return false;
    const key = requestKey(msg);
    const server = table.findServer(key);
    if (server !== undefined) return server.receive(msg) === 'absorbed';
    if (msg.method !== 'CANCEL') return false;
    // §16.10: a CANCEL for an INVITE we relay statefully is answered here and sent on to
    // every pending branch; one that matches nothing is relayed statelessly (the route).
    const invite = table.findInvite(key);
    if (invite === undefined || !(invite.user instanceof ProxyTransaction)) return false;
    const cancel = createServerTransaction(this.layer, { request: msg, key, source: { address: inbound.sourceAddress, port: inbound.sourcePort }, upstream });
    if (cancel === 'full') this.core.replyOrDrop(msg, inbound, 200, 'OK', undefined, true);
    invite.user.receiveCancel(cancel === 'full' ? undefined : cancel);
    return true;
  }

  /**
   * An operator's CANCEL (`sipctl dialog end` on a call not answered yet): the INVITE
   * transaction begun for `invite` (the request as received) cancels its pending branches as
   * for a caller's CANCEL (§16.10); its 487 goes upstream as the final response. False when
   * no such transaction is left.
   */
  cancelInvite(invite: SipMessage): boolean {
    if (this.layer.table.serverCount === 0) return false;
    const found = this.layer.table.findInvite(requestKey(invite));
    if (found === undefined || !(found.user instanceof ProxyTransaction)) return false;
    found.user.receiveCancel(undefined);
    return true;
  }

  /**
   * Relay `msg` (already carrying our edits for `target`, serialized as `bytes`) as the first
   * branch of a new proxy transaction. False when the table is full: the caller answers 503.
   */
  relay(
    ctx: RequestCtx,
    upstream: Target,
    base: Buffer,
    target: Target,
    bytes: Buffer,
    branch: string,
    out: Listener,
    pick: DispatchPick | undefined,
    route: Route,
  ): boolean {
    const ptx = ctx.pendingTx instanceof ProxyTransaction ? ctx.pendingTx : this.begin(ctx, upstream);
    if (ptx === 'full') return false;
    // Timers the route set while it was deciding (async) apply to the branches from now on.
    const t = this.core.config.transaction;
    ptx.frTimerMs = ctx.frTimerMs ?? t.frTimerMs;
    ptx.frInvTimerMs = ctx.frInvTimerMs ?? t.frInvTimerMs;
    const relayed: Relayed = {
      inbound: ctx.inbound,
      base,
      edits: { recordRoute: ctx.recordRouteWanted, path: ctx.pathWanted },
      branch,
      route,
      replyHook: ctx.replyHook,
      failureHook: ctx.failureHook,
      setid: pick?.setid,
      tried: pick?.handle === undefined ? [] : [pick.handle],
    };
    ptx.owner = relayed;
    // The request hook's AVPs become the transaction's.
    const vars = ctx.txIfAny;
    if (vars !== undefined) for (const [k, v] of vars) ptx.vars.set(k, v);
    const added = this.startBranch(ptx, { target, bytes, branch, via: out, data: pick?.handle });
    if (added === 'cancelled') ptx.reply(487, 'Request Terminated');
    else if (typeof added !== 'string') this.core.countForwarded();
    return true;
  }

  /**
   * The proxy transaction for ctx's request, created before the route has decided (an async
   * route): 100 Trying goes now for an INVITE (§16.2), and retransmissions find it. The
   * caller must reply or add a branch later (its own timer bounds the wait).
   */
  begin(ctx: RequestCtx, upstream: Target): ProxyTransaction | 'full' {
    const t = this.core.config.transaction;
    const received = ctx.msg.received;
    return ProxyTransaction.create(this.layer, {
      request: received,
      key: requestKey(received),
      source: { address: ctx.inbound.sourceAddress, port: ctx.inbound.sourcePort },
      upstream,
      host: this.host,
      frTimerMs: ctx.frTimerMs ?? t.frTimerMs,
      frInvTimerMs: ctx.frInvTimerMs ?? t.frInvTimerMs,
    });
  }

  /** A local reply on a transaction begun for an async route. */
  replyPending(ptx: unknown, status: number, reason: string | undefined, headers?: readonly string[], body?: { readonly type: string; readonly content: string }): void {
    if (ptx instanceof ProxyTransaction) ptx.reply(status, reason, headers, body);
  }

  /** Was the transaction begun for an async route cancelled meanwhile (§16.10)? */
  isCancelled(ptx: unknown): boolean {
    return ptx instanceof ProxyTransaction && ptx.cancelled;
  }

  // ------------------------------------------------------------------ responses

  /** A response to one of our client transactions: handled there (true), else false (stateless). */
  onResponse(msg: SipMessage): boolean {
    const table = this.layer.table;
    if (table.clientCount === 0) return false;
    const client = table.matchResponse(msg);
    if (client === undefined) return false;
    client.receive(msg);
    return true;
  }

  /** Kamailio's onreply_route and t_on_reply, for a response a branch received. */
  private onBranchResponse(ptx: ProxyTransaction, branch: ProxyBranch, response: SipMessage): boolean | void {
    const relayed = ptx.owner as Relayed | undefined;
    if (branch.target.protocol === 'tcp') this.answeredOverTcp(branch);
    // The destination answered: any final response ends its run of timeouts (ds_mark_dst).
    if (response.status >= 200 && branch.data !== undefined) this.core.dispatch.markAnswered?.(branch.data);
    const global = (relayed?.route ?? this.core.route).reply;
    const own = relayed?.replyHook;
    let dropped = false;
    if (global !== undefined || own !== undefined) {
      const rctx = new ResponseCtx(response, { address: branch.target.address, port: branch.target.port, protocol: branch.target.protocol }, ptx.vars);
      response.guard(CORE_HEADERS);
      for (const hook of [global, own]) {
        if (hook === undefined) continue;
        try {
          if (hook === global) hook.call(relayed?.route ?? this.core.route, rctx);
          else hook(rctx);
        } catch (err) {
          this.core.logger.limited('error', 'route.error', 'a reply hook threw; response relayed as it stood', {
            status: response.status,
            callId: safeCallId(response),
            error: err instanceof Error ? (err.stack ?? err.message) : String(err),
          });
        }
      }
      response.guard(undefined);
      dropped = rctx.dropped !== undefined;
    }
    if (dropped && response.status < 200) return false;
    const dialogs = this.core.dialogs;
    if (dialogs !== undefined && response.status < 300) {
      try {
        dialogs.response(response);
      } catch {
        // relayed as it would be without dialogs
      }
    }
    if (response.status > 100) this.core.countResponseRelayed();
    return undefined;
  }

  // ------------------------------------------------------------------ failure (failover)

  private onFailure(ptx: ProxyTransaction, best: ProxyBranch, ended: ProxyBranch): void {
    const relayed = ptx.owner as Relayed | undefined;
    if (relayed === undefined) return;
    // Kamailio's ds_mark_dst: a destination that let a branch time out.
    if (ended.timedOut && ended.data !== undefined) this.core.dispatch.markTimeout?.(ended.data);
    const route = relayed.route;
    const hook = relayed.failureHook ?? (route.failure === undefined ? undefined : route.failure.bind(route));
    if (hook === undefined) return;
    const request = ptx.request;
    if (request === undefined) return;
    const fctx = new FailureCtx(this.core, ptx, relayed, request, best, ended);
    let decision: FailureDecision;
    try {
      decision = hook(fctx);
    } catch (err) {
      this.core.logger.limited('error', 'route.error', 'the failure hook threw; answered 500', {
        callId: safeCallId(request),
        error: err instanceof Error ? (err.stack ?? err.message) : String(err),
      });
      ptx.reply(500, 'Server Internal Error');
      return;
    }
    if (decision === undefined || decision.action === 'drop') return;
    if (decision.action === 'reply') {
      ptx.reply(decision.status, decision.reason, decision.headers, decision.body);
      return;
    }
    if (decision.target === undefined) {
      // A failure hook relays to a chosen next hop (nextDestination, forward), not by the route set.
      ptx.reply(500, 'Server Internal Error');
      return;
    }
    const branches = ptx.branches.length;
    this.addBranch(ptx, relayed, ended, decision.target, decision.pick);
    // Failover: the call (dialog) moves to the new destination, and its call-load count with it.
    const dialogs = this.core.dialogs;
    if (dialogs !== undefined && ptx.branches.length > branches) {
      try {
        dialogs.retarget(request, decision.target, decision.pick);
      } catch {
        // failover goes on
      }
    }
  }

  /** A further branch for the transaction, to `target` (failover). */
  private addBranch(ptx: ProxyTransaction, relayed: Relayed, ended: ProxyBranch, target: Target, pick: DispatchPick | undefined): void {
    const k = ptx.branches.length;
    if (relayed.base === undefined || relayed.inbound === undefined) return; // the final response has gone
    const msg = parseMessage(relayed.base);
    const prepared = this.core.prepareBranch(msg, relayed.inbound, target, relayed.edits, `${relayed.branch}-${k}`);
    if (!('bytes' in prepared)) {
      ptx.reply(prepared.status, prepared.reason, prepared.headers);
      return;
    }
    if (ended.data !== undefined) this.core.dispatch.countFailover?.(ended.data);
    if (pick?.handle !== undefined) relayed.tried.push(pick.handle);
    const added = this.startBranch(ptx, { target, bytes: prepared.bytes, branch: `${relayed.branch}-${k}`, via: prepared.out, data: pick?.handle, request: msg });
    if (typeof added !== 'string') this.core.countForwarded();
  }
}

/** What a failure hook sees of a transaction whose branches all failed. */
class FailureCtx implements FailureContext {
  readonly status: number;
  readonly reason: string;
  readonly timedOut: boolean;
  readonly branchStatus: number;
  readonly destination: string | undefined;
  readonly attempts: number;

  // ES private: a failure hook gets this object and must not reach the core through it.
  readonly #core: StatefulCore;
  readonly #ptx: ProxyTransaction;
  readonly #relayed: Relayed;

  constructor(
    core: StatefulCore,
    ptx: ProxyTransaction,
    relayed: Relayed,
    readonly msg: SipMessage,
    best: ProxyBranch,
    ended: ProxyBranch,
  ) {
    this.#core = core;
    this.#ptx = ptx;
    this.#relayed = relayed;
    this.status = best.status === 503 ? 500 : best.status;
    this.reason = best.response?.reason ?? reasonPhrase(this.status);
    this.timedOut = ended.timedOut;
    this.branchStatus = ended.status;
    this.destination = ended.data === undefined ? undefined : core.dispatch.describe?.(ended.data);
    this.attempts = ptx.branches.length;
  }

  get tx(): Map<string, unknown> {
    return this.#ptx.vars;
  }

  nextDestination(): FailureDecision | null {
    const setid = this.#relayed.setid;
    const next = this.#core.dispatch.next;
    if (setid === undefined || next === undefined) return null;
    const pick = next.call(this.#core.dispatch, setid, this.#relayed.tried);
    const target = pick?.targets[0];
    if (pick === null || pick === undefined || target === undefined) return null;
    return { action: 'forward', target, targetUri: pick.uri, pick: { ...pick, setid } };
  }

  forward(uri: string | SipUri): FailureDecision {
    const parsed = typeof uri === 'string' ? parseUri(uri) : uri;
    const target = this.#core.literalTarget(parsed);
    if (target === undefined) throw new Error(`forward(${parsed.toString()}): the next hop must be an IP address with udp or tcp transport`);
    return { action: 'forward', target, targetUri: parsed.toString() };
  }

  reply(status: number, reason?: string, extra?: readonly string[] | ReplyOptions): FailureDecision {
    return replyDecision(status, reason, extra);
  }
}

function safeCallId(msg: SipMessage): string {
  try {
    return msg.callId;
  } catch {
    return '?';
  }
}

