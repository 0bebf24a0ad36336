/**
 * Stateless local replies (RFC 3261 §8.2.6, Kamailio's sl_send_reply): a response built from
 * the request's Via (with received/rport filled in, §18.2.1 / RFC 3581), From, To (with our
 * tag added), Call-ID and CSeq, and sent where §18.2.2 says.
 *
 * The To tag is derived from the request, so a retransmitted request gets the same tag, and
 * the ACK for a non-2xx reply we sent can be recognized and absorbed (it is ours, not
 * something to forward).
 */
import type { SipMessage } from '../sip/message.js';
import type { Via } from '../sip/values.js';
import type { Inbound, Target } from '../transport/types.js';
import { MAX_VALUE_BYTES } from '../sip/limits.js';
import { reasonPhrase } from '../sip/status.js';
import { parseCSeq } from '../sip/values.js';
import { Hasher } from './hash.js';
import { receivedEdits } from './via.js';

export const SERVER_HEADER = 'sipctl';

/**
 * The To tag our stateless replies to this request carry: a function of the raw Call-ID,
 * From, CSeq number and top Via branch, so it is the same for a retransmission and for the
 * ACK that acknowledges the reply — and computable even when a value is malformed (a 400).
 */
export function localToTag(msg: SipMessage): string {
  const h = new Hasher();
  for (const name of ['call-id', 'from']) {
    const i = msg.fieldIndex(name);
    h.add(i < 0 ? '' : boundedRaw(msg, i));
  }
  const c = msg.fieldIndex('cseq');
  h.add(c < 0 ? '' : boundedRaw(msg, c).replace(/[^0-9].*$/s, ''));
  let top;
  try {
    top = msg.topVia;
  } catch {
    top = undefined;
  }
  if (top !== undefined) h.add(top.branch ?? top.host);
  return 'sl' + h.digest();
}

/**
 * Field i's raw value, at most MAX_VALUE_BYTES of it: a longer value is refused by every
 * parser anyway, and hashing all of it would make a crafted request cost its size again.
 */
function boundedRaw(msg: SipMessage, i: number): string {
  const s = msg.index.valueStarts[i]!;
  return msg.buffer.latin1Slice(s, Math.min(msg.index.valueEnds[i]!, s + MAX_VALUE_BYTES));
}

export interface LocalReplyOptions {
  /** Extra header lines without CRLF, e.g. "Retry-After: 30". */
  headers?: readonly string[];
  body?: { readonly type: string; readonly content: string };
}

/**
 * Builds the reply. Needs the request's top Via (the caller checks it: without one there is
 * nobody to answer); From, To, Call-ID and CSeq are copied when present and readable, and
 * left out otherwise — RFC 4475 §3.3.1 (insuf): a request missing them still gets its 400.
 */
export function buildLocalReply(
  msg: SipMessage,
  sourceAddress: string,
  sourcePort: number,
  status: number,
  reason: string | undefined,
  opts: LocalReplyOptions = {},
): Buffer {
  const b = msg.buffer;
  const ix = msg.index;
  // Built as latin1 text, except that Via fields we copy untouched go as slices of the
  // request's buffer: a request with hundreds of Vias costs a copy, not a string per Via.
  const parts: Buffer[] = [];
  let out = `SIP/2.0 ${status} ${sanitizeReason(reason ?? reasonPhrase(status))}\r\n`;

  // A run of request lines copied as they are: [runStart, runEnd) of the request's buffer.
  let runStart = -1;
  let runEnd = -1;
  const flushRun = (): void => {
    if (runStart < 0) return;
    if (out.length > 0) parts.push(Buffer.from(out, 'latin1'));
    parts.push(b.subarray(runStart, runEnd));
    out = '';
    runStart = runEnd = -1;
  };

  // Every Via field, in order, the top value with received/rport (§8.2.6.2: "MUST be equal").
  const top = msg.topVia!;
  const edits = receivedEdits(top, sourceAddress, sourcePort).sort((x, y) => x.start - y.start);
  for (let i = msg.fieldIndex('via'); i >= 0; i = msg.fieldIndex('via', i + 1)) {
    const vs = ix.valueStarts[i]!;
    const ve = ix.valueEnds[i]!;
    const lf = b.indexOf(10, vs);
    const folded = lf >= 0 && lf < ve;
    const ls = ix.lineStarts[i]!;
    const le = ix.lineEnds[i]!;
    if (!folded && b[le - 2] === 13 && (edits.length === 0 || edits[0]!.start > ve || edits[edits.length - 1]!.start < vs)) {
      // The line as it came (its name may be the compact `v`), CRLF included; a run of such
      // adjacent lines goes as one slice.
      if (runEnd === ls) {
        runEnd = le;
      } else {
        flushRun();
        runStart = ls;
        runEnd = le;
      }
      continue;
    }
    flushRun();
    let value = '';
    let pos = vs;
    for (const e of edits) {
      if (e.start < vs || e.start > ve) continue;
      value += b.latin1Slice(pos, e.start) + e.text;
      pos = e.end;
    }
    value += b.latin1Slice(pos, ve);
    out += `Via: ${folded ? value.replace(/\r?\n[ \t]+/g, ' ') : value}\r\n`;
  }
  flushRun();
  const from = copyable(msg, 'from', () => msg.from);
  if (from !== undefined) out += `From: ${from}\r\n`;
  const to = copyable(msg, 'to', () => msg.to);
  // §8.2.6.2: add a To tag when the request has none (not for 100 Trying).
  if (to !== undefined) out += !hasTag(to) && status > 100 ? `To: ${to};tag=${localToTag(msg)}\r\n` : `To: ${to}\r\n`;
  const callId = copyable(msg, 'call-id', () => msg.callId);
  if (callId !== undefined) out += `Call-ID: ${callId}\r\n`;
  const cseq = copyable(msg, 'cseq', (raw) => parseCSeq(raw));
  if (cseq !== undefined) out += `CSeq: ${cseq}\r\n`;
  out += `Server: ${SERVER_HEADER}\r\n`;
  for (const h of opts.headers ?? []) out += `${asLatin1(h)}\r\n`;
  if (opts.body !== undefined) {
    const content = Buffer.from(opts.body.content, 'utf8');
    out += `Content-Type: ${opts.body.type}\r\nContent-Length: ${content.length}\r\n\r\n`;
    parts.push(Buffer.from(out, 'latin1'), content);
    return Buffer.concat(parts);
  }
  out += 'Content-Length: 0\r\n\r\n';
  // Header text was carried byte-for-byte as latin1; write it back the same way.
  if (parts.length === 0) return Buffer.from(out, 'latin1');
  parts.push(Buffer.from(out, 'latin1'));
  return Buffer.concat(parts);
}

/** Does a raw To value carry a tag parameter (outside the URI's angle brackets)? */
function hasTag(to: string): boolean {
  const gt = to.lastIndexOf('>');
  return /;\s*tag\s*=/i.test(gt < 0 ? to : to.slice(gt));
}

/**
 * The raw value of a single-valued header, unfolded, to copy into a reply — or undefined
 * when the request has none, more than one, or one that `check` cannot parse.
 */
function copyable(msg: SipMessage, canonical: string, check: (raw: string) => unknown): string | undefined {
  const i = msg.fieldIndex(canonical);
  if (i < 0 || msg.fieldIndex(canonical, i + 1) >= 0) return undefined;
  // Longer than any value the parsers accept: not copied, and not read either.
  if (msg.index.valueEnds[i]! - msg.index.valueStarts[i]! > MAX_VALUE_BYTES) return undefined;
  const raw = msg.rawValue(i).replace(/\r?\n[ \t]+/g, ' ');
  try {
    check(raw);
  } catch {
    return undefined;
  }
  return raw;
}

/** A reason phrase must not break the status line. */
function sanitizeReason(reason: string): string {
  return asLatin1(reason.replace(/[\r\n]+/g, ' '));
}

/** Text we add is UTF-8 on the wire; `out` carries bytes as latin1 characters. */
function asLatin1(text: string): string {
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) >= 128) return Buffer.from(text, 'utf8').toString('latin1');
  }
  return text;
}

/**
 * §18.2.2 for a response we generate: a stream goes back on its connection; a datagram to an
 * admitted source goes where the RFC says (maddr; else the source address, at the source port
 * when the client asked for rport, RFC 3581 §4, else at the sent-by port). A datagram to a
 * source that is not admitted goes to the packet's source address and port only: its Via
 * must not be able to aim our answer at someone else.
 */
export function localReplyTarget(top: Via, inbound: Inbound, admitted: boolean): Target {
  if (inbound.protocol === 'tcp') {
    return { protocol: 'tcp', address: inbound.sourceAddress, port: inbound.sourcePort, connectionId: inbound.connectionId, inboundByIdOnly: true };
  }
  if (!admitted) return { protocol: 'udp', address: inbound.sourceAddress, port: inbound.sourcePort };
  if (top.maddr !== undefined && /^[0-9.:a-fA-F]+$/.test(top.maddr)) return { protocol: 'udp', address: top.maddr, port: top.port ?? 5060 };
  return { protocol: 'udp', address: inbound.sourceAddress, port: top.rport !== undefined ? inbound.sourcePort : (top.port ?? 5060) };
}
