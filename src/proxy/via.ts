/**
 * Via handling of the proxy core:
 * - received / rport on the top Via of a request (RFC 3261 §18.2.1, RFC 3581 §4),
 * - our own Via with a stateless branch (§16.6 step 8, §16.11),
 * - where a response goes: the next Via (§18.2.2, RFC 3581 §4).
 */
import type { SipMessage } from '../sip/message.js';
import type { Via } from '../sip/values.js';
import type { Inbound, Listener, Protocol, Target } from '../transport/types.js';
import { randomBytes } from 'node:crypto';
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
 * The edits that record where a request really came from in its top Via:
 * `received` when the sent-by host differs from the source address (§18.2.1) — and always
 * when rport is present (RFC 3581 §4) — and the source port into an empty `rport`.
 */
export function receivedEdits(via: Via, sourceAddress: string, sourcePort: number): ViaEdit[] {
  const edits: ViaEdit[] = [];
  const source = plainAddress(sourceAddress);
  const wantsRport = via.rport === null;
  if (wantsRport) edits.push({ start: via.rportStart, end: via.rportEnd, text: `rport=${sourcePort}` });
  if (via.received === undefined && (wantsRport || !sameAddress(via.host, source))) {
    // received carries an IP address; IPv6 is written without brackets (RFC 5118 §4.5 allows both).
    edits.push({ start: via.end, end: via.end, text: `;received=${source}` });
  }
  return edits;
}

/**
 * The stateless branch for a request (§16.11): a function of what identifies the request and
 * does not change on retransmission — the incoming top Via's branch, Call-ID, From tag,
 * CSeq number and the Request-URI as received. The To tag and the method are left out on
 * purpose: the CANCEL and the ACK for a non-2xx response to an INVITE then get the same branch
 * as the INVITE, which is how the next hop matches them to its INVITE transaction (§9.1,
 * §17.1.1.3). The same value serves loop detection (§16.3 item 4).
 *
 * `incoming` is the Via that was on top when the request reached us (for loop detection:
 * the Via just below our own).
 */
export function statelessBranch(msg: SipMessage, incoming: Via | undefined): string {
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
  let fromTag = '';
  try {
    fromTag = msg.from.tag ?? '';
  } catch {
    // validated before we get here; a missing From only weakens the hash
  }
  h.add(msg.callId).add(fromTag).addNumber(msg.cseq.seq).add(msg.requestUriText);
  return MAGIC_COOKIE + 'sc.' + h.digest();
}

/**
 * Our Via for a request leaving on `listener`, whose sent-by peers know as `sentBy`. When
 * the request came over TCP, the Via carries the connection it came on, so that its
 * responses go back on it (§18.2.2) — sealed with a per-process secret and the sender's
 * address, so that nobody can forge a response into another client's connection by naming
 * its id.
 */
export function ownVia(listener: Listener, sentBy: { host: string; port: number }, branch: string, inbound?: Inbound): string {
  let v = `SIP/2.0/${listener.protocol === 'tcp' ? 'TCP' : 'UDP'} ${sentBy.host}:${sentBy.port};branch=${branch}`;
  if (inbound !== undefined && inbound.protocol === 'tcp' && inbound.connectionId !== undefined) {
    v += `;${CONNECTION_PARAM}=${inbound.connectionId}.${connectionSeal(inbound.connectionId, inbound.sourceAddress)}`;
  }
  return v;
}

const SECRET = randomBytes(16).toString('hex');

function connectionSeal(id: number, address: string): string {
  return new Hasher().add(SECRET).addNumber(id).add(plainAddress(address)).digest();
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
  return connectionId === undefined ? { protocol, address, port } : { protocol, address, port, connectionId };
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
  return v.slice(dot + 1) === connectionSeal(id, next.received ?? next.host) ? id : undefined;
}
