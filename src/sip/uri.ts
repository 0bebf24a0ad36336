/**
 * SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966 for tel).
 *
 *   sip:user:password@host:port;uri-parameters?headers
 *
 * The parser is strict about structure (scheme, host, port, brackets) and lenient about
 * characters inside user, parameters and headers, which it %-unescapes (§19.1.2). It never
 * throws anything but SipParseError.
 */
import { SipParseError } from './errors.js';
import { MAX_PARAMS } from './limits.js';
import { isIPv6 } from 'node:net';

/**
 * 'absolute' is any other scheme (RFC 3261 §25.1 absoluteURI), allowed in From, To and
 * Contact (RFC 4475 §3.3.4): kept as text in `absolute`, never routed to.
 */
export type UriScheme = 'sip' | 'sips' | 'tel' | 'absolute';
export type HostType = 'ipv4' | 'ipv6' | 'name';

export class SipUri {
  scheme: UriScheme;
  /** %-escapes resolved; for tel: the number (global or local). */
  user: string | undefined;
  password: string | undefined;
  /** '' for tel; IPv6 without brackets. */
  host: string;
  hostType: HostType;
  port: number | undefined;
  /** Lower-case names; values %-unescaped; null for a parameter without a value (`;lr`). */
  params: Map<string, string | null>;
  headers: Map<string, string>;
  /** For scheme 'absolute': the URI as written. */
  absolute: string | undefined;

  constructor(init: {
    scheme: UriScheme;
    user?: string;
    password?: string;
    host: string;
    hostType?: HostType;
    port?: number;
    params?: Map<string, string | null>;
    headers?: Map<string, string>;
    absolute?: string;
  }) {
    this.scheme = init.scheme;
    this.user = init.user;
    this.password = init.password;
    this.host = init.host;
    this.hostType = init.hostType ?? classifyHost(init.host);
    this.port = init.port;
    this.params = init.params ?? new Map();
    this.headers = init.headers ?? new Map();
    this.absolute = init.absolute;
  }

  /** The `transport` URI parameter, lower case, or undefined. */
  get transport(): string | undefined {
    const t = this.params.get('transport');
    return t == null ? undefined : t.toLowerCase();
  }

  /** `host` as it appears in a URI or Via: IPv6 references get brackets back. */
  get hostport(): string {
    const h = this.hostType === 'ipv6' ? `[${this.host}]` : this.host;
    return this.port === undefined ? h : `${h}:${this.port}`;
  }

  toString(): string {
    if (this.scheme === 'absolute') return this.absolute ?? '';
    if (this.scheme === 'tel') {
      return `tel:${escape(this.user ?? '', TEL_SAFE)}${paramsToString(this.params)}`;
    }
    let s = `${this.scheme}:`;
    if (this.user !== undefined) {
      s += escape(this.user, USER_SAFE);
      if (this.password !== undefined) s += `:${escape(this.password, PASSWORD_SAFE)}`;
      s += '@';
    }
    s += this.hostport;
    s += paramsToString(this.params);
    if (this.headers.size > 0) {
      let first = true;
      for (const [k, v] of this.headers) {
        s += `${first ? '?' : '&'}${escape(k, HEADER_SAFE)}=${escape(v, HEADER_SAFE)}`;
        first = false;
      }
    }
    return s;
  }

  clone(): SipUri {
    return new SipUri({
      scheme: this.scheme,
      user: this.user,
      password: this.password,
      host: this.host,
      hostType: this.hostType,
      port: this.port,
      params: new Map(this.params),
      headers: new Map(this.headers),
      absolute: this.absolute,
    });
  }
}

function paramsToString(params: Map<string, string | null>): string {
  let s = '';
  for (const [k, v] of params) s += v === null ? `;${escape(k, PARAM_SAFE)}` : `;${escape(k, PARAM_SAFE)}=${escape(v, PARAM_SAFE)}`;
  return s;
}

// Characters that may appear unescaped (RFC 3261 §25.1): unreserved plus the
// component's own unreserved set.
const UNRESERVED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()";
const USER_SAFE = charset(UNRESERVED + '&=+$,;?/');
const PASSWORD_SAFE = charset(UNRESERVED + '&=+$,');
const PARAM_SAFE = charset(UNRESERVED + '[]/:&+$');
const HEADER_SAFE = charset(UNRESERVED + '[]/?:+$');
const TEL_SAFE = charset(UNRESERVED + '+#*&=$,/?:@');

function charset(chars: string): Uint8Array {
  const t = new Uint8Array(128);
  for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)] = 1;
  return t;
}

function escape(s: string, safe: Uint8Array): string {
  let plain = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || safe[c] !== 1) { plain = false; break; }
  }
  if (plain) return s;
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    out += byte < 128 && safe[byte] === 1 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Resolves %HH escapes (RFC 3261 §19.1.2); a malformed escape is a parse error. */
export function unescapeUriPart(s: string, what: string): string {
  if (s.indexOf('%') < 0) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 /* % */) {
      const h = parseInt(s.slice(i + 1, i + 3), 16);
      if (i + 2 >= s.length || !/^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3)) || Number.isNaN(h)) {
        throw new SipParseError(`bad %-escape in URI ${what}`);
      }
      bytes.push(h);
      i += 2;
    } else if (c < 128) {
      bytes.push(c);
    } else {
      for (const b of Buffer.from(s[i]!, 'utf8')) bytes.push(b);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

export function classifyHost(host: string): HostType {
  if (isIPv4Text(host)) return 'ipv4';
  if (host.indexOf(':') >= 0) return 'ipv6';
  return 'name';
}

/** A dotted quad, each part 0–255 without leading zeros beyond one digit (RFC 3261 §25.1 IPv4address). */
export function isIPv4Text(s: string): boolean {
  const n = s.length;
  if (n < 7 || n > 15) return false;
  let parts = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? s.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || value > 255) return false;
      parts++;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && value === 0) return false; // leading zero
      value = value * 10 + (c - 48);
      if (++digits > 3) return false;
    } else {
      return false;
    }
  }
  return parts === 4;
}

/** 1*5DIGIT within 0..65535, or -1. */
function portNumber(s: string, from: number): number {
  const n = s.length - from;
  if (n < 1 || n > 5) return -1;
  let v = 0;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    v = v * 10 + (c - 48);
  }
  return v > 65535 ? -1 : v;
}

// hostname = *( domainlabel "." ) toplabel [ "." ]; labels are alphanum and '-'.
// '_' is accepted too: it is common in SRV-style names and harmless here.
export function isHostnameText(h: string): boolean {
  if (h.length === 0 || h.length > 255) return false;
  for (let i = 0; i < h.length; i++) {
    const c = h.charCodeAt(i);
    const ok =
      (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95;
    if (!ok) return false;
  }
  return h.charCodeAt(0) !== 46 && h.indexOf('..') < 0;
}

/** Parses a host[:port] as it appears in a URI or a Via sent-by. */
export function parseHostPort(text: string, what: string): { host: string; hostType: HostType; port: number | undefined } {
  let host: string;
  let hostType: HostType;
  let portAt = -1;
  if (text.charCodeAt(0) === 91 /* [ */) {
    const close = text.indexOf(']');
    if (close < 0) throw new SipParseError(`unterminated IPv6 reference in ${what}`);
    host = text.slice(1, close);
    if (!isIPv6(host)) throw new SipParseError(`bad IPv6 address [${host}] in ${what}`);
    host = host.toLowerCase();
    hostType = 'ipv6';
    if (close + 1 < text.length) {
      if (text.charCodeAt(close + 1) !== 58 /* : */) throw new SipParseError(`junk after IPv6 reference in ${what}`);
      portAt = close + 2;
    }
  } else {
    const colon = text.indexOf(':');
    host = colon < 0 ? text : text.slice(0, colon);
    if (colon >= 0) portAt = colon + 1;
    if (isIPv4Text(host)) hostType = 'ipv4';
    else if (isHostnameText(host)) hostType = 'name';
    else throw new SipParseError(`bad host '${host}' in ${what}`);
  }
  let port: number | undefined;
  if (portAt >= 0) {
    const p = portNumber(text, portAt);
    if (p < 0) throw new SipParseError(`bad port '${text.slice(portAt)}' in ${what}`);
    port = p;
  }
  return { host, hostType, port };
}

/** `;a=b;c` → Map, names lower-cased, values unescaped. Input starts after the first ';'. */
function parseUriParams(text: string, what: string): Map<string, string | null> {
  const params = new Map<string, string | null>();
  const n = text.length;
  let i = 0;
  while (i < n) {
    let semi = text.indexOf(';', i);
    if (semi < 0) semi = n;
    if (semi > i) {
      if (params.size >= MAX_PARAMS) throw new SipParseError(`more than ${MAX_PARAMS} parameters in ${what}`);
      // tolerate ';;' (an empty part) by skipping it
      let eq = text.indexOf('=', i);
      if (eq < 0 || eq > semi) eq = -1;
      const rawName = text.slice(i, eq < 0 ? semi : eq);
      const name = lowerAscii(rawName.indexOf('%') < 0 ? rawName : unescapeUriPart(rawName, what));
      if (name.length === 0) throw new SipParseError(`empty parameter name in ${what}`);
      let value: string | null = null;
      if (eq >= 0) {
        const rawValue = text.slice(eq + 1, semi);
        value = rawValue.indexOf('%') < 0 ? rawValue : unescapeUriPart(rawValue, what);
      }
      params.set(name, value);
    }
    i = semi + 1;
  }
  return params;
}

/** toLowerCase, without allocating when the text is already lower case (the usual case). */
function lowerAscii(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) return s.toLowerCase();
  }
  return s;
}

/**
 * A URI in a From, To or Contact: SIP, SIPS and tel as parseUri, any other scheme as an
 * opaque absoluteURI (scheme ":" then no white space).
 */
export function parseHeaderUri(text: string): SipUri {
  // The usual case, sip: / sips: / tel:, goes straight to parseUri.
  const c0 = text.charCodeAt(0) | 0x20;
  if ((c0 === 115 || c0 === 116) && /^(?:sips?|tel):/i.test(text)) return parseUri(text);
  const s = text.trim();
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):(\S+)$/.exec(s);
  if (m !== null) {
    const scheme = m[1]!.toLowerCase();
    if (scheme !== 'sip' && scheme !== 'sips' && scheme !== 'tel') {
      return new SipUri({ scheme: 'absolute', host: '', hostType: 'name', absolute: s });
    }
  }
  return parseUri(s);
}

export function parseUri(text: string): SipUri {
  const s = text.trim();
  // RFC 3261 §25.1: a Request-URI is an addr-spec, never in angle brackets (RFC 4475 ltgtruri).
  if (s.charCodeAt(0) === 60) throw new SipParseError(`URI '${clip(s)}' is enclosed in <>`);
  const colon = s.indexOf(':');
  if (colon <= 0) throw new SipParseError(`'${clip(s)}' is not a URI (no scheme)`);
  const schemeText = s.slice(0, colon).toLowerCase();
  if (schemeText === 'tel') return parseTelUri(s.slice(colon + 1));
  if (schemeText !== 'sip' && schemeText !== 'sips') {
    throw new SipParseError(`unsupported URI scheme '${s.slice(0, colon)}' (sip, sips or tel)`);
  }
  const scheme = schemeText as UriScheme;
  let rest = s.slice(colon + 1);
  if (rest.length === 0) throw new SipParseError(`URI '${clip(s)}' has no host`);
  for (let i = 0; i < rest.length; i++) {
    const c = rest.charCodeAt(i);
    if (c <= 32 || c === 127) throw new SipParseError(`URI '${clip(s)}' contains white space or a control character`);
  }

  let user: string | undefined;
  let password: string | undefined;
  // '@' may appear only as the userinfo delimiter: it is not allowed unescaped in
  // parameters or headers (§25.1 paramchar, hvalue).
  const at = rest.indexOf('@');
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const pc = userinfo.indexOf(':');
    const userText = pc < 0 ? userinfo : userinfo.slice(0, pc);
    if (userText.length === 0) throw new SipParseError(`URI '${clip(s)}' has an empty user part`);
    user = unescapeUriPart(userText, 'user');
    if (pc >= 0) password = unescapeUriPart(userinfo.slice(pc + 1), 'password');
  }

  // host ends at ';' (parameters) or '?' (headers); brackets protect IPv6 colons.
  let hostEnd = rest.length;
  const searchFrom = rest.charCodeAt(0) === 91 ? Math.max(rest.indexOf(']'), 0) : 0;
  for (let i = searchFrom; i < rest.length; i++) {
    const c = rest.charCodeAt(i);
    if (c === 59 /* ; */ || c === 63 /* ? */) { hostEnd = i; break; }
  }
  // Error texts name the URI; they are built only when there is an error.
  let hp: ReturnType<typeof parseHostPort>;
  let params: Map<string, string | null>;
  let tail = rest.slice(hostEnd);
  const q = tail.indexOf('?');
  try {
    hp = parseHostPort(hostEnd === rest.length ? rest : rest.slice(0, hostEnd), 'URI');
    params = q === 0 || tail.length === 0 ? new Map() : parseUriParams(q < 0 ? tail.slice(1) : tail.slice(1, q), 'URI');
  } catch (err) {
    if (err instanceof SipParseError) throw new SipParseError(err.reason.replace(/ in URI$/, ` in URI '${clip(s)}'`));
    throw err;
  }
  let headers = new Map<string, string>();
  if (q >= 0) {
    tail = tail.slice(q + 1);
    headers = new Map();
    for (const h of tail.split('&')) {
      if (h.length === 0) continue;
      const eq = h.indexOf('=');
      if (eq <= 0) throw new SipParseError(`bad header '${clip(h)}' in URI '${clip(s)}'`);
      headers.set(unescapeUriPart(h.slice(0, eq), 'header'), unescapeUriPart(h.slice(eq + 1), 'header'));
    }
  }
  return new SipUri({ scheme, user, password, host: lowerAscii(hp.host), hostType: hp.hostType, port: hp.port, params, headers });
}

function parseTelUri(rest: string): SipUri {
  const semi = rest.indexOf(';');
  const number = semi < 0 ? rest : rest.slice(0, semi);
  // RFC 3966 §3: global-number-digits "+" 1*phonedigit, or local-number-digits with hex digits, '*', '#'.
  if (!/^\+?[0-9A-Fa-f*#().\-]+$/.test(number) || !/[0-9A-Fa-f*#]/.test(number)) {
    throw new SipParseError(`bad tel URI number '${clip(number)}'`);
  }
  const params = semi < 0 ? new Map<string, string | null>() : parseUriParams(rest.slice(semi + 1), 'tel URI');
  return new SipUri({ scheme: 'tel', user: unescapeUriPart(number, 'tel number'), host: '', hostType: 'name', params });
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
