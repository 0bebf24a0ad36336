/**
 * What identifies the server transaction a request belongs to (RFC 3261 §17.2.3), read once
 * per request right after parsing and used both to look the transaction up and, when there
 * is none, to file the new one: no key string is built twice per message.
 *
 * - RFC 3261 peers: the top Via branch starts with the magic cookie "z9hG4bK" (§8.1.1.7).
 *   The branch is the key; sent-by and method are compared inside the bucket (§17.2.3: "the
 *   branch parameter ... is equal", "the sent-by value ... is equal", "the method ... matches,
 *   except for ACK, where the method of the request that created the transaction is
 *   INVITE"). No string is built: the branch is the parsed Via's own.
 * - RFC 2543 peers (no cookie, or a branch that is only the cookie): the key joins Call-ID,
 *   From tag, CSeq number and the top Via as written; Request-URI, To tag and method are
 *   compared inside the bucket (§17.2.3, last paragraphs). The CSeq method is left out of
 *   the key so that the ACK and the CANCEL of an INVITE land in its bucket.
 */
import { MAGIC_COOKIE } from '../proxy/via.js';
import { SipParseError } from '../sip/errors.js';
import type { SipMessage } from '../sip/message.js';

export interface RequestKey {
  /** The top Via branch carries the magic cookie: `id` is that branch. Otherwise `id` is the RFC 2543 key. */
  readonly rfc3261: boolean;
  readonly id: string;
  /** The request's method (ACK and CANCEL as they are; matching maps them). */
  readonly method: string;
  /** Top Via sent-by: host (lower case) and port (the transport's default when absent). */
  readonly sentByHost: string;
  readonly sentByPort: number;
  /** RFC 2543 matching only ('' for RFC 3261 keys): the Request-URI as received. */
  readonly requestUri: string;
  /** RFC 2543 matching only: the To tag of the request. */
  readonly toTag: string | undefined;
}

/** A branch made by an RFC 3261 element: the cookie and something after it (RFC 4475 §3.1.2.? badbranch: only the cookie is not). */
export function isRfc3261Branch(branch: string | undefined): branch is string {
  return branch !== undefined && branch.length > MAGIC_COOKIE.length && branch.startsWith(MAGIC_COOKIE);
}

/**
 * The request's transaction key. The request must have been validated (top Via, Call-ID,
 * From, To, CSeq readable); a value that cannot be parsed throws SipParseError.
 */
export function requestKey(msg: SipMessage): RequestKey {
  if (!msg.isRequest) throw new SipParseError('a response has no server transaction');
  const top = msg.topVia;
  if (top === undefined) throw new SipParseError('missing Via header');
  const sentByPort = top.port ?? (top.transport === 'TLS' || top.transport === 'WSS' ? 5061 : 5060);
  if (isRfc3261Branch(top.branch)) {
    return { rfc3261: true, id: top.branch, method: msg.method, sentByHost: top.host, sentByPort, requestUri: '', toTag: undefined };
  }
  const id = `${msg.callId}\n${msg.from.tag ?? ''}\n${msg.cseq.seq}\n${msg.buffer.latin1Slice(top.start, top.end)}`;
  return { rfc3261: false, id, method: msg.method, sentByHost: top.host, sentByPort, requestUri: msg.requestUriText, toTag: msg.to.tag };
}
