/**
 * The few messages the transaction layer writes itself:
 * - the ACK of an INVITE client transaction for a non-2xx final response (§17.1.1.3),
 * - the CANCEL of a client INVITE (§9.1), which a proxy sends per branch (§16.10, §16.7
 *   step 10, §16.8),
 * - local responses of a server transaction (100 Trying, a 408 after a timeout, ...), built
 *   the way the stateless core builds its replies (src/proxy/reply.ts: §8.2.6, received and
 *   rport in the top Via, a To tag derived from the request).
 *
 * ACK and CANCEL copy the header values they need byte for byte (latin1 in, latin1 out), so
 * that the next hop matches them to its transaction exactly (§17.2.3 and §9.2 compare
 * values, not parses).
 */
import { buildLocalReply, localToTag } from '../proxy/reply.js';
import { SipParseError } from '../sip/errors.js';
import type { SipMessage } from '../sip/message.js';

const CRLF = '\r\n';

/** Field `canonical`'s single raw value, unfolded (folding is white space, §7.3.1). */
function rawSingle(msg: SipMessage, canonical: string, display: string): string {
  const i = msg.fieldIndex(canonical);
  if (i < 0) throw new SipParseError(`missing ${display} header`);
  return unfoldRaw(msg.rawValue(i));
}

function unfoldRaw(raw: string): string {
  return raw.indexOf('\n') < 0 ? raw : raw.replace(/[ \t]*\r?\n[ \t]+/g, ' ');
}

/** The request's top Via value as written (one value even when the field holds several). */
function topViaText(msg: SipMessage): string {
  const top = msg.topVia;
  if (top === undefined) throw new SipParseError('missing Via header');
  return unfoldRaw(msg.buffer.latin1Slice(top.start, top.end));
}

/** Every Route field of the request, as written, in order (§17.1.1.3, §9.1: the Route header fields of the original). */
function routeLines(msg: SipMessage): string {
  let out = '';
  for (let i = msg.fieldIndex('route'); i >= 0; i = msg.fieldIndex('route', i + 1)) out += `Route: ${unfoldRaw(msg.rawValue(i))}${CRLF}`;
  return out;
}

/**
 * §17.1.1.3: the ACK for a non-2xx final response to `invite` (the INVITE as this
 * transaction sent it). Request-URI, Call-ID, From and the CSeq number of the INVITE with
 * method ACK; To from the response (it carries the tag); only the INVITE's top Via; the
 * INVITE's Route header fields.
 */
export function buildAck(invite: SipMessage, response: SipMessage): Buffer {
  const text =
    `ACK ${invite.requestUriText} SIP/2.0${CRLF}` +
    `Via: ${topViaText(invite)}${CRLF}` +
    routeLines(invite) +
    `Max-Forwards: 70${CRLF}` +
    `From: ${rawSingle(invite, 'from', 'From')}${CRLF}` +
    `To: ${rawSingle(response, 'to', 'To')}${CRLF}` +
    `Call-ID: ${rawSingle(invite, 'call-id', 'Call-ID')}${CRLF}` +
    `CSeq: ${invite.cseq.seq} ACK${CRLF}` +
    `Content-Length: 0${CRLF}${CRLF}`;
  return Buffer.from(text, 'latin1');
}

/**
 * §9.1: the CANCEL of `request` (as this transaction sent it). Request-URI, Call-ID, To,
 * From and the CSeq number are the request's, the CSeq method is CANCEL, the only Via is
 * the request's top Via (so the next hop's §9.2 matching finds the INVITE), and the
 * request's Route header fields are copied.
 */
export function buildCancel(request: SipMessage): Buffer {
  const text =
    `CANCEL ${request.requestUriText} SIP/2.0${CRLF}` +
    `Via: ${topViaText(request)}${CRLF}` +
    routeLines(request) +
    `Max-Forwards: 70${CRLF}` +
    `From: ${rawSingle(request, 'from', 'From')}${CRLF}` +
    `To: ${rawSingle(request, 'to', 'To')}${CRLF}` +
    `Call-ID: ${rawSingle(request, 'call-id', 'Call-ID')}${CRLF}` +
    `CSeq: ${request.cseq.seq} CANCEL${CRLF}` +
    `Content-Length: 0${CRLF}${CRLF}`;
  return Buffer.from(text, 'latin1');
}

/** Where the request came from, for received/rport in a local response's top Via (§18.2.1, RFC 3581). */
export interface RequestSource {
  readonly address: string;
  readonly port: number;
}

/** A local response to `request` (§8.2.6.2), as the stateless core writes its replies. */
export function buildLocalResponse(
  request: SipMessage,
  source: RequestSource,
  status: number,
  reason?: string,
  headers?: readonly string[],
  body?: { readonly type: string; readonly content: string },
): Buffer {
  return buildLocalReply(request, source.address, source.port, status, reason, { headers, body });
}

/** The To tag buildLocalResponse gives `request`'s responses above 100 when the request has none. */
export function localResponseToTag(request: SipMessage): string {
  return request.to.tag ?? localToTag(request);
}
