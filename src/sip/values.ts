/**
 * Parsers for the header values the proxy needs: Via (RFC 3261 §20.42), name-addr /
 * addr-spec with parameters (From, To, Contact, Route, Record-Route: §20.10, §20.20, §20.39),
 * CSeq (§20.16), and splitting of comma-separated lists (§7.3.1) that respects quoted
 * strings and <...>.
 *
 * Every parser works on the header value as raw latin1 text whose character offsets equal
 * byte offsets in the message buffer (folded lines are left in place and treated as white
 * space), so that a parsed value can also say *where* it is — the edits that remove a Via
 * value or fill in rport need byte ranges, not just values.
 */
import { SipParseError } from './errors.js';
import { MAX_LIST_VALUES, MAX_PARAMS, MAX_VALUE_BYTES } from './limits.js';
import { isHostnameText, isIPv4Text, parseHeaderUri, parseHostPort, unescapeUriPart, type HostType, type SipUri } from './uri.js';

export type Params = Map<string, string | null>;

export interface Via {
  protocolName: string;
  protocolVersion: string;
  /** Upper case: 'UDP', 'TCP', 'TLS', 'SCTP', 'WS', 'WSS'. */
  transport: string;
  host: string;
  hostType: HostType;
  port: number | undefined;
  /** Lower-case names; null for a parameter without a value (`;rport`). */
  params: Params;
  branch: string | undefined;
  received: string | undefined;
  /** undefined: absent; null: present without a value (RFC 3581 request to fill it in). */
  rport: number | null | undefined;
  maddr: string | undefined;
  ttl: number | undefined;
  /** Byte range of this value in the message buffer (start inclusive, end exclusive). */
  start: number;
  end: number;
  /** Byte range of the `rport` parameter (name and any value), when present. */
  rportStart: number;
  rportEnd: number;
  /** Byte range of the `received` parameter (name and value), when present (-1 otherwise). */
  receivedStart: number;
  receivedEnd: number;
}

export interface NameAddr {
  /** Unquoted display name with escapes resolved, or undefined. */
  displayName: string | undefined;
  /** The URI, parsed on first use (a bad URI throws SipParseError then). */
  readonly uri: SipUri;
  /** Header parameters after the URI (tag, expires, q, ...), lower-case names. */
  params: Params;
  tag: string | undefined;
  /** The URI as written, inside <...> when brackets were used. */
  uriText: string;
  start: number;
  end: number;
}

/**
 * A name-addr whose URI is parsed the first time someone asks for it: forwarding needs the
 * tag and the URI text (for hashing) far more often than the URI's parts.
 */
class ParsedNameAddr implements NameAddr {
  private _uri: SipUri | undefined = undefined;

  constructor(
    public displayName: string | undefined,
    readonly uriText: string,
    readonly params: Params,
    readonly tag: string | undefined,
    // Not readonly: SipMessage maps them to stable offsets when the value was edited.
    public start: number,
    public end: number,
    private readonly what: string,
  ) {}

  get uri(): SipUri {
    if (this._uri === undefined) {
      try {
        this._uri = parseHeaderUri(utf8(this.uriText));
      } catch (err) {
        if (err instanceof SipParseError) throw new SipParseError(`${this.what}: ${err.reason}`);
        throw err;
      }
    }
    return this._uri;
  }
}

const isWs = (c: number): boolean => c === 32 || c === 9 || c === 13 || c === 10;

/**
 * Splits a comma-separated header value into [start, end) ranges (relative to `raw`),
 * trimmed, skipping empty elements. Commas inside "quoted strings" and <...> do not split.
 */
export function splitList(raw: string, max = MAX_LIST_VALUES): Array<[number, number]> {
  // Without quotes or angle brackets every comma separates: find them with the native search.
  if (raw.indexOf('"') < 0 && raw.indexOf('<') < 0) return splitAtCommas(raw, max);
  const out: Array<[number, number]> = [];
  const push = (from: number, to: number): void => {
    while (from < to && isWs(raw.charCodeAt(from))) from++;
    while (to > from && isWs(raw.charCodeAt(to - 1))) to--;
    if (to > from) {
      if (out.length >= max) throw new SipParseError(`more than ${MAX_LIST_VALUES} values in one header`);
      out.push([from, to]);
    }
  };
  let inQuote = false;
  let inAngle = false;
  let start = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (inQuote) {
      if (c === 92 /* \ */) i++;
      else if (c === 34) inQuote = false;
      continue;
    }
    if (c === 34) inQuote = true;
    else if (c === 60 /* < */) inAngle = true;
    else if (c === 62 /* > */) inAngle = false;
    else if (c === 44 /* , */ && !inAngle) {
      push(start, i);
      start = i + 1;
    }
  }
  if (inQuote) throw new SipParseError('unterminated quoted string');
  push(start, raw.length);
  return out;
}

function splitAtCommas(raw: string, max: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let start = 0;
  for (;;) {
    const comma = raw.indexOf(',', start);
    const end = comma < 0 ? raw.length : comma;
    const t = trimmed(raw, start, end);
    if (t !== undefined) {
      if (out.length >= max) throw new SipParseError(`more than ${MAX_LIST_VALUES} values in one header`);
      out.push(t);
    }
    if (comma < 0) return out;
    start = comma + 1;
  }
}

/**
 * The first element of a comma-separated header value, as splitList would find it, without
 * looking past it (the top Via of a field that holds many): [start, end) or undefined.
 */
export function firstListElement(raw: string): [number, number] | undefined {
  let inQuote = false;
  let inAngle = false;
  let start = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (inQuote) {
      if (c === 92 /* \ */) i++;
      else if (c === 34) inQuote = false;
      continue;
    }
    if (c === 34) inQuote = true;
    else if (c === 60 /* < */) inAngle = true;
    else if (c === 62 /* > */) inAngle = false;
    else if (c === 44 /* , */ && !inAngle) {
      const first = trimmed(raw, start, i);
      if (first !== undefined) return first;
      start = i + 1; // an empty element (",,"): skipped, as splitList does
    }
  }
  if (inQuote) throw new SipParseError('unterminated quoted string');
  return trimmed(raw, start, raw.length);
}

function trimmed(raw: string, from: number, to: number): [number, number] | undefined {
  while (from < to && isWs(raw.charCodeAt(from))) from++;
  while (to > from && isWs(raw.charCodeAt(to - 1))) to--;
  return to > from ? [from, to] : undefined;
}

/** Replaces folding (CRLF + white space) and runs of white space by one space. */
export function unfold(raw: string): string {
  let needs = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 13 || c === 10) { needs = true; break; }
  }
  return needs ? raw.replace(/[ \t]*\r?\n[ \t]+/g, ' ').trim() : raw;
}

/** A tiny cursor over header-value text. */
class Scanner {
  i: number;
  constructor(readonly s: string, start: number, readonly end: number) {
    this.i = start;
  }
  ws(): void {
    while (this.i < this.end && isWs(this.s.charCodeAt(this.i))) this.i++;
  }
  peek(): number {
    return this.i < this.end ? this.s.charCodeAt(this.i) : -1;
  }
  eat(c: number): boolean {
    this.ws();
    if (this.peek() === c) {
      this.i++;
      this.ws();
      return true;
    }
    return false;
  }
  /** The parameter nextParam() just read: its lower-case name, where the name starts, its
   * value as written (quotes included) or null when it has none, and whether it was quoted. */
  pName = '';
  pNameStart = 0;
  pValue: string | null = null;
  pQuoted = false;

  /**
   * Reads the next `SEMI name [EQUAL value]` (§25.1 generic-param, SEMI and EQUAL allowing
   * white space), filling the p* fields; false at the end. One loop for Via parameters and
   * header parameters alike, which differ only in what they make of the value.
   */
  nextParam(what: string): boolean {
    this.ws();
    if (this.i >= this.end) return false;
    if (this.peek() !== 59) throw new SipParseError(`${what}: unexpected '${this.s[this.i]}'`);
    this.i++;
    this.ws();
    this.pNameStart = this.i;
    this.pName = this.until(61, 59).toLowerCase();
    if (this.pName.length === 0) throw new SipParseError(`${what}: empty parameter name`);
    this.pValue = null;
    this.pQuoted = false;
    const afterName = this.i;
    this.ws();
    if (this.peek() === 61) {
      this.i++;
      this.ws();
      if (this.peek() === 34) {
        const close = findQuoteEnd(this.s, this.i, this.end);
        this.pValue = this.s.slice(this.i, close + 1);
        this.pQuoted = true;
        this.i = close + 1;
      } else {
        this.pValue = this.until(59);
      }
    } else {
      this.i = afterName;
    }
    return true;
  }

  /** Reads up to (not including) a stop character (or white space). */
  until(a: number, b = -1): string {
    const from = this.i;
    const s = this.s;
    const end = this.end;
    let i = from;
    while (i < end) {
      const c = s.charCodeAt(i);
      if (c === a || c === b || c === 32 || c === 9 || c === 13 || c === 10) break;
      i++;
    }
    this.i = i;
    return s.slice(from, i);
  }
}

/** What sentByFast found (module scratch space: no allocation on the common path). */
const fast = { transport: '', host: '', hostType: 'ipv4' as HostType, port: undefined as number | undefined };

/**
 * The common Via head, as every SIP stack writes it: `SIP/2.0/UDP 10.0.0.1:5060` (any
 * case for SIP, an alphabetic transport, one space, an IPv4 address or host name, an optional
 * port) followed by `;` or the end. Returns the index after it, or -1 for anything else
 * (white space inside, IPv6, odd characters), which the general parser then takes.
 */
function sentByFast(raw: string, i: number, end: number): number {
  if (end - i < 10) return -1;
  if ((raw.charCodeAt(i) | 0x20) !== 115 || (raw.charCodeAt(i + 1) | 0x20) !== 105 || (raw.charCodeAt(i + 2) | 0x20) !== 112) return -1;
  if (raw.charCodeAt(i + 3) !== 47 || raw.charCodeAt(i + 4) !== 50 || raw.charCodeAt(i + 5) !== 46 || raw.charCodeAt(i + 6) !== 48 || raw.charCodeAt(i + 7) !== 47) return -1;
  i += 8;
  const t = i;
  let upper = true;
  while (i < end) {
    const c = raw.charCodeAt(i);
    if (c >= 65 && c <= 90) { i++; continue; }
    if (c >= 97 && c <= 122) { upper = false; i++; continue; }
    break;
  }
  if (i === t || i >= end || raw.charCodeAt(i) !== 32) return -1;
  const transportText = raw.slice(t, i);
  i++;
  const h = i;
  let colon = -1;
  while (i < end) {
    const c = raw.charCodeAt(i);
    if (c === 59) break;
    if (c === 58) {
      if (colon >= 0) return -1;
      colon = i;
    } else if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 46 || c === 45 || c === 95)) {
      return -1;
    }
    i++;
  }
  const hostEnd = colon >= 0 ? colon : i;
  if (hostEnd === h) return -1;
  const host = raw.slice(h, hostEnd);
  let port: number | undefined;
  if (colon >= 0) {
    if (i - colon - 1 < 1 || i - colon - 1 > 5) return -1;
    let v = 0;
    for (let k = colon + 1; k < i; k++) {
      const c = raw.charCodeAt(k);
      if (c < 48 || c > 57) return -1;
      v = v * 10 + (c - 48);
    }
    if (v > 65535) return -1;
    port = v;
  }
  if (isIPv4Text(host)) fast.hostType = 'ipv4';
  else if (isHostnameText(host)) fast.hostType = 'name';
  else return -1;
  fast.transport = upper ? transportText : transportText.toUpperCase();
  fast.host = fast.hostType === 'name' ? host.toLowerCase() : host;
  fast.port = port;
  return i;
}

/**
 * Parses one Via value occupying raw[start, end); `base` is raw's offset in the buffer.
 *   via-parm = sent-protocol LWS sent-by *( SEMI via-params )
 */
export function parseVia(raw: string, start: number, end: number, base: number): Via {
  if (end - start > MAX_VALUE_BYTES) throw new SipParseError(`Via: a value longer than ${MAX_VALUE_BYTES} bytes`);
  const sc = new Scanner(raw, start, end);
  sc.ws();
  let protocolName: string;
  let protocolVersion: string;
  let transport: string;
  let hp: { host: string; hostType: HostType; port: number | undefined };
  const after = sentByFast(raw, sc.i, end);
  if (after >= 0) {
    protocolName = 'SIP';
    protocolVersion = '2.0';
    transport = fast.transport;
    hp = { host: fast.host, hostType: fast.hostType, port: fast.port };
    sc.i = after;
  } else {
    protocolName = sc.until(47);
    if (!sc.eat(47)) throw new SipParseError('Via: expected SIP/2.0/TRANSPORT');
    protocolVersion = sc.until(47);
    if (!sc.eat(47)) throw new SipParseError('Via: expected SIP/2.0/TRANSPORT');
    transport = sc.until(59).toUpperCase();
    if (protocolName.toUpperCase() !== 'SIP' || protocolVersion.length === 0 || transport.length === 0) {
      throw new SipParseError('Via: bad sent-protocol');
    }
    sc.ws();
    // sent-by: host [ COLON port ], white space allowed around the colon (§25.1 COLON = SWS ":" SWS)
    let hostText: string;
    if (sc.peek() === 91) {
      const close = raw.indexOf(']', sc.i);
      if (close < 0 || close >= end) throw new SipParseError('Via: unterminated IPv6 reference');
      hostText = raw.slice(sc.i, close + 1);
      sc.i = close + 1;
    } else {
      hostText = sc.until(58, 59);
    }
    if (hostText.length === 0) throw new SipParseError('Via: missing sent-by host');
    let portText = '';
    const save = sc.i;
    sc.ws();
    if (sc.peek() === 58) {
      sc.i++;
      sc.ws();
      portText = sc.until(59);
      if (portText.length === 0) throw new SipParseError('Via: empty port');
    } else {
      sc.i = save;
    }
    hp = parseHostPort(portText ? `${hostText}:${portText}` : hostText, 'Via sent-by');
  }
  const params: Params = new Map();
  let rportStart = -1;
  let rportEnd = -1;
  let receivedStart = -1;
  let receivedEnd = -1;
  while (sc.nextParam('Via')) {
    if (params.size >= MAX_PARAMS) throw new SipParseError(`Via: more than ${MAX_PARAMS} parameters`);
    // A quoted via-extension value is kept as written, quotes and all.
    if (sc.pName === 'rport') {
      rportStart = base + sc.pNameStart;
      rportEnd = base + sc.i;
    } else if (sc.pName === 'received') {
      receivedStart = base + sc.pNameStart;
      receivedEnd = base + sc.i;
    }
    params.set(sc.pName, sc.pValue);
  }
  const rportText = params.get('rport');
  let rport: number | null | undefined;
  if (rportText === undefined) rport = undefined;
  else if (rportText === null || rportText === '') rport = null;
  else {
    if (!/^[0-9]{1,5}$/.test(rportText) || Number(rportText) > 65535) throw new SipParseError('Via: bad rport');
    rport = Number(rportText);
  }
  const ttlText = params.get('ttl');
  let ttl: number | undefined;
  if (ttlText != null) {
    if (!/^[0-9]{1,3}$/.test(ttlText) || Number(ttlText) > 255) throw new SipParseError('Via: bad ttl');
    ttl = Number(ttlText);
  }
  const branch = params.get('branch');
  if (branch === null || branch === '') throw new SipParseError('Via: empty branch');
  const received = params.get('received');
  if (received === null || received === '') throw new SipParseError('Via: empty received');
  const maddr = params.get('maddr');
  return {
    protocolName,
    protocolVersion,
    transport,
    host: hp.host.toLowerCase(),
    hostType: hp.hostType,
    port: hp.port,
    params,
    branch,
    received: received === undefined ? undefined : stripBrackets(received),
    rport,
    maddr: maddr ?? undefined,
    ttl,
    start: base + start,
    end: base + end,
    rportStart,
    rportEnd,
    receivedStart,
    receivedEnd,
  };
}

function stripBrackets(s: string): string {
  return s.charCodeAt(0) === 91 && s.charCodeAt(s.length - 1) === 93 ? s.slice(1, -1) : s;
}

function findQuoteEnd(raw: string, open: number, end: number): number {
  for (let i = open + 1; i < end; i++) {
    const c = raw.charCodeAt(i);
    if (c === 92) i++;
    else if (c === 34) return i;
  }
  throw new SipParseError('unterminated quoted string');
}

/** Unquotes a quoted-string's content: `\x` → `x` (§25.1 quoted-pair). */
function unquote(q: string): string {
  return q.indexOf('\\') < 0 ? q : q.replace(/\\(.)/gs, '$1');
}

/**
 * Parses `[display-name] <uri> *(;param)` or `addr-spec *(;param)` in raw[start, end).
 * In addr-spec form everything after the first ';' is a header parameter (§20.10: a URI
 * with ';', ',' or '?' must be in angle brackets).
 */
export function parseNameAddr(raw: string, start: number, end: number, base: number, what: string): NameAddr {
  if (end - start > MAX_VALUE_BYTES) throw new SipParseError(`${what}: a value longer than ${MAX_VALUE_BYTES} bytes`);
  const sc = new Scanner(raw, start, end);
  sc.ws();
  let displayName: string | undefined;
  let uriText: string;
  if (sc.peek() === 34) {
    const close = findQuoteEnd(raw, sc.i, end);
    displayName = utf8(unquote(raw.slice(sc.i + 1, close)));
    sc.i = close + 1;
    sc.ws();
    if (sc.peek() !== 60) throw new SipParseError(`${what}: expected <URI> after the display name`);
  }
  let lt = -1;
  if (sc.peek() === 60) lt = sc.i;
  else if (displayName === undefined) {
    // A token display name before '<', or an addr-spec.
    for (let i = sc.i; i < end; i++) {
      const c = raw.charCodeAt(i);
      if (c === 60) { lt = i; break; }
      if (c === 59 || c === 62) break;
    }
    if (lt >= 0) {
      const dn = raw.slice(sc.i, lt).replace(/[\r\n]+/g, ' ').trim();
      if (dn.length > 0) {
        // display-name = *(token LWS) / quoted-string (§25.1): unquoted, only tokens.
        if (!/^[A-Za-z0-9\-.!%*_+`'~]+(?:[ \t]+[A-Za-z0-9\-.!%*_+`'~]+)*$/.test(dn)) {
          throw new SipParseError(`${what}: display name with characters that need quotes`);
        }
        displayName = utf8(dn.replace(/\s+/g, ' '));
      }
    }
  }
  let paramsFrom: number;
  if (lt >= 0) {
    const gt = raw.indexOf('>', lt);
    if (gt < 0 || gt >= end) throw new SipParseError(`${what}: missing '>'`);
    uriText = raw.slice(lt + 1, gt);
    paramsFrom = gt + 1;
  } else {
    let semi = end;
    for (let i = sc.i; i < end; i++) {
      const c = raw.charCodeAt(i);
      if (c === 59) { semi = i; break; }
    }
    uriText = raw.slice(sc.i, semi).trim();
    paramsFrom = semi;
  }
  if (uriText.length === 0) throw new SipParseError(`${what}: empty URI`);
  const params = parseHeaderParams(raw, paramsFrom, end, what);
  const tag = params.get('tag');
  return new ParsedNameAddr(displayName, uriText, params, tag ?? undefined, base + start, base + end, what);
}

/** `*( SEMI generic-param )` in raw[from, end). */
export function parseHeaderParams(raw: string, from: number, end: number, what: string): Params {
  const params: Params = new Map();
  const sc = new Scanner(raw, from, end);
  while (sc.nextParam(what)) {
    if (params.size >= MAX_PARAMS) throw new SipParseError(`${what}: more than ${MAX_PARAMS} parameters`);
    let value = sc.pValue;
    if (value !== null) {
      if (sc.pQuoted) value = unquote(value.slice(1, -1));
      else if (value.length === 0) throw new SipParseError(`${what}: empty value for parameter ${sc.pName}`);
      value = utf8(value);
    }
    params.set(sc.pName, value);
  }
  return params;
}

/** CSeq: 1*DIGIT LWS Method (§20.16); the number is below 2**31. */
export function parseCSeq(value: string): { seq: number; method: string } {
  if (value.length > MAX_VALUE_BYTES) throw new SipParseError(`CSeq: longer than ${MAX_VALUE_BYTES} bytes`);
  const v = value.trim();
  let i = 0;
  let seq = 0;
  while (i < v.length) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) break;
    seq = seq * 10 + (c - 48);
    i++;
  }
  const digits = i;
  while (i < v.length && isWs(v.charCodeAt(i))) i++;
  const method = v.slice(i);
  if (digits === 0 || i === digits || method.length === 0) throw new SipParseError('CSeq: expected NUMBER METHOD');
  if (digits > 10) throw new SipParseError('CSeq: number out of range (must be below 2**31)');
  for (let k = 0; k < method.length; k++) {
    if (isWs(method.charCodeAt(k))) throw new SipParseError('CSeq: expected NUMBER METHOD');
  }
  if (seq >= 2 ** 31) throw new SipParseError('CSeq: number out of range (must be below 2**31)');
  return { seq, method };
}

/** Header text is carried as latin1 (byte = char); decode UTF-8 where people read it. */
export function utf8(latin1: string): string {
  for (let i = 0; i < latin1.length; i++) {
    if (latin1.charCodeAt(i) >= 128) return Buffer.from(latin1, 'latin1').toString('utf8');
  }
  return latin1;
}

export { unescapeUriPart };
