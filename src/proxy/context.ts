/**
 * The routing context of one request: the routing API (src/route/api.ts) implemented over
 * the proxy core. Methods that change the message (looseRoute, appendHeader) record edits;
 * methods that decide (reply, relay, forward, dispatch, drop) return a decision for the core
 * to carry out. One object per request; nothing here does I/O.
 */
import type { AddressMatch, FailureContext, FailureDecision, ReplyContext, ReplyOptions, RequestContext, RequestDecision, Source } from '../route/api.js';
import type { SipMessage } from '../sip/message.js';
import { parseUri, type SipUri } from '../sip/uri.js';
import type { Inbound, Target } from '../transport/types.js';
import type { ProxyCore } from './core.js';
import type { PairedInvite } from './pairing.js';
import type { SelectionKey } from './services.js';
import { RequestDigest } from './via.js';

export class RequestCtx implements RequestContext {
  readonly source: Source;
  /** Set by recordRoute() / addPath(); applied when the outgoing interface is known. */
  recordRouteWanted = false;
  pathWanted = false;
  /** Relay statefully (see RequestContext.stateful); starts as the config's mode. */
  stateful: boolean;
  /** This transaction's hooks and timers, set by the request hook (Kamailio's t_on_reply, t_on_failure, t_set_fr). */
  replyHook: ((ctx: ReplyContext) => void) | undefined = undefined;
  failureHook: ((ctx: FailureContext) => FailureDecision) | undefined = undefined;
  frTimerMs: number | undefined = undefined;
  frInvTimerMs: number | undefined = undefined;
  private _tx: Map<string, unknown> | undefined = undefined;
  /**
   * The Route values still to follow after looseRoute() removed ours, as a range of value
   * indexes in the message as received, [first, end) (undefined: looseRoute() not called,
   * every Route value remains).
   */
  remainingRoutes: { first: number; end: number } | undefined = undefined;
  private _digest: RequestDigest | undefined;
  private _transactionKey: string | undefined = undefined;
  private _branch: string | undefined = undefined;
  private _paired: PairedInvite | undefined | null = null; // null: not looked up yet

  /**
   * The core, in an ES private field: a routing script gets this object, and must not reach
   * the transport (sockets) or the tables through it — `ctx.core` does not exist at run time.
   */
  readonly #core: ProxyCore;
  /** A pending async decision's transaction (set by the core; see ProxyCore.awaitDecision). */
  pendingTx: unknown = undefined;
  /** The route that decided (set by the core): a transaction keeps its hooks across a route reload. */
  decidedBy: unknown = undefined;

  constructor(
    core: ProxyCore,
    readonly msg: SipMessage,
    readonly inbound: Inbound,
    /** The core's admission verdict for the source (address-table groups and next hops), made once. */
    readonly admitted: boolean,
    digest?: RequestDigest,
  ) {
    this.#core = core;
    this.source = { address: inbound.sourceAddress, port: inbound.sourcePort, protocol: inbound.protocol };
    this._digest = digest;
    this.stateful = core.config.mode === 'transaction';
  }

  get receivedOn(): Source {
    const l = this.inbound.listener;
    return { address: l.address, port: l.port, protocol: l.protocol };
  }

  get tx(): Map<string, unknown> {
    return (this._tx ??= new Map());
  }

  /** The per-transaction state, if the route put anything there. */
  get txIfAny(): Map<string, unknown> | undefined {
    return this._tx;
  }

  onReply(hook: (ctx: ReplyContext) => void): void {
    this.replyHook = hook;
  }

  onFailure(hook: (ctx: FailureContext) => FailureDecision): void {
    this.failureHook = hook;
  }

  setTimers(timers: { frTimerMs?: number; frInvTimerMs?: number }): void {
    const check = (v: number | undefined, name: string): number | undefined => {
      if (v !== undefined && (!Number.isInteger(v) || v < 100 || v > 3_600_000)) throw new RangeError(`setTimers: ${name} must be a whole number of ms from 100 to 3600000, got ${v}`);
      return v;
    };
    this.frTimerMs = check(timers.frTimerMs, 'frTimerMs') ?? this.frTimerMs;
    this.frInvTimerMs = check(timers.frInvTimerMs, 'frInvTimerMs') ?? this.frInvTimerMs;
  }

  get inDialog(): boolean {
    return this.msg.to.tag !== undefined;
  }

  private get digest(): RequestDigest {
    return (this._digest ??= new RequestDigest(this.msg));
  }

  /** The transaction part of our stateless branch: the same for an INVITE, its CANCEL and its non-2xx ACK. */
  get transactionKey(): string {
    return (this._transactionKey ??= this.digest.transactionPart(this.msg.topVia));
  }

  /**
   * The branch of our Via (§16.11): a CANCEL and a non-2xx ACK take their INVITE's branch
   * when we still know it (the next hop matches them to the INVITE by it, §9.1, §17.1.1.3);
   * everything else gets its stateless branch.
   */
  get branch(): string {
    if (this._branch === undefined) {
      const m = this.msg.method;
      const paired = m === 'CANCEL' || m === 'ACK' ? this.paired() : undefined;
      this._branch = paired?.branch ?? this.digest.branch(this.msg.topVia);
    }
    return this._branch;
  }

  private paired(): PairedInvite | undefined {
    if (this._paired === null) this._paired = this.#core.pairing.lookup(this.transactionKey);
    return this._paired;
  }

  maxForwardsOk(): boolean {
    const mf = this.msg.maxForwards;
    return mf === undefined || mf > 0;
  }

  isToSelf(): boolean {
    // No Route left to follow (none at all, or looseRoute() removed only ours), and the
    // Request-URI names us.
    const r = this.remainingRoutes;
    const routeLeft = r === undefined ? this.msg.fieldIndex('route') >= 0 : r.end > r.first;
    return !routeLeft && this.#core.local.isLocalUri(this.msg.uri);
  }

  sourceIn(...groups: number[]): boolean {
    return this.sourceMatch(...groups) !== null;
  }

  sourceMatch(...groups: number[]): AddressMatch | null {
    return this.#core.acl.match(this.source.address, this.source.port, groups.length === 0 ? null : groups);
  }

  sourceAllowed(): boolean {
    return this.admitted;
  }

  fromNextHop(): boolean {
    return this.#core.isNextHop(this.source.address, this.source.port, this.source.protocol);
  }

  looseRoute(): boolean {
    const msg = this.msg;
    const local = this.#core.local;
    // Only the values we look at are parsed: the top two and, after a strict router, the last.
    const count = msg.valueLocations('route').length;
    let end = count;
    let restored = false;
    // §16.4: a Request-URI we placed into a Record-Route means the previous hop was a strict
    // router: the real Request-URI is the last Route value. Our Record-Route URIs always
    // carry `lr`, which tells them from a request simply addressed to us.
    if (count > 0 && msg.uri.scheme !== 'tel' && msg.uri.params.has('lr') && local.isLocalUri(msg.uri)) {
      msg.setRequestUri(msg.nameAddrAt('route', count - 1)!.uri.toString());
      msg.removeValue('route', count - 1);
      end = count - 1;
      restored = true;
    }
    // §16.4: remove the top Route value when it is us — and the next one as well when we
    // record-routed twice (one entry per interface, §16.6 step 4).
    let first = 0;
    while (first < 2 && first < end && local.isLocalUri(msg.nameAddrAt('route', first)!.uri)) {
      msg.removeValue('route', first);
      first++;
    }
    this.remainingRoutes = { first, end };
    // Kamailio's loose_route(): route-driven when a Route is left to follow, or the
    // Request-URI came back from a strict router, or an in-dialog request carried our Route
    // (its Request-URI is the remote target, §12.2.1.1). An initial request whose only Route
    // was ours (a phone using us as its outbound proxy, §8.1.2) is not: it is routed like
    // any other initial request.
    return restored || end > first || (first > 0 && this.inDialog);
  }

  removeRoutes(): void {
    this.msg.removeHeader('route');
    this.remainingRoutes = { first: 0, end: 0 };
  }

  recordRoute(): void {
    this.recordRouteWanted = true;
  }

  addPath(): void {
    this.pathWanted = true;
  }

  reply(status: number, reason?: string, extra?: readonly string[] | ReplyOptions): RequestDecision {
    return replyDecision(status, reason, extra);
  }

  relay(): RequestDecision {
    return { action: 'forward' };
  }

  forward(uri: string | SipUri): RequestDecision {
    const parsed = typeof uri === 'string' ? parseUri(uri) : uri;
    const target = this.#core.literalTarget(parsed);
    if (target === undefined) {
      throw new Error(`forward(${parsed.toString()}): the next hop must be an IP address with udp or tcp transport`);
    }
    return { action: 'forward', target, targetUri: parsed.toString() };
  }

  dispatch(setid: number, algorithm: string | number): RequestDecision {
    // A retransmitted INVITE, its CANCEL and the ACK for a non-2xx response go where the
    // INVITE went.
    const paired = this.pairedTarget();
    if (paired !== undefined) return { action: 'forward', target: paired };
    const pick = this.#core.dispatch.select(setid, algorithm, new MessageSelectionKey(this.msg));
    const target: Target | undefined = pick?.targets[0];
    if (pick === null || target === undefined) {
      this.#core.noDestination(this, setid);
      return this.reply(this.#core.config.dispatcher.noDestinationCode, this.#core.config.dispatcher.noDestinationReason);
    }
    return { action: 'forward', target, targetUri: pick.uri, pick: pick.setid === undefined ? { ...pick, setid } : pick };
  }

  pairedTarget(): Target | undefined {
    const m = this.msg.method;
    if (m !== 'INVITE' && m !== 'CANCEL' && m !== 'ACK') return undefined;
    return this.paired()?.target;
  }

  drop(why: string): RequestDecision {
    return { action: 'drop', why };
  }

  appendHeader(name: string, value: string): void {
    this.msg.appendHeader(name, value);
  }

  insertHeader(name: string, value: string): void {
    this.msg.prependHeader(name, value);
  }

  removeHeader(name: string): number {
    return this.msg.removeHeader(name);
  }

  setHeader(name: string, value: string): void {
    this.msg.setHeader(name, value);
  }

  hasHeader(name: string): boolean {
    return this.msg.header(name) !== undefined;
  }

  setFromUser(user: string): void {
    setNameAddrUser(this.msg, 'from', user);
  }

  setFromDisplay(display: string): void {
    setNameAddrDisplay(this.msg, 'from', display);
  }

  setToUser(user: string): void {
    setNameAddrUser(this.msg, 'to', user);
  }

  setRequestUri(uri: string): void {
    this.msg.setRequestUri(uri);
  }

  setRequestUser(user: string): void {
    const u = parseUri(this.msg.currentUriText);
    if (u.scheme !== 'sip' && u.scheme !== 'sips') throw new Error(`setRequestUser: the Request-URI is not a SIP URI (${u.scheme})`);
    u.user = user === '' ? undefined : user;
    this.msg.setRequestUri(u.toString());
  }
}

/** Header lines a route may add to a local reply: a token, a colon, no CR or LF; none of the reply's own. */
const REPLY_OWN = new Set(['via', 'v', 'from', 'f', 'to', 't', 'call-id', 'i', 'cseq', 'content-length', 'l', 'content-type', 'c']);

/** A reply decision, its extra header lines and body checked (a route's bytes go on the wire). */
export function replyDecision(status: number, reason: string | undefined, extra: readonly string[] | ReplyOptions | undefined): RequestDecision {
  if (!Number.isInteger(status) || status < 100 || status > 699) throw new RangeError(`reply: status must be 100-699, got ${status}`);
  if (reason !== undefined && /[\r\n]/.test(reason)) throw new Error('reply: the reason phrase cannot contain CR or LF');
  if (extra === undefined) return { action: 'reply', status, reason };
  const opts: ReplyOptions = Array.isArray(extra) ? { headers: extra as readonly string[] } : (extra as ReplyOptions);
  const headers = opts.headers;
  if (headers !== undefined) {
    for (const h of headers) {
      const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*:[^\r\n]*$/.exec(h);
      if (m === null) throw new Error(`reply: ${JSON.stringify(h)} is not a header line ("Name: value", no CR or LF)`);
      if (REPLY_OWN.has(m[1]!.toLowerCase())) throw new Error(`reply: ${m[1]} is the reply's own header; it cannot be given`);
    }
  }
  if (opts.body === undefined) return headers === undefined ? { action: 'reply', status, reason } : { action: 'reply', status, reason, headers };
  const type = opts.contentType ?? 'text/plain';
  if (/[\r\n]/.test(type)) throw new Error('reply: contentType cannot contain CR or LF');
  return { action: 'reply', status, reason, headers, body: { type, content: opts.body } };
}

/** The name-addr value of From / To with the URI's user part changed (display name and parameters kept). */
function setNameAddrUser(msg: SipMessage, name: 'from' | 'to', user: string): void {
  const value = msg.header(name);
  const na = name === 'from' ? msg.from : msg.to;
  if (value === undefined) throw new Error(`no ${name} header`);
  const uri = parseUri(na.uriText);
  if (uri.scheme !== 'sip' && uri.scheme !== 'sips') throw new Error(`set ${name} user: not a SIP URI (${uri.scheme})`);
  uri.user = user === '' ? undefined : user;
  const lt = value.indexOf('<');
  const at = value.indexOf(na.uriText, lt < 0 ? 0 : lt);
  if (at < 0) throw new Error(`set ${name} user: cannot find the URI in ${JSON.stringify(value)}`);
  let text = uri.toString();
  // Without angle brackets, a URI with parameters would lend them to the header (§20.10): add brackets.
  if (lt < 0) text = `<${text}>`;
  msg.setHeader(name, value.slice(0, at) + text + value.slice(at + na.uriText.length));
}

function setNameAddrDisplay(msg: SipMessage, name: 'from' | 'to', display: string): void {
  const value = msg.header(name);
  const na = name === 'from' ? msg.from : msg.to;
  if (value === undefined) throw new Error(`no ${name} header`);
  if (/[\r\n]/.test(display)) throw new Error('display name cannot contain CR or LF');
  const lt = value.indexOf('<');
  // The rest after the URI: the header parameters (tag, ...).
  const uriEnd = lt < 0 ? value.indexOf(na.uriText) + na.uriText.length : value.indexOf('>', lt) + 1;
  const rest = value.slice(uriEnd);
  const quoted = display === '' ? '' : `"${display.replace(/["\\]/g, (c) => `\\${c}`)}" `;
  // A bare URI's parameters would be the header's: the tag stays after the brackets.
  msg.setHeader(name, `${quoted}<${na.uriText}>${rest}`);
}

/**
 * What the hashing algorithms read ($ci, $fu, $tu, $ru), read from the message only when an
 * algorithm asks: round-robin, weight and priority read nothing, and the From and To URIs
 * cost a name-addr parse each.
 */
class MessageSelectionKey implements SelectionKey {
  constructor(private readonly msg: SipMessage) {}
  get callId(): string {
    return this.msg.callId;
  }
  get fromUri(): string {
    return this.msg.from.uriText;
  }
  get toUri(): string {
    return this.msg.to.uriText;
  }
  get requestUri(): string {
    return this.msg.requestUriText;
  }
}
