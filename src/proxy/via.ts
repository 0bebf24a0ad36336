/**
 * Via handling of the proxy core:
 * - received / rport on the top Via of a request (RFC 3261 §18.2.1, RFC 3581 §4),
 * - our own Via with a stateless branch (§16.6 step 8, §16.11),
 * - where a response goes: the next Via (§18.2.2, RFC 3581 §4).
 */
import type { SipMessage } from '../sip/message.js';
import type { Via } from '../sip/values.js';
import type { Inbound, Listener, Protocol, Target } from '../transport/types.js';
import { createHmac, randomBytes } from 'node:crypto';
import { Hasher } from './hash.js';
import { plainAddress, sameAddress } from './identity.js';

/** RFC 3261 §8.1.1.7: branches of RFC 3261 elements start with this magic cookie. */
export const MAGIC_COOKIE = 'z9hG4bK';
/** Our Via parameter carrying the TCP connection a request arrived on, so its responses can go back on it. */
export const CONNECTION_PARAM = 'sipctl-cid';

export interface ViaEdit {
  start: number;
  end: number;
  text: string;
}

/** Formats an IP literal for a Via parameter or URI host (IPv6 in brackets). */
export function hostText(address: string): string {
  return address.indexOf(':') >= 0 ? `[${address}]` : address;
}

/**
 * The edits that record where a request really came from in its top Via (§18.2.1, RFC 3581
 * §4): `received` when the sent-by host differs from the source address — and always when
 * rport is present — and the source port into `rport`. Both are what *we* observed: a
 * `received` or an `rport` value the sender wrote itself is overwritten, never trusted (a
 * forged `received` would steer the responses to someone else).
 */
export function receivedEdits(via: Via, sourceAddress: string, sourcePort: number): ViaEdit[] {
  const edits: ViaEdit[] = [];
  const source = plainAddress(sourceAddress);
  const hasRport = via.rport !== undefined;
  if (hasRport && via.rport !== sourcePort) edits.push({ start: via.rportStart, end: via.rportEnd, text: `rport=${sourcePort}` });
  if (via.received !== undefined) {
    // received carries an IP address; IPv6 is written without brackets (RFC 5118 §4.5 allows both).
    if (!sameAddress(via.received, source)) edits.push({ start: via.receivedStart, end: via.receivedEnd, text: `received=${source}` });
  } else if (hasRport || !sameAddress(via.host, source)) {
    edits.push({ start: via.end, end: via.end, text: `;received=${source}` });
  }
  return edits;
}

/**
 * The stateless branch of a request (§16.11, §16.6 step 8) has two parts:
 *
 *   z9hG4bK sc. <transaction part> [ . <loop part> ]
 *
 * - the transaction part is a function of what identifies the request and does not change
 *   on retransmission: the incoming top Via's branch, Call-ID, From tag, CSeq number and the
 *   Request-URI as received. The To tag and the method are left out on purpose: the CANCEL
 *   and the ACK for a non-2xx response to an INVITE get the same value, which keys the pairing
 *   map (where the INVITE went, and with which branch);
 * - the loop part (only when the request carries any of them) reflects the Route,
 *   Proxy-Require and Proxy-Authorization fields, as §16.6 step 8 asks ("including any Route,
 *   Proxy-Require and Proxy-Authorization header fields"), so that a request that comes back
 *   with a different route set — the second pass of an in-dialog request through a proxy
 *   that record-routed twice, RFC 3327 Path — is a spiral, not a loop (§16.3 item 4).
 *
 * The parts that are the same for every Via of one message are hashed once
 * (`RequestDigest`), so checking every Via for a loop costs O(message size), not
 * O(Vias × size).
 */
export class RequestDigest {
  /** 14 characters over Call-ID, From tag, CSeq number and the Request-URI as received. */
  readonly request: string;
  /** '' or '.' + 14 characters over the Route, Proxy-Require and Proxy-Authorization values. */
  readonly loop: string;

  constructor(msg: SipMessage) {
    let fromTag = '';
    try {
      fromTag = msg.from.tag ?? '';
    } catch {
      // validated before we get here; a missing From only weakens the hash
    }
    this.request = new Hasher().add(msg.callId).add(fromTag).addNumber(msg.cseq.seq).add(msg.requestUriText).digest();
    const { names, valueStarts, valueEnds } = msg.index;
    let loop: Hasher | undefined;
    for (let i = 0; i < names.length; i++) {
      const n = names[i];
      if (n === 'route' || n === 'proxy-require' || n === 'proxy-authorization') {
        (loop ??= new Hasher()).add(n).addBytes(msg.buffer, valueStarts[i]!, valueEnds[i]!);
      }
    }
    this.loop = loop === undefined ? '' : `.${loop.digest()}`;
  }

  /** The transaction part for a request whose top Via (as it reached us) was `incoming`. */
  transactionPart(incoming: Via | undefined): string {
    const h = new Hasher();
    if (incoming !== undefined) {
      // A branch that is only the cookie (RFC 4475 badbranch) identifies nothing.
      if (incoming.branch !== undefined && incoming.branch.length > MAGIC_COOKIE.length && incoming.branch.startsWith(MAGIC_COOKIE)) {
        h.add(incoming.branch);
      } else {
        // RFC 2543 peer: no usable branch; its sent-by identifies it.
        h.add(incoming.host).addNumber(incoming.port ?? 0).add(incoming.branch ?? '');
      }
    }
    return h.add(this.request).digest();
  }

  /** The whole branch for a request whose top Via (as it reached us) was `incoming`. */
  branch(incoming: Via | undefined): string {
    return STATELESS_PREFIX + this.transactionPart(incoming) + this.loop;
  }
}

const STATELESS_PREFIX = MAGIC_COOKIE + 'sc.';

/** The stateless branch for a request (see RequestDigest). */
export function statelessBranch(msg: SipMessage, incoming: Via | undefined): string {
  return new RequestDigest(msg).branch(incoming);
}

/** The transaction part of one of our stateless branches (the pairing key), else undefined. */
export function transactionPartOf(branch: string): string | undefined {
  if (!branch.startsWith(STATELESS_PREFIX)) return undefined;
  return branch.substring(STATELESS_PREFIX.length, STATELESS_PREFIX.length + 14);
}

/**
 * Our Via for a request leaving on `listener`, whose sent-by peers know as `sentBy`. When
 * the request came over TCP, the Via carries the connection it came on, so that its
 * responses go back on it (§18.2.2), with a MAC over the connection id and the sender's
 * address (HMAC-SHA-256 under a per-process random key, 96 bits kept): nobody can name
 * another client's connection in a forged response.
 */
export function ownVia(listener: Listener, sentBy: { host: string; port: number }, branch: string, inbound?: Inbound): string {
  let v = `SIP/2.0/${listener.protocol === 'tcp' ? 'TCP' : 'UDP'} ${sentBy.host}:${sentBy.port};branch=${branch}`;
  if (inbound !== undefined && inbound.protocol === 'tcp' && inbound.connectionId !== undefined) {
    v += `;${CONNECTION_PARAM}=${inbound.connectionId}.${connectionSeal(inbound.connectionId, inbound.sourceAddress)}`;
  }
  return v;
}

/** The MAC key: random per process, so a seal is worthless after a restart (connections are too). */
const SEAL_KEY = randomBytes(32);
/** Seals by "id|address": computed once per connection, not once per message; bounded. */
const seals = new Map<string, string>();
const MAX_CACHED_SEALS = 8192;

function connectionSeal(id: number, address: string): string {
  const key = `${id}|${plainAddress(address)}`;
  let seal = seals.get(key);
  if (seal === undefined) {
    seal = createHmac('sha256', SEAL_KEY).update(key).digest('base64url').slice(0, 16);
    if (seals.size >= MAX_CACHED_SEALS) seals.clear();
    seals.set(key, seal);
  }
  return seal;
}

/** Compares two seals in time independent of where they differ. */
function sameSeal(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

function protocolOf(via: Via): Protocol | undefined {
  switch (via.transport) {
    case 'UDP':
      return 'udp';
    case 'TCP':
      return 'tcp';
    default:
      return undefined;
  }
}

/**
 * Where a response goes, from the Via it is to be sent to (§18.2.2, RFC 3581 §4): for TCP,
 * the connection the request came in on when it is still open, else a connection to
 * received:rport (or sent-by); for UDP, maddr, else received (or sent-by host) and rport (or
 * sent-by port, or 5060). Undefined when the Via names a transport we do not speak or a
 * host name with no received parameter (we only ever route to IP literals on this path).
 */
export function responseTarget(via: Via, connectionId?: number): Target | undefined {
  const protocol = protocolOf(via);
  if (protocol === undefined) return undefined;
  let address = via.received ?? via.host;
  if (via.maddr !== undefined && protocol === 'udp') address = via.maddr;
  if (via.received === undefined && via.hostType === 'name' && via.maddr === undefined) return undefined;
  if (address.indexOf(':') < 0 && !/^[0-9.]+$/.test(address)) return undefined;
  // Never to a broadcast or unspecified address (RFC 4475 §3.3.? bcast): drop instead.
  if (address === '255.255.255.255' || address === '0.0.0.0' || address === '::') return undefined;
  const port = typeof via.rport === 'number' ? via.rport : (via.port ?? 5060);
  // A response enters an inbound TCP connection only when our Via's MAC named it
  // (connectionId); never another peer's connection found by its address.
  if (protocol === 'tcp') return connectionId === undefined ? { protocol, address, port, inboundByIdOnly: true } : { protocol, address, port, connectionId, inboundByIdOnly: true };
  return { protocol, address, port };
}

/**
 * The connection id we stored in our own Via, if any and if its seal matches the address
 * the response is going back to (the next Via's received, else its sent-by host).
 */
export function connectionIdFrom(ours: Via, next: Via): number | undefined {
  const v = ours.params.get(CONNECTION_PARAM);
  if (v == null) return undefined;
  const dot = v.indexOf('.');
  if (dot <= 0) return undefined;
  const id = Number(v.slice(0, dot));
  if (!Number.isInteger(id) || id < 0) return undefined;
  return sameSeal(v.slice(dot + 1), connectionSeal(id, next.received ?? next.host)) ? id : undefined;
}
