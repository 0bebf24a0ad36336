/**
 * A SIP message as a lazy view over one Buffer, and the edits a proxy makes to it.
 *
 * parseMessage() found the start line and every header field's byte range; the accessors
 * here decode a value the first time it is asked for and cache it.
 *
 * Edits (what Kamailio calls lumps) never touch the buffer. Once something is edited, the
 * header section as it will be sent is a list of entries: an untouched field is its index in
 * the buffer, an edited or added one a `Field` whose value is a list of pieces — runs of
 * original bytes and runs of written text. serialize() copies untouched fields and original
 * pieces as they are, so bytes nobody touched are never re-encoded, and a message nobody
 * edited is its own buffer (or a subarray of it), not a copy.
 *
 * The rules the edits follow:
 * - Each edit applies to the message as the edits before it left it: the last write to a
 *   header field or to the Request-URI wins, and a route's edits and the core's compose (the
 *   Max-Forwards a route set is the one the core decrements, §16.6 step 3).
 * - Every value accessor — header, headerFields, headerValues, topVia, vias, from, to,
 *   callId, cseq, maxForwards, routes, recordRoutes, contacts, uri, currentUriText, and
 *   fieldsAsSent — describes the message serialize() will produce: parsing those bytes again
 *   gives the same values. What stays as received is what is addressed by position in the
 *   buffer: `buffer`, `index`, headerNames / headerCount, fieldIndex / rawValue / fieldValue,
 *   valueLocations, viaAt, nameAddrAt (and the value indexes removeValue and removeField
 *   take), `requestUriText`, `contentLength` and `body` — so that positions a caller counted
 *   once stay true whatever is edited after. serialize() adds a Content-Length field when
 *   the message has none (mandatory on streams, RFC 3261 §18.3): the one field the accessors
 *   do not show. `received` is a read-only view of the whole message as it arrived (what a
 *   stateless reply copies, §8.2.6.2).
 * - Offsets: a value parsed from a field (Via, NameAddr, ValueLocation) carries `start`/`end`
 *   offsets, which replaceRange, insertAt and removeValue take. Original bytes keep their
 *   buffer offset for as long as they are in the message, so offsets read before other edits
 *   stay good; written text gets offsets of its own (from 2**40 up). Offsets whose bytes
 *   have been replaced or removed are refused with an Error: an edit inside a value loses to
 *   a later replacement of the whole field, and to edit the new value, read it again.
 * - Content-Length is the framing, which serialize() owns: editing it throws.
 * - A written name must be a token and a written value must not contain CR or LF (no header
 *   injection); values are written as UTF-8, without surrounding white space.
 */
import { SipParseError } from './errors.js';
import { MAX_LIST_VALUES, MAX_VALUE_BYTES } from './limits.js';
import { canonicalName, displayName, LIST_HEADERS, writableName } from './header-names.js';
import type { StartLine } from './parse.js';
import { parseUri, type SipUri } from './uri.js';
import {
  parseCSeq,
  parseNameAddr,
  parseVia,
  firstListElement,
  splitList,
  unfold,
  utf8,
  type NameAddr,
  type Via,
} from './values.js';

export interface HeaderIndex {
  /** Canonical (full, lower-case) field names, in order. */
  names: string[];
  /** Byte offsets per field: line start, value start/end (trimmed), line end (after the line terminator, continuation lines included). */
  lineStarts: number[];
  valueStarts: number[];
  valueEnds: number[];
  lineEnds: number[];
  /** Offset of the first header line. */
  headersStart: number;
  /** Offset of the empty line that ends the headers. */
  headersEnd: number;
  bodyStart: number;
  bodyEnd: number;
  contentLength: number | undefined;
}

/** A value of a list header and where it is: its field (as fieldIndex counts) and its offsets. */
export interface ValueLocation {
  field: number;
  start: number;
  end: number;
}

const CRLF = '\r\n';

function hasWhiteSpace(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === 32 || c === 9 || c === 13 || c === 10) return true;
  }
  return false;
}

/** 1 to `maxDigits` decimal digits as a number, or -1. */
export function smallNumber(v: string, maxDigits: number): number {
  if (v.length === 0 || v.length > maxDigits) return -1;
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    n = n * 10 + (c - 48);
  }
  return n;
}

// ------------------------------------------------------------------ the edit model

/** Offsets of text written by edits start here, far above any buffer offset. */
const WRITTEN = 2 ** 40;

/** A run of a field value: original bytes (`text` undefined, `base` their buffer offset) or written text. */
interface Piece {
  /** Offset of its first character (see the module comment). */
  base: number;
  len: number;
  /** Written text as wire bytes (one latin1 character per byte); undefined for original bytes. */
  text: string | undefined;
  /**
   * Written text that replaced the bytes [from, to) (from === to: inserted there): those
   * offsets still mean "before it" and "after it", so that receivedEdits' rport replacement
   * and its insertion at the end of the same Via compose. -1 when there are none.
   */
  from: number;
  to: number;
}

/** A header field that an edit changed or added. */
class Field {
  /** The pieces' text, undefined until asked for after a change; `vs` is where the value starts in it, `raw` the value. */
  text: string | undefined = undefined;
  vs = 0;
  raw = '';
  /** An added field's whole line, once serialize() wrote it (undefined again after a change). */
  line: string | undefined = undefined;

  constructor(
    /** Canonical name. */
    readonly name: string,
    /** Its index in the buffer, or -1 for a field an edit added. */
    readonly orig: number,
    /** The name an added field is written with; an original field keeps its own. */
    readonly head: string,
    public pieces: Piece[],
  ) {}
}

/** A header field of the message as it will be sent: untouched (its index in the buffer) or a Field. */
type Entry = number | Field;

/**
 * Where a parser finds a value in field text (RFC 3261 §7.3.1): white space before it, and line
 * folds before it when it starts on a continuation line, are not part of it. A CR that is not
 * followed by LF is data.
 */
function valueStartIn(t: string): number {
  let i = 0;
  for (;;) {
    const c = t.charCodeAt(i);
    if (c === 32 || c === 9 || c === 10) i++;
    else if (c === 13 && t.charCodeAt(i + 1) === 10) i += 2;
    else return i;
  }
}

/** Where the value ends: trailing white space and white-space-only continuation lines are not part of it. */
function valueEndIn(t: string, from: number): number {
  let j = t.length;
  while (j > from) {
    const c = t.charCodeAt(j - 1);
    if (c === 32 || c === 9) j--;
    else if (c === 10) {
      j--;
      if (j > from && t.charCodeAt(j - 1) === 13) j--;
    } else break;
  }
  return j;
}

const NEEDS_CARE = /[\r\n\u0080-\uffff]/;

/**
 * Text as it goes on the wire: one latin1 character per byte, UTF-8 for anything above ASCII.
 * CR and LF are refused — in a header value they would end the field and start another one.
 */
function wireText(text: string, what: string): string {
  // The common case, ASCII without CR or LF, in one native scan (measured faster here than
  // a loop, or than indexOf and Buffer.byteLength).
  if (!NEEDS_CARE.test(text)) return text;
  let ascii = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 13 || c === 10) throw new Error(`${what}: CR and LF cannot be written into a header value (they would start another header field)`);
    if (c >= 128) ascii = false;
  }
  return ascii ? text : Buffer.from(text, 'utf8').toString('latin1');
}

/** A whole value as written: without the white space a parser would drop around it. */
function wireValue(value: string, what: string): string {
  const t = wireText(value, what);
  let s = 0;
  let e = t.length;
  while (s < e && (t.charCodeAt(s) === 32 || t.charCodeAt(s) === 9)) s++;
  while (e > s && (t.charCodeAt(e - 1) === 32 || t.charCodeAt(e - 1) === 9)) e--;
  return s === 0 && e === t.length ? t : t.slice(s, e);
}

/** A SipParseError that says which header it is about (the 400's reason phrase names it). */
function naming(err: unknown, display: string): unknown {
  if (err instanceof SipParseError && !err.reason.startsWith(display)) return new SipParseError(`${display}: ${err.reason}`);
  return err;
}

/** Content-Length is the framing (§18.3, §20.14): serialize() owns it. */
function refuseFraming(canonical: string): void {
  if (canonical === 'content-length') {
    throw new Error('Content-Length is the message framing, set by serialize(); it cannot be edited');
  }
}

export class SipMessage {
  readonly buffer: Buffer;
  readonly isRequest: boolean;
  readonly method: string;
  /** The Request-URI as received; `currentUriText` and `uri` follow setRequestUri. */
  readonly requestUriText: string;
  readonly status: number;
  readonly reason: string;
  readonly version: string;
  /** Where every field of the message as received is (see `received`). */
  readonly index: HeaderIndex;

  private _uri: SipUri | undefined = undefined;
  private _topVia: Via | undefined = undefined;
  private _vias: Via[] | undefined = undefined;
  private _from: NameAddr | undefined = undefined;
  private _to: NameAddr | undefined = undefined;
  private _callId: string | undefined = undefined;
  private _cseq: { seq: number; method: string } | undefined = undefined;
  private _maxForwards: number | undefined | null = null; // null: not parsed yet
  private _routes: NameAddr[] | undefined = undefined;
  private _recordRoutes: NameAddr[] | undefined = undefined;
  private _contacts: NameAddr[] | '*' | undefined = undefined;
  private _locations: Map<string, ValueLocation[]> | undefined = undefined;
  private _nameAddrs: Map<string, NameAddr[]> | undefined = undefined;
  /** The header fields as they will be sent; undefined while no header was edited. */
  private _order: Entry[] | undefined = undefined;
  /** The Request-URI as it will be sent (wire text); undefined while unchanged. */
  private _uriText: string | undefined = undefined;
  /** The offset the next written text gets. */
  private _written = WRITTEN;
  private _received: SipMessage | undefined = undefined;
  private _readOnly = false;
  /** Headers that cannot be edited now (while a routing script runs: see guard()). */
  private _guarded: ReadonlySet<string> | undefined = undefined;

  constructor(buffer: Buffer, start: StartLine, index: HeaderIndex) {
    this.buffer = buffer;
    this.isRequest = start.isRequest;
    this.method = start.method;
    this.requestUriText = start.requestUriText;
    this.status = start.status;
    this.reason = start.reason;
    this.version = start.version;
    this.index = index;
  }

  /**
   * The message as received, read-only: what a stateless reply copies (RFC 3261 §8.2.6.2),
   * whatever a route or the core has edited since. Its own object, so it never shows edits.
   */
  get received(): SipMessage {
    if (this._readOnly) return this;
    let r = this._received;
    if (r === undefined) {
      r = new SipMessage(this.buffer, this, this.index);
      r._readOnly = true;
      if (!this.edited) {
        // What was parsed so far is the message as received: no need to parse it again.
        r._uri = this._uri;
        r._topVia = this._topVia;
        r._vias = this._vias;
        r._from = this._from;
        r._to = this._to;
        r._callId = this._callId;
        r._cseq = this._cseq;
        r._maxForwards = this._maxForwards;
        r._routes = this._routes;
        r._recordRoutes = this._recordRoutes;
        r._contacts = this._contacts;
      }
      this._received = r;
    }
    return r;
  }

  // ------------------------------------------------------------------ the fields as received

  /** Canonical names of the header fields as received, in order (fieldsAsSent: as they will be sent). */
  get headerNames(): string[] {
    return this.index.names.slice();
  }

  /** How many header fields the message had as received. */
  get headerCount(): number {
    return this.index.names.length;
  }

  /** Index (as received) of the first field with this canonical name at or after `from`, or -1. */
  fieldIndex(canonical: string, from = 0): number {
    const names = this.index.names;
    for (let i = from; i < names.length; i++) if (names[i] === canonical) return i;
    return -1;
  }

  /** The raw (latin1, still folded) text of field i's value, as received. */
  rawValue(i: number): string {
    if (!(i >= 0 && i < this.index.names.length)) throw new RangeError(`no header field #${i}`);
    return this.buffer.latin1Slice(this.index.valueStarts[i]!, this.index.valueEnds[i]!);
  }

  /** Field i's value as received, unfolded and decoded as UTF-8. */
  fieldValue(i: number): string {
    return utf8(unfold(this.rawValue(i)));
  }

  /** Where every value of a list header was as received, across all its fields, in order. */
  valueLocations(canonical: string): ValueLocation[] {
    const cache = (this._locations ??= new Map());
    let out = cache.get(canonical);
    if (out === undefined) {
      out = [];
      const { valueStarts, valueEnds } = this.index;
      const b = this.buffer;
      for (let i = this.fieldIndex(canonical); i >= 0; i = this.fieldIndex(canonical, i + 1)) {
        const base = valueStarts[i]!;
        const end = valueEnds[i]!;
        // Most fields hold one value: a field without a comma or a quote is that one value (the
        // parser trimmed its ends), found without making a string or splitting it — what
        // splitList would find, refusals included.
        let k = base;
        while (k < end && b[k] !== 44 /* , */ && b[k] !== 34 /* " */) k++;
        if (k === end) {
          if (end > base) {
            if (out.length >= MAX_LIST_VALUES) throw new SipParseError(`more than ${MAX_LIST_VALUES} values in one header`);
            out.push({ field: i, start: base, end });
          }
          continue;
        }
        // At most MAX_LIST_VALUES across the fields: the split of each field stops there too.
        for (const [s, e] of splitList(this.rawValue(i), MAX_LIST_VALUES - out.length)) out.push({ field: i, start: base + s, end: base + e });
      }
      cache.set(canonical, out);
    }
    return out;
  }

  /**
   * The Via value at one of valueLocations('via'), as received, parsed now (not cached): for a
   * look at a few Vias of a message without parsing all of them.
   */
  viaAt(at: ValueLocation): Via {
    const raw = this.buffer.latin1Slice(at.start, at.end);
    return parseVia(raw, 0, raw.length, at.start);
  }

  /**
   * The k-th value as received of a name-addr list header — Route, Record-Route, Path,
   * Contact — parsed on first use: looking at the top of a long route set parses only that.
   * removeValue(canonical, k) removes it.
   */
  nameAddrAt(canonical: string, k: number): NameAddr | undefined {
    const at = this.valueLocations(canonical)[k];
    if (at === undefined) return undefined;
    const cache = (this._nameAddrs ??= new Map());
    let parsed = cache.get(canonical);
    if (parsed === undefined) cache.set(canonical, (parsed = []));
    let v = parsed[k];
    if (v === undefined) {
      const raw = this.buffer.latin1Slice(at.start, at.end);
      v = parsed[k] = parseNameAddr(raw, 0, raw.length, at.start, displayName(canonical));
    }
    return v;
  }

  // ------------------------------------------------------------------ the fields as they will be sent

  /** Every header field as it will be sent, in order: canonical name, raw value, and the value unfolded and decoded. */
  fieldsAsSent(): Array<{ name: string; raw: string; value: string }> {
    const out: Array<{ name: string; raw: string; value: string }> = [];
    const n = this._order?.length ?? this.index.names.length;
    for (let i = 0; i < n; i++) {
      const raw = this.liveRaw(i);
      out.push({ name: this.nameOf(this.entry(i)), raw, value: utf8(unfold(raw)) });
    }
    return out;
  }

  /** Index (in the message as it will be sent) of the first field with this name at or after `from`, or -1. */
  private liveIndex(canonical: string, from = 0): number {
    const order = this._order;
    if (order === undefined) return this.fieldIndex(canonical, from);
    const names = this.index.names;
    for (let i = from; i < order.length; i++) {
      const e = order[i]!;
      if ((typeof e === 'number' ? names[e] : e.name) === canonical) return i;
    }
    return -1;
  }

  /** The raw value of field i of the message as it will be sent. */
  private liveRaw(i: number): string {
    const e = this.entry(i);
    return typeof e === 'number' ? this.buffer.latin1Slice(this.index.valueStarts[e]!, this.index.valueEnds[e]!) : this.fieldRaw(e);
  }

  private liveValue(i: number): string {
    return utf8(unfold(this.liveRaw(i)));
  }

  /** First field with that name (any case, compact or full) as it will be sent, unfolded and trimmed. */
  header(name: string): string | undefined {
    const i = this.liveIndex(canonicalName(name));
    return i < 0 ? undefined : this.liveValue(i);
  }

  /** Every field's whole value. */
  headerFields(name: string): string[] {
    const c = canonicalName(name);
    const out: string[] = [];
    for (let i = this.liveIndex(c); i >= 0; i = this.liveIndex(c, i + 1)) out.push(this.liveValue(i));
    return out;
  }

  /** Every value of a header: list headers are split at top-level commas (§7.3.1). */
  headerValues(name: string): string[] {
    const c = canonicalName(name);
    if (!LIST_HEADERS.has(c)) return this.headerFields(c);
    const out: string[] = [];
    for (let i = this.liveIndex(c); i >= 0; i = this.liveIndex(c, i + 1)) {
      const raw = this.liveRaw(i);
      for (const [s, e] of splitList(raw)) out.push(utf8(unfold(raw.slice(s, e))));
    }
    return out;
  }

  // ------------------------------------------------------------------ typed accessors

  /** The Request-URI as it will be sent, as text (wire text: UTF-8 bytes as latin1 characters). */
  get currentUriText(): string {
    return this._uriText ?? this.requestUriText;
  }

  /** The parsed Request-URI (requests only), as it will be sent. */
  get uri(): SipUri {
    if (this._uri === undefined) {
      if (!this.isRequest) throw new SipParseError('a response has no Request-URI');
      this._uri = parseUri(this.requestUriText);
    }
    return this._uri;
  }

  /** The topmost Via value; parses only that one. */
  get topVia(): Via | undefined {
    if (this._topVia === undefined) {
      if (this._vias !== undefined) {
        this._topVia = this._vias[0];
      } else {
        const i = this.liveIndex('via');
        if (i < 0) return undefined;
        const raw = this.liveRaw(i);
        const first = firstListElement(raw);
        if (first === undefined) throw new SipParseError('empty Via header');
        this._topVia = this.parseViaIn(i, raw, first[0], first[1]);
      }
    }
    return this._topVia;
  }

  /**
   * The Via below the top one, parsing no other: where a proxy relays a response (§16.7
   * step 9 removes the top Via; §18.2.2 sends to the next). undefined when there is none.
   */
  get secondVia(): Via | undefined {
    if (this._vias !== undefined) return this._vias[1];
    const i = this.liveIndex('via');
    if (i < 0) return undefined;
    const raw = this.liveRaw(i);
    // Most Via fields hold one value: only a field with a comma is split.
    if (raw.indexOf(',') >= 0) {
      const parts = splitList(raw);
      if (parts.length === 0) throw new SipParseError('empty Via header');
      if (parts.length > 1) return this.parseViaIn(i, raw, parts[1]![0], parts[1]![1]);
    }
    const j = this.liveIndex('via', i + 1);
    if (j < 0) return undefined;
    const next = this.liveRaw(j);
    const first = firstListElement(next);
    if (first === undefined) throw new SipParseError('empty Via header');
    return this.parseViaIn(j, next, first[0], first[1]);
  }

  get vias(): Via[] {
    if (this._vias === undefined) {
      const out: Via[] = [];
      for (let i = this.liveIndex('via'); i >= 0; i = this.liveIndex('via', i + 1)) {
        const raw = this.liveRaw(i);
        const parts = splitList(raw);
        if (parts.length === 0) throw new SipParseError('empty Via header');
        for (const [s, e] of parts) {
          // the top Via may have been parsed already
          const top = out.length === 0 ? this._topVia : undefined;
          const v = top !== undefined && top.start === this.offsetIn(i, s, false) ? top : this.parseViaIn(i, raw, s, e);
          out.push(v);
        }
      }
      this._vias = out;
    }
    return this._vias;
  }

  get from(): NameAddr {
    return (this._from ??= this.singleNameAddr('from', 'From'));
  }

  get to(): NameAddr {
    return (this._to ??= this.singleNameAddr('to', 'To'));
  }

  get callId(): string {
    if (this._callId === undefined) {
      const i = this.liveIndex('call-id');
      if (i < 0) throw new SipParseError('missing Call-ID header');
      if (this.liveIndex('call-id', i + 1) >= 0) throw new SipParseError('more than one Call-ID header');
      const f = this.entry(i);
      if (typeof f !== 'number') {
        const v = this.liveValue(i);
        if (v.length === 0 || hasWhiteSpace(v)) throw new SipParseError('Call-ID is empty or contains white space');
        if (v.length > MAX_VALUE_BYTES) throw new SipParseError(`Call-ID longer than ${MAX_VALUE_BYTES} bytes`);
        return (this._callId = v);
      }
      // callid = word [ "@" word ] (§25.1): one pass over the bytes checks for white space
      // (folding included) and whether anything needs decoding as UTF-8.
      const b = this.buffer;
      const s = this.index.valueStarts[f]!;
      const e = this.index.valueEnds[f]!;
      if (e - s > MAX_VALUE_BYTES) throw new SipParseError(`Call-ID longer than ${MAX_VALUE_BYTES} bytes`);
      let ascii = true;
      for (let p = s; p < e; p++) {
        const c = b[p]!;
        if (c === 32 || c === 9 || c === 13 || c === 10) throw new SipParseError('Call-ID is empty or contains white space');
        if (c >= 128) ascii = false;
      }
      if (e <= s) throw new SipParseError('Call-ID is empty or contains white space');
      this._callId = ascii ? b.latin1Slice(s, e) : utf8(b.latin1Slice(s, e));
    }
    return this._callId;
  }

  /** For a request, the CSeq method must be the request's method (§8.1.1.5). */
  get cseq(): { seq: number; method: string } {
    if (this._cseq === undefined) {
      const c = parseCSeq(this.single('cseq', 'CSeq'));
      if (this.isRequest && c.method !== this.method) throw new SipParseError('CSeq method does not match the request method');
      this._cseq = c;
    }
    return this._cseq;
  }

  /** undefined when absent; §20.22 / §25.1: one field, 1*DIGIT, 0..255. */
  get maxForwards(): number | undefined {
    if (this._maxForwards === null) {
      const i = this.liveIndex('max-forwards');
      if (i < 0) this._maxForwards = undefined;
      else {
        if (this.liveIndex('max-forwards', i + 1) >= 0) throw new SipParseError('more than one Max-Forwards header');
        const v = this.liveValue(i);
        const n = smallNumber(v, 10);
        if (n < 0 || n > 255) throw new SipParseError('Max-Forwards is not a number from 0 to 255');
        this._maxForwards = n;
      }
    }
    return this._maxForwards;
  }

  /** The Content-Length as received (the framing; serialize() writes the body's length). */
  get contentLength(): number | undefined {
    return this.index.contentLength;
  }

  get body(): Buffer {
    return this.buffer.subarray(this.index.bodyStart, this.index.bodyEnd);
  }

  get routes(): NameAddr[] {
    return (this._routes ??= this.nameAddrList('route', 'Route'));
  }

  get recordRoutes(): NameAddr[] {
    return (this._recordRoutes ??= this.nameAddrList('record-route', 'Record-Route'));
  }

  get contacts(): NameAddr[] | '*' {
    if (this._contacts === undefined) {
      let values = 0;
      let star = false;
      for (let i = this.liveIndex('contact'); i >= 0; i = this.liveIndex('contact', i + 1)) {
        const raw = this.liveRaw(i);
        for (const [s, e] of splitList(raw)) {
          values++;
          star = e - s === 1 && raw.charCodeAt(s) === 42;
        }
      }
      this._contacts = values === 1 && star ? '*' : this.nameAddrList('contact', 'Contact');
    }
    return this._contacts;
  }

  private single(canonical: string, display: string): string {
    const i = this.liveIndex(canonical);
    if (i < 0) throw new SipParseError(`missing ${display} header`);
    if (this.liveIndex(canonical, i + 1) >= 0) throw new SipParseError(`more than one ${display} header`);
    return this.liveValue(i);
  }

  private singleNameAddr(canonical: string, display: string): NameAddr {
    const i = this.liveIndex(canonical);
    if (i < 0) throw new SipParseError(`missing ${display} header`);
    if (this.liveIndex(canonical, i + 1) >= 0) throw new SipParseError(`more than one ${display} header`);
    const raw = this.liveRaw(i);
    try {
      return this.parseNameAddrIn(i, raw, 0, raw.length, display);
    } catch (err) {
      throw naming(err, display);
    }
  }

  /** Every value of a name-addr list header. */
  private nameAddrList(canonical: string, display: string): NameAddr[] {
    const out: NameAddr[] = [];
    try {
      for (let i = this.liveIndex(canonical); i >= 0; i = this.liveIndex(canonical, i + 1)) {
        const raw = this.liveRaw(i);
        for (const [s, e] of splitList(raw)) out.push(this.parseNameAddrIn(i, raw, s, e, display));
      }
    } catch (err) {
      throw naming(err, display);
    }
    return out;
  }

  /** parseVia on field i's value, with offsets as edits take them. */
  private parseViaIn(i: number, raw: string, s: number, e: number): Via {
    const f = this.entry(i);
    if (typeof f === 'number') return parseVia(raw, s, e, this.index.valueStarts[f]!);
    const v = parseVia(raw, s, e, 0);
    const vs = f.vs;
    v.start = this.offsetOf(f, vs + v.start, false);
    v.end = this.offsetOf(f, vs + v.end, true);
    if (v.rportStart >= 0) {
      v.rportStart = this.offsetOf(f, vs + v.rportStart, false);
      v.rportEnd = this.offsetOf(f, vs + v.rportEnd, true);
    }
    if (v.receivedStart >= 0) {
      v.receivedStart = this.offsetOf(f, vs + v.receivedStart, false);
      v.receivedEnd = this.offsetOf(f, vs + v.receivedEnd, true);
    }
    return v;
  }

  private parseNameAddrIn(i: number, raw: string, s: number, e: number, display: string): NameAddr {
    const f = this.entry(i);
    if (typeof f === 'number') return parseNameAddr(raw, s, e, this.index.valueStarts[f]!, display);
    const na = parseNameAddr(raw, s, e, 0, display);
    na.start = this.offsetOf(f, f.vs + na.start, false);
    na.end = this.offsetOf(f, f.vs + na.end, true);
    return na;
  }

  // ------------------------------------------------------------------ the fields as they will be sent

  private entry(i: number): Entry {
    const order = this._order;
    if (order === undefined) {
      if (i >= 0 && i < this.index.names.length) return i;
    } else {
      const e = order[i];
      if (e !== undefined) return e;
    }
    throw new RangeError(`no header field #${i}`);
  }

  private nameOf(e: Entry): string {
    return typeof e === 'number' ? this.index.names[e]! : e.name;
  }

  /** The value of an edited field, trimmed as a parser of the serialized message will find it. */
  private fieldRaw(f: Field): string {
    if (f.text === undefined) {
      let t = '';
      for (const p of f.pieces) t += p.text ?? this.buffer.latin1Slice(p.base, p.base + p.len);
      const vs = valueStartIn(t);
      f.text = t;
      f.vs = vs;
      f.raw = t.slice(vs, valueEndIn(t, vs));
    }
    return f.raw;
  }

  /** The offset of position `k` of field i's raw value. */
  private offsetIn(i: number, k: number, end: boolean): number {
    const f = this.entry(i);
    return typeof f === 'number' ? this.index.valueStarts[f]! + k : this.offsetOf(f, f.vs + k, end);
  }

  /**
   * The offset of position `t` of a field's text: that of the character there (a start), or
   * of the end of the character before it (an end) — which differ where two pieces meet.
   */
  private offsetOf(f: Field, t: number, end: boolean): number {
    const ps = f.pieces;
    let cum = 0;
    for (const p of ps) {
      if (end ? t > cum && t <= cum + p.len : t >= cum && t < cum + p.len) return p.base + (t - cum);
      cum += p.len;
    }
    if (ps.length === 0) return -1;
    const last = ps[ps.length - 1]!;
    return end ? ps[0]!.base : last.base + last.len;
  }

  /** Where offset `pos` is in a field's text now, or -1 when those bytes are gone. */
  private textIndex(f: Field, pos: number, end: boolean): number {
    const ps = f.pieces;
    let cum = 0;
    for (const p of ps) {
      if (end ? pos > p.base && pos <= p.base + p.len : pos >= p.base && pos < p.base + p.len) return cum + (pos - p.base);
      cum += p.len;
    }
    // Where two pieces meet: after one that ends at pos or replaced bytes up to it, before one
    // that starts there or replaced bytes from there.
    cum = 0;
    for (let b = 0; b <= ps.length; b++) {
      const prev = ps[b - 1];
      const next = ps[b];
      if ((prev !== undefined && (prev.base + prev.len === pos || prev.to === pos)) || (next !== undefined && (next.base === pos || next.from === pos))) {
        // An insertion goes after text inserted at the same offset before (in the order they were made).
        if (!end) for (let k = b; k < ps.length && ps[k]!.from === pos && ps[k]!.to === pos; k++) cum += ps[k]!.len;
        return cum;
      }
      if (next !== undefined) cum += next.len;
    }
    return -1;
  }

  /** The original field whose value holds buffer offset `pos` (value end included), or -1. */
  private originalFieldAt(pos: number): number {
    const { valueStarts, valueEnds } = this.index;
    let lo = 0;
    let hi = valueStarts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (valueStarts[mid]! <= pos) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found >= 0 && pos <= valueEnds[found]! ? found : -1;
  }

  /** Where locate() found its offset in that field's text. */
  private _at = 0;

  /**
   * Which field holds offset `pos` now (its index; where in its text is left in `_at`), or -1
   * when those bytes are gone.
   */
  private locate(pos: number, end: boolean): number {
    const order = this._order;
    if (pos < WRITTEN) {
      const o = this.originalFieldAt(pos);
      if (o < 0) return -1;
      this._at = pos - this.index.valueStarts[o]!;
      if (order === undefined) return o;
      for (let i = 0; i < order.length; i++) {
        const e = order[i]!;
        if (e === o) return i;
        if (typeof e !== 'number' && e.orig === o) {
          const k = this.textIndex(e, pos, end);
          this._at = k;
          return k < 0 ? -1 : i;
        }
      }
      return -1;
    }
    if (order === undefined) return -1;
    for (let i = 0; i < order.length; i++) {
      const e = order[i]!;
      if (typeof e === 'number') continue;
      const k = this.textIndex(e, pos, end);
      if (k >= 0) {
        this._at = k;
        return i;
      }
    }
    return -1;
  }

  // ------------------------------------------------------------------ edits

  /** Anything edited (header fields or the Request-URI). */
  get edited(): boolean {
    return this._order !== undefined || this._uriText !== undefined;
  }

  private beginEdit(): void {
    if (this._readOnly) throw new Error('the message as received is read-only; edit the message itself');
  }

  private order(): Entry[] {
    let order = this._order;
    if (order === undefined) {
      const n = this.index.names.length;
      order = new Array<Entry>(n);
      for (let i = 0; i < n; i++) order[i] = i;
      this._order = order;
    }
    return order;
  }

  /** Written text with offsets of its own, replacing the bytes [from, to) (-1: none that can be named). */
  private written(text: string, from: number, to: number): Piece | undefined {
    if (text.length === 0) return undefined;
    const base = this._written;
    this._written += text.length + 1; // a gap: the end of one text is never the start of the next
    return { base, len: text.length, text, from, to };
  }

  private newField(name: string, value: string, what: string): Field {
    this.beginEdit();
    const c = canonicalName(name);
    const d = writableName(c);
    if (d === undefined) throw new Error(`${what}: '${name}' is not a header name (a token, RFC 3261 §25.1)`);
    this.refuseEdit(c);
    const p = this.written(wireValue(value, what), -1, -1);
    return new Field(c, -1, d, p === undefined ? [] : [p]);
  }

  /**
   * While `names` is set, every edit of those headers throws (add, set, remove, or bytes
   * inside them). The proxy core guards Via, Max-Forwards, Call-ID, CSeq and the like while
   * a routing script holds the message, so that a script cannot bypass the core's rules
   * (RFC 3261 §16.3 loop and Max-Forwards checks, §16.6 Via handling); undefined lifts it.
   */
  guard(names: ReadonlySet<string> | undefined): void {
    this._guarded = names;
  }

  private refuseEdit(canonical: string): void {
    refuseFraming(canonical);
    if (this._guarded !== undefined && this._guarded.has(canonical)) {
      throw new Error(`the ${canonical} header is the proxy core's (RFC 3261 §16.6); a route cannot edit it`);
    }
  }

  /** Cached values of that header (as it will be sent) are stale. */
  private touched(canonical: string): void {
    switch (canonical) {
      case 'via':
        this._topVia = undefined;
        this._vias = undefined;
        break;
      case 'from':
        this._from = undefined;
        break;
      case 'to':
        this._to = undefined;
        break;
      case 'call-id':
        this._callId = undefined;
        break;
      case 'cseq':
        this._cseq = undefined;
        break;
      case 'max-forwards':
        this._maxForwards = null;
        break;
      case 'route':
        this._routes = undefined;
        break;
      case 'record-route':
        this._recordRoutes = undefined;
        break;
      case 'contact':
        this._contacts = undefined;
        break;
    }
  }

  /** Insert a header field above the first field named `before` (or at the top of the headers). */
  insertHeaderBefore(before: string, name: string, value: string): void {
    const f = this.newField(name, value, 'insertHeaderBefore');
    const i = this.liveIndex(canonicalName(before));
    insertEntry(this.order(), i < 0 ? 0 : i, f);
    this.touched(f.name);
  }

  /** Add a header field at the top of the header section. */
  prependHeader(name: string, value: string): void {
    const f = this.newField(name, value, 'prependHeader');
    insertEntry(this.order(), 0, f);
    this.touched(f.name);
  }

  /** Add a header field at the end of the header section (Kamailio's append_hf). */
  appendHeader(name: string, value: string): void {
    const f = this.newField(name, value, 'appendHeader');
    this.order().push(f);
    this.touched(f.name);
  }

  /** Remove every field with that name; how many there were. */
  removeHeader(name: string): number {
    this.beginEdit();
    const c = canonicalName(name);
    this.refuseEdit(c);
    if (this.liveIndex(c) < 0) return 0;
    const order = this.order();
    let n = 0;
    let w = 0;
    for (let r = 0; r < order.length; r++) {
      const e = order[r]!;
      if (this.nameOf(e) === c) n++;
      else order[w++] = e;
    }
    order.length = w;
    this.touched(c);
    return n;
  }

  /** Replace the whole value of the first field with that name, or append the field. */
  setHeader(name: string, value: string): void {
    this.beginEdit();
    const c = canonicalName(name);
    const i = this.liveIndex(c);
    if (i < 0) {
      this.appendHeader(name, value);
      return;
    }
    this.refuseEdit(c);
    const p = this.written(wireValue(value, 'setHeader'), -1, -1);
    const pieces = p === undefined ? [] : [p];
    const order = this.order();
    const e = order[i]!;
    if (typeof e === 'number') {
      order[i] = new Field(c, e, '', pieces);
    } else {
      e.pieces = pieces;
      e.text = e.line = undefined;
    }
    this.touched(c);
  }

  /** Remove field i as received (an index as fieldIndex gives it); false when an edit removed it already. */
  removeField(i: number): boolean {
    this.beginEdit();
    if (!(i >= 0 && i < this.index.names.length)) throw new RangeError(`no header field #${i}`);
    this.refuseEdit(this.nameOf(i));
    const order = this._order;
    if (order === undefined) {
      this.removeLive(i);
      return true;
    }
    for (let k = 0; k < order.length; k++) {
      const e = order[k]!;
      if (e === i || (typeof e !== 'number' && e.orig === i)) {
        this.removeLive(k);
        return true;
      }
    }
    return false;
  }

  /** Remove field i of the message as it will be sent. */
  private removeLive(i: number): void {
    const name = this.nameOf(this.entry(i));
    this.refuseEdit(name);
    const order = this.order();
    for (let k = i + 1; k < order.length; k++) order[k - 1] = order[k]!;
    order.length--;
    this.touched(name);
  }

  /**
   * Remove one value of a list header: the whole field when it is that field's only value,
   * else the value and the comma joining it to a neighbour. `value` is its index in
   * valueLocations(canonical) — the values as received, whatever was removed since (so that
   * looseRoute can remove several it counted at once) — or a value read from the message
   * (a NameAddr from `routes`, a Via, a ValueLocation), whose offsets stay good for as long
   * as its bytes are in the message. False when that value is no longer there (removed, or
   * its field replaced).
   */
  removeValue(canonical: string, value: number | { readonly start: number; readonly end?: number }): boolean {
    this.beginEdit();
    this.refuseEdit(canonical);
    let at: { readonly start: number; readonly end?: number };
    if (typeof value === 'number') {
      const loc = this.valueLocations(canonical)[value];
      if (loc === undefined) throw new RangeError(`no ${canonical} value #${value}`);
      at = loc;
    } else at = value;
    const field = this.locate(at.start, false);
    if (field < 0) return false;
    const t = this._at;
    const e = this.entry(field);
    if (this.nameOf(e) !== canonical) throw new Error(`removeValue('${canonical}'): offset ${at.start} is in a ${this.nameOf(e)} field`);
    if (typeof e === 'number' && t === 0 && at.end === this.index.valueEnds[e]) {
      // The whole of an untouched field (our own Route entry, as a rule): no need to split it.
      this.removeLive(field);
      return true;
    }
    const parts = splitList(this.liveRaw(field));
    const s = t - (typeof e === 'number' ? 0 : e.vs);
    const k = parts.findIndex((p) => p[0] === s);
    if (k < 0) return false;
    if (parts.length === 1) {
      this.removeLive(field);
      return true;
    }
    const vs = typeof e === 'number' ? 0 : e.vs;
    if (k + 1 < parts.length) this.splice(field, vs + parts[k]![0], vs + parts[k + 1]![0], '', -1, -1);
    else this.splice(field, vs + parts[k - 1]![1], vs + parts[k]![1], '', -1, -1);
    return true;
  }

  /**
   * Remove the topmost Via value (§16.7 step 3, on every response): what removeValue('via',
   * topVia) does, without splitting the Via field when it is as received.
   */
  removeTopVia(): void {
    const top = this.topVia;
    if (top === undefined) return;
    const i = this.liveIndex('via');
    const o = this.entry(i);
    if (typeof o !== 'number') {
      this.removeValue('via', top);
      return;
    }
    this.beginEdit();
    const vs = this.index.valueStarts[o]!;
    const ve = this.index.valueEnds[o]!;
    const b = this.buffer;
    let p = top.end;
    while (p < ve && (b[p] === 32 || b[p] === 9 || b[p] === 13 || b[p] === 10)) p++;
    if (p >= ve || b[p] !== 44) {
      this.removeLive(i);
      return;
    }
    // The value, its comma and the white space up to the next value.
    p++;
    while (p < ve && (b[p] === 32 || b[p] === 9 || b[p] === 13 || b[p] === 10)) p++;
    this.splice(i, top.start - vs, p - vs, '', -1, -1);
  }

  /**
   * Replace the bytes [start, end) of one header value (offsets as the parsed values give
   * them, e.g. a Via's rport) with new text. Throws when they are not inside one value of the
   * message as it stands: bytes since replaced or removed with their field are gone.
   */
  replaceRange(start: number, end: number, text: string): void {
    this.beginEdit();
    const w = wireText(text, 'replaceRange');
    if (!(end >= start)) throw new RangeError(`replaceRange(${start}, ${end}): the end is before the start`);
    const i = this.locate(start, false);
    const t0 = this._at;
    const j = start === end ? i : this.locate(end, true);
    const t1 = start === end ? t0 : this._at;
    if (i < 0 || i !== j || t1 < t0) {
      throw new Error(
        `replaceRange(${start}, ${end}): those bytes are not (or no longer) inside one header value; ` +
          'a field replaced or removed since takes its offsets with it — read the value again',
      );
    }
    this.refuseEdit(this.nameOf(this.entry(i)));
    this.splice(i, t0, t1, w, start, end);
  }

  /** Insert text at an offset (e.g. `;received=...` at the end of the top Via). */
  insertAt(offset: number, text: string): void {
    this.replaceRange(offset, offset, text);
  }

  /**
   * Change the Request-URI (RFC 3261 §16.6 step 2 and §16.4). `uri` and `currentUriText`
   * follow the change; `requestUriText` stays the Request-URI as received.
   */
  setRequestUri(uri: string): void {
    this.beginEdit();
    if (!this.isRequest) throw new Error('setRequestUri on a response');
    const wire = wireText(uri, 'setRequestUri');
    for (let i = 0; i < wire.length; i++) {
      const c = wire.charCodeAt(i);
      // §25.1 Request-Line = Method SP Request-URI SP SIP-Version: no white space or control inside.
      if (c < 33 || c === 127) throw new Error(`setRequestUri: '${uri}' contains white space or a control character`);
    }
    this._uri = parseUri(wire);
    this._uriText = wire;
  }

  /**
   * Replace characters [t0, t1) of field i's text with wire text. Its line folds must stay
   * folds: nothing but white space may follow a line break (§7.3.1), or the rest of the line
   * would become a header field of its own.
   */
  private splice(i: number, t0: number, t1: number, text: string, from: number, to: number): void {
    const order = this.order();
    const e = order[i]!;
    if (typeof e === 'number') {
      // The first edit of an untouched field: its value becomes one piece of original bytes.
      const vs = this.index.valueStarts[e]!;
      const len = this.index.valueEnds[e]! - vs;
      const b = this.buffer;
      if (t0 > 0 && b[vs + t0 - 1] === 10) {
        const next = text.length > 0 ? text.charCodeAt(0) : t1 < len ? b[vs + t1]! : -1;
        if (next !== 32 && next !== 9) throw new Error('the edit would leave a line break that folds nothing (RFC 3261 §7.3.1)');
      }
      const w = this.written(text, from, to);
      const orig: Piece = { base: vs, len, text: undefined, from: -1, to: -1 };
      let pieces: Piece[];
      if (t0 === len && t1 === len) pieces = w === undefined ? [orig] : [orig, w]; // at the end (received at the end of a Via)
      else pieces = this.cutPieces(len === 0 ? [] : [orig], t0, t1, w);
      order[i] = new Field(this.index.names[e]!, e, '', pieces);
      this.touched(this.index.names[e]!);
      return;
    }
    const f = e;
    if (t0 > 0 && this.charAt(f, t0 - 1) === 10) {
      const next = text.length > 0 ? text.charCodeAt(0) : this.charAt(f, t1);
      if (next !== 32 && next !== 9) throw new Error('the edit would leave a line break that folds nothing (RFC 3261 §7.3.1)');
    }
    const ps = f.pieces;
    let total = 0;
    for (let k = 0; k < ps.length; k++) total += ps[k]!.len;
    if (t0 === total && t1 === total) {
      // At the end (received at the end of a Via): nothing to cut.
      const w = this.written(text, from, to);
      if (w !== undefined) ps.push(w);
    } else f.pieces = this.cutPieces(ps, t0, t1, this.written(text, from, to));
    f.text = f.line = undefined;
    this.touched(f.name);
  }

  /** The pieces with characters [t0, t1) replaced by `w` (or only removed). */
  private cutPieces(pieces: Piece[], t0: number, t1: number, w: Piece | undefined): Piece[] {
    const out: Piece[] = [];
    let cum = 0;
    for (const p of pieces) {
      if (cum < t0) out.push(cut(p, 0, Math.min(p.len, t0 - cum)));
      cum += p.len;
    }
    if (w !== undefined) out.push(w);
    cum = 0;
    for (const p of pieces) {
      if (cum + p.len > t1) out.push(cut(p, Math.max(0, t1 - cum), p.len));
      cum += p.len;
    }
    return out;
  }

  /** The character at position t of a field's text, or -1 past its end. */
  private charAt(f: Field, t: number): number {
    let cum = 0;
    for (const p of f.pieces) {
      if (t < cum + p.len) return p.text === undefined ? this.buffer[p.base + t - cum]! : p.text.charCodeAt(t - cum);
      cum += p.len;
    }
    return -1;
  }

  /** Offset of the start line (after any leading CRLFs). */
  private startLineOffset(): number {
    const b = this.buffer;
    let p = 0;
    while (b[p] === 13 || b[p] === 10) p++;
    return p;
  }

  /**
   * The message to send: a Content-Length added when the message had none (mandatory on
   * streams, §18.3, and harmless on datagrams), and bytes past the body dropped. Nothing
   * edited: the buffer itself (or a subarray), no copy.
   */
  serialize(): Buffer {
    const { bodyEnd, bodyStart, contentLength } = this.index;
    const start = this.startLineOffset();
    if (this._order === undefined && this._uriText === undefined && contentLength !== undefined) {
      return start === 0 && bodyEnd === this.buffer.length ? this.buffer : this.buffer.subarray(start, bodyEnd);
    }
    const length = contentLength === undefined ? `Content-Length: ${bodyEnd - bodyStart}${CRLF}` : '';
    // One pass to size the result, one to fill it: a single allocation, no concat.
    const out = Buffer.allocUnsafe(this.emit(undefined, start, length));
    this.emit(out, start, length);
    return out;
  }

  /**
   * Writes the message into `out` (or only counts, when undefined); returns its size. Byte
   * ranges of the buffer that follow each other are copied at once (`from`..`to` is pending).
   */
  private emit(out: Buffer | undefined, start: number, length: string): number {
    const b = this.buffer;
    const { lineStarts, lineEnds, valueStarts, headersStart, headersEnd, bodyEnd } = this.index;
    let w = 0;
    let from = start;
    let to = start;
    const uri = this._uriText;
    if (uri === undefined) to = headersStart;
    else {
      // METHOD SP Request-URI SP SIP-Version
      to = start + this.method.length + 1;
      w = write(out, copy(b, out, w, from, to), uri);
      from = to + this.requestUriText.length;
      to = headersStart;
    }
    const order = this._order;
    if (order === undefined) to = headersEnd;
    else {
      for (let i = 0; i < order.length; i++) {
        const e = order[i]!;
        if (typeof e === 'number') {
          if (lineStarts[e] !== to) {
            w = copy(b, out, w, from, to);
            from = lineStarts[e]!;
          }
          to = lineEnds[e]!;
          continue;
        }
        if (e.orig < 0) {
          // An added field holds written text only.
          let line = e.line;
          if (line === undefined) {
            line = e.head + ': ';
            for (const p of e.pieces) line += p.text!;
            e.line = line += CRLF;
          }
          w = write(out, copy(b, out, w, from, to), line);
          from = to = headersEnd;
          continue;
        }
        // An edited field keeps its name and separator as written; its line ends in CRLF.
        if (lineStarts[e.orig] !== to) {
          w = copy(b, out, w, from, to);
          from = lineStarts[e.orig]!;
        }
        to = valueStarts[e.orig]!;
        const ps = e.pieces;
        for (let k = 0; k < ps.length; k++) {
          const p = ps[k]!;
          if (p.text === undefined) {
            if (p.base !== to) {
              w = copy(b, out, w, from, to);
              from = p.base;
            }
            to = p.base + p.len;
          } else {
            w = write(out, copy(b, out, w, from, to), p.text);
            from = to = headersEnd;
          }
        }
        w = write(out, copy(b, out, w, from, to), CRLF);
        from = to = headersEnd;
      }
      if (to !== headersEnd) {
        w = copy(b, out, w, from, to);
        from = to = headersEnd;
      }
    }
    if (length.length > 0) {
      w = write(out, copy(b, out, w, from, to), length);
      from = headersEnd;
    }
    return copy(b, out, w, from, bodyEnd);
  }
}

/** Copies buffer[s, e) to out at w (when there is an out); the new write position. */
function copy(b: Buffer, out: Buffer | undefined, w: number, s: number, e: number): number {
  if (out !== undefined && e > s) b.copy(out, w, s, e);
  return w + e - s;
}

/** Writes wire text (one latin1 character per byte) to out at w; the new write position. */
function write(out: Buffer | undefined, w: number, text: string): number {
  if (out !== undefined) out.latin1Write(text, w);
  return w + text.length;
}

/** Insert an entry at position i (Array#splice would allocate the array of removed entries). */
function insertEntry(order: Entry[], i: number, e: Entry): void {
  let k = order.length;
  order.push(e);
  for (; k > i; k--) order[k] = order[k - 1]!;
  order[i] = e;
}

/** Characters [from, to) of a piece. */
function cut(p: Piece, from: number, to: number): Piece {
  if (from === 0 && to === p.len) return p;
  return { base: p.base + from, len: to - from, text: p.text?.slice(from, to), from: from === 0 ? p.from : -1, to: to === p.len ? p.to : -1 };
}
