/**
 * The one pass over a message's bytes (RFC 3261 §7): the start line, the boundaries of every
 * header field, and the body by Content-Length. Nothing else is decoded here; values are
 * parsed on first use by SipMessage's accessors.
 */
import { SipParseError } from './errors.js';
import { canonicalNameFromBytes, isTokenBytes, TOKEN_CHAR } from './header-names.js';
import { SipMessage, type HeaderIndex } from './message.js';

/** More header fields than this is not a SIP message but an attack on the parser. */
export const MAX_HEADER_FIELDS = 1000;

const CR = 13;
const LF = 10;
const SP = 32;
const HT = 9;
const COLON = 58;

export function parseMessage(bytes: Buffer): SipMessage {
  const len = bytes.length;
  // RFC 3261 §7.5: CRLFs before the start line may be ignored.
  let pos = 0;
  while (pos < len && (bytes[pos] === CR || bytes[pos] === LF)) pos++;
  if (pos >= len) throw new SipParseError('empty message');

  // ---- start line
  const startLf = bytes.indexOf(LF, pos);
  if (startLf < 0) throw new SipParseError('start line is not terminated');
  const startEnd = startLf > pos && bytes[startLf - 1] === CR ? startLf - 1 : startLf;
  const start = parseStartLine(bytes, pos, startEnd);

  // ---- header fields
  const names: string[] = [];
  const lineStarts: number[] = [];
  const valueStarts: number[] = [];
  const valueEnds: number[] = [];
  const lineEnds: number[] = [];
  let line = startLf + 1;
  let headersEnd = -1;
  let bodyStart = -1;
  // One pass of plain byte reads: a native indexOf per line and per colon costs more than
  // it saves on lines this short.
  while (line < len) {
    let i = line;
    const first = bytes[i]!;
    if (first === LF || (first === CR && bytes[i + 1] === LF)) {
      headersEnd = line;
      bodyStart = first === LF ? i + 1 : i + 2;
      break;
    }
    if (first === SP || first === HT) {
      // Folded continuation line (§7.3.1): it belongs to the previous field's value.
      const last = names.length - 1;
      if (last < 0) throw new SipParseError('header section starts with a continuation line');
      while (i < len && bytes[i] !== LF) i++;
      if (i >= len) throw new SipParseError('header section is not terminated by an empty line');
      const lf = i;
      let e = lf > line && bytes[lf - 1] === CR ? lf - 1 : lf;
      while (e > line && (bytes[e - 1] === SP || bytes[e - 1] === HT)) e--;
      let s = line;
      while (s < e && (bytes[s] === SP || bytes[s] === HT)) s++;
      // only extend the value when the continuation carries something
      if (s < e) {
        if (valueStarts[last] === valueEnds[last]) valueStarts[last] = s;
        valueEnds[last] = e;
      }
      lineEnds[last] = lf + 1;
      line = lf + 1;
      continue;
    }
    // field-name = token; HCOLON = *( SP / HTAB ) ":" SWS
    while (i < len) {
      const c = bytes[i]!;
      if (c >= 128 || TOKEN_CHAR[c] !== 1) break;
      i++;
    }
    const nameEnd = i;
    while (i < len && (bytes[i] === SP || bytes[i] === HT)) i++;
    if (nameEnd === line || bytes[i] !== COLON) throw badHeaderLine(bytes, line, nameEnd);
    i++;
    while (i < len && (bytes[i] === SP || bytes[i] === HT)) i++;
    const vs = i;
    while (i < len && bytes[i] !== LF) i++;
    if (i >= len) throw new SipParseError('header section is not terminated by an empty line');
    const lf = i;
    const contentEnd = lf > vs && bytes[lf - 1] === CR ? lf - 1 : lf;
    let ve = contentEnd;
    while (ve > vs && (bytes[ve - 1] === SP || bytes[ve - 1] === HT)) ve--;
    if (names.length >= MAX_HEADER_FIELDS) throw new SipParseError(`more than ${MAX_HEADER_FIELDS} header fields`);
    names.push(canonicalNameFromBytes(bytes, line, nameEnd));
    lineStarts.push(line);
    valueStarts.push(vs);
    valueEnds.push(ve);
    lineEnds.push(lf + 1);
    line = lf + 1;
  }
  if (headersEnd < 0) throw new SipParseError('header section is not terminated by an empty line');

  // ---- body (§18.3, §20.14)
  let contentLength: number | undefined;
  for (let i = 0; i < names.length; i++) {
    if (names[i] !== 'content-length') continue;
    const v = parseContentLength(bytes, valueStarts[i]!, valueEnds[i]!);
    if (contentLength !== undefined && v !== contentLength) throw new SipParseError('conflicting Content-Length headers');
    contentLength = v;
  }
  let bodyEnd: number;
  if (contentLength === undefined) {
    bodyEnd = len; // datagram: the rest of the packet is the body
  } else {
    bodyEnd = bodyStart + contentLength;
    if (bodyEnd > len) {
      throw new SipParseError(`Content-Length ${contentLength} is larger than the ${len - bodyStart} body bytes received`);
    }
  }

  const index: HeaderIndex = {
    names,
    lineStarts,
    valueStarts,
    valueEnds,
    lineEnds,
    headersStart: startLf + 1,
    headersEnd,
    bodyStart,
    bodyEnd,
    contentLength,
  };
  return new SipMessage(bytes, start, index);
}

export interface StartLine {
  isRequest: boolean;
  method: string;
  requestUriText: string;
  status: number;
  reason: string;
  version: string;
}

/**
 *   Request-Line = Method SP Request-URI SP SIP-Version   (§25.1: exactly one SP each)
 *   Status-Line  = SIP-Version SP Status-Code SP Reason-Phrase
 */
function parseStartLine(b: Buffer, s: number, e: number): StartLine {
  if (e - s >= 4 && b[s] === 83 && b[s + 1] === 73 && b[s + 2] === 80 && b[s + 3] === 47 /* 'SIP/' */) {
    let sp1 = s;
    while (sp1 < e && b[sp1] !== SP) sp1++;
    if (sp1 >= e) throw new SipParseError('status line without a status code');
    const version = versionText(b, s, sp1);
    let codeEnd = sp1 + 1;
    while (codeEnd < e && b[codeEnd]! >= 48 && b[codeEnd]! <= 57) codeEnd++;
    if (codeEnd - sp1 - 1 !== 3 || (codeEnd < e && b[codeEnd] !== SP)) throw new SipParseError('status code is not three digits');
    const status = (b[sp1 + 1]! - 48) * 100 + (b[sp1 + 2]! - 48) * 10 + (b[sp1 + 3]! - 48);
    if (status < 100 || status > 699) throw new SipParseError(`status code ${status} out of range`);
    const reason = codeEnd < e ? b.toString('utf8', codeEnd + 1, e) : '';
    return { isRequest: false, method: '', requestUriText: '', status, reason, version };
  }
  // Request-Line: exactly two single spaces (§25.1); a third one is white space inside the
  // Request-URI or after the version.
  let sp1 = -1;
  let sp2 = -1;
  for (let i = s; i < e; i++) {
    if (b[i] !== SP) continue;
    if (sp1 < 0) sp1 = i;
    else if (sp2 < 0) sp2 = i;
    else throw new SipParseError('request line has white space inside the Request-URI or after the version');
  }
  if (sp2 < 0) throw new SipParseError('request line is not METHOD URI SIP/2.0');
  if (!isTokenBytes(b, s, sp1)) throw new SipParseError('method is not a token');
  const method = methodText(b, s, sp1);
  if (sp2 === sp1 + 1) throw new SipParseError('empty Request-URI');
  for (let i = sp1 + 1; i < sp2; i++) {
    const c = b[i]!;
    if (c < 33 || c === 127) throw new SipParseError('Request-URI contains a control character or white space');
  }
  const requestUriText = b.latin1Slice(sp1 + 1, sp2);
  const version = versionText(b, sp2 + 1, e);
  return { isRequest: true, method, requestUriText, status: 0, reason: '', version };
}

/** The methods of RFC 3261 and its common extensions, as shared strings (no allocation). */
const METHODS = ['INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'REGISTER', 'PRACK', 'SUBSCRIBE', 'NOTIFY', 'PUBLISH', 'INFO', 'REFER', 'MESSAGE', 'UPDATE'].map(
  (m) => ({ text: m, bytes: Buffer.from(m, 'latin1') }),
);

function methodText(b: Buffer, s: number, e: number): string {
  for (const m of METHODS) {
    if (m.bytes.length !== e - s) continue;
    let i = 0;
    while (i < m.bytes.length && b[s + i] === m.bytes[i]) i++;
    if (i === m.bytes.length) return m.text;
  }
  return b.latin1Slice(s, e);
}

/** SIP-Version: the usual "SIP/2.0" without allocating, anything else checked by checkVersion. */
function versionText(b: Buffer, s: number, e: number): string {
  if (e - s === 7 && b[s] === 83 && b[s + 1] === 73 && b[s + 2] === 80 && b[s + 3] === 47 && b[s + 4] === 50 && b[s + 5] === 46 && b[s + 6] === 48) {
    return 'SIP/2.0';
  }
  const v = b.latin1Slice(s, e);
  checkVersion(v);
  return v;
}

/** SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT (case-insensitive "SIP"). */
function checkVersion(v: string): void {
  if (!/^SIP\/[0-9]+\.[0-9]+$/i.test(v)) throw new SipParseError(`bad SIP version '${clip(v)}'`);
}

function parseContentLength(b: Buffer, s: number, e: number): number {
  if (e <= s || e - s > 9) throw new SipParseError('Content-Length is not a number');
  let n = 0;
  for (let i = s; i < e; i++) {
    const c = b[i]!;
    if (c < 48 || c > 57) throw new SipParseError('Content-Length is not a number');
    n = n * 10 + (c - 48);
  }
  return n;
}

/** The reason a header line is not `name: value` (off the hot path). */
function badHeaderLine(bytes: Buffer, line: number, nameEnd: number): SipParseError {
  let lf = bytes.indexOf(LF, line);
  if (lf < 0) lf = bytes.length;
  const end = lf > line && bytes[lf - 1] === CR ? lf - 1 : lf;
  const colon = bytes.indexOf(COLON, line);
  if (colon < 0 || colon > end) return new SipParseError(`header line without a colon: '${clip(bytes.latin1Slice(line, end))}'`);
  let e = colon;
  while (e > line && (bytes[e - 1] === SP || bytes[e - 1] === HT)) e--;
  void nameEnd;
  return new SipParseError(`bad header name '${clip(bytes.latin1Slice(line, e))}'`);
}

function clip(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
