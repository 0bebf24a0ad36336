/**
 * A SIP message as a lazy view over one Buffer.
 *
 * parseMessage() found the start line and every header field's byte range; the accessors
 * here decode a value the first time it is asked for and cache it. Changes are recorded as
 * edits (byte-range replacements, what Kamailio calls lumps) and applied by serialize():
 * the forwarded message is the original buffer's slices plus the edits, so bytes nobody
 * touched are never re-encoded.
 */
import { SipParseError } from './errors.js';
import { canonicalName, displayName, LIST_HEADERS } from './header-names.js';
import type { StartLine } from './parse.js';
import { parseUri, type SipUri } from './uri.js';
import {
  parseCSeq,
  parseNameAddr,
  parseVia,
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
  /** Offset of the empty line that ends the headers: where appended headers go. */
  headersEnd: number;
  bodyStart: number;
  bodyEnd: number;
  contentLength: number | undefined;
}

/** One recorded change: replace buffer[start, end) with `text` (start === end inserts). */
interface Edit {
  start: number;
  end: number;
  text: string;
  /** Set by serialize(): this edit lies inside a wider one. */
  skip: boolean;
}

/** A value of a list header with its location: which field, which byte range. */
export interface ValueLocation {
  field: number;
  start: number;
  end: number;
}

const CRLF = '\r\n';

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

export class SipMessage {
  readonly buffer: Buffer;
  readonly isRequest: boolean;
  readonly method: string;
  readonly requestUriText: string;
  readonly status: number;
  readonly reason: string;
  readonly version: string;
  readonly index: HeaderIndex;

  private _uri: SipUri | undefined = undefined;
  private _uriText: string | undefined = undefined;
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
  private _edits: Edit[] | undefined = undefined;
  private _removedFields: Set<number> | undefined = undefined;
  private _removedValues: Set<string> | undefined = undefined;
  private _locations: Map<string, ValueLocation[]> | undefined = undefined;
  private _nameAddrs: Map<string, NameAddr[]> | undefined = undefined;

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

  // ------------------------------------------------------------------ generic access

  get headerNames(): string[] {
    return this.index.names.slice();
  }

  get headerCount(): number {
    return this.index.names.length;
  }

  /** Index of the first field with this canonical name, or -1. */
  fieldIndex(canonical: string, from = 0): number {
    const names = this.index.names;
    for (let i = from; i < names.length; i++) if (names[i] === canonical) return i;
    return -1;
  }

  /** The raw (latin1, still folded) text of field i's value. */
  rawValue(i: number): string {
    return this.buffer.latin1Slice(this.index.valueStarts[i], this.index.valueEnds[i]);
  }

  /** Field i's value, unfolded and decoded as UTF-8. */
  fieldValue(i: number): string {
    return utf8(unfold(this.rawValue(i)));
  }

  /** First field with that name (any case, compact or full), unfolded and trimmed. */
  header(name: string): string | undefined {
    const i = this.fieldIndex(canonicalName(name));
    return i < 0 ? undefined : this.fieldValue(i);
  }

  /** Every field's whole value. */
  headerFields(name: string): string[] {
    const c = canonicalName(name);
    const out: string[] = [];
    for (let i = this.fieldIndex(c); i >= 0; i = this.fieldIndex(c, i + 1)) out.push(this.fieldValue(i));
    return out;
  }

  /** Every value of a header: list headers are split at top-level commas (§7.3.1). */
  headerValues(name: string): string[] {
    const c = canonicalName(name);
    if (!LIST_HEADERS.has(c)) return this.headerFields(c);
    return this.valueLocations(c).map((v) => utf8(unfold(this.buffer.latin1Slice(v.start, v.end))));
  }

  /** Byte ranges of every value of a list header, across all its fields, in order. */
  valueLocations(canonical: string): ValueLocation[] {
    const cache = (this._locations ??= new Map());
    let out = cache.get(canonical);
    if (out === undefined) {
      out = this.findValueLocations(canonical);
      cache.set(canonical, out);
    }
    return out;
  }

  private findValueLocations(canonical: string): ValueLocation[] {
    const out: ValueLocation[] = [];
    const { valueStarts } = this.index;
    for (let i = this.fieldIndex(canonical); i >= 0; i = this.fieldIndex(canonical, i + 1)) {
      const base = valueStarts[i]!;
      for (const [s, e] of splitList(this.rawValue(i))) out.push({ field: i, start: base + s, end: base + e });
    }
    return out;
  }

  // ------------------------------------------------------------------ typed accessors

  /** The Request-URI as it will be sent (after setRequestUri), as text. */
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
        const i = this.fieldIndex('via');
        if (i < 0) return undefined;
        const raw = this.rawValue(i);
        const first = splitList(raw)[0];
        if (first === undefined) throw new SipParseError('empty Via header');
        this._topVia = parseVia(raw, first[0], first[1], this.index.valueStarts[i]!);
      }
    }
    return this._topVia;
  }

  get vias(): Via[] {
    if (this._vias === undefined) {
      const out: Via[] = [];
      for (let i = this.fieldIndex('via'); i >= 0; i = this.fieldIndex('via', i + 1)) {
        const raw = this.rawValue(i);
        const base = this.index.valueStarts[i]!;
        const parts = splitList(raw);
        if (parts.length === 0) throw new SipParseError('empty Via header');
        for (const [s, e] of parts) {
          // the top Via may have been parsed already
          const top = out.length === 0 ? this._topVia : undefined;
          out.push(top !== undefined && top.start === base + s ? top : parseVia(raw, s, e, base));
        }
      }
      this._vias = out;
    }
    return this._vias;
  }

  /**
   * The Via value at one of valueLocations('via'), parsed now (not cached): for a look at a
   * few Vias of a message without parsing all of them.
   */
  viaAt(at: ValueLocation): Via {
    const raw = this.buffer.latin1Slice(at.start, at.end);
    return parseVia(raw, 0, raw.length, at.start);
  }

  /**
   * The k-th value (as received) of a name-addr list header — Route, Record-Route, Path,
   * Contact — parsed on first use: looking at the top of a long route set parses only that.
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

  get from(): NameAddr {
    return (this._from ??= this.singleNameAddr('from', 'From'));
  }

  get to(): NameAddr {
    return (this._to ??= this.singleNameAddr('to', 'To'));
  }

  get callId(): string {
    if (this._callId === undefined) {
      const i = this.fieldIndex('call-id');
      if (i < 0) throw new SipParseError('missing Call-ID header');
      if (this.fieldIndex('call-id', i + 1) >= 0) throw new SipParseError('more than one Call-ID header');
      // callid = word [ "@" word ] (§25.1): one pass over the bytes checks for white space
      // (folding included) and whether anything needs decoding as UTF-8.
      const b = this.buffer;
      const s = this.index.valueStarts[i]!;
      const e = this.index.valueEnds[i]!;
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
      const i = this.fieldIndex('max-forwards');
      if (i < 0) this._maxForwards = undefined;
      else {
        if (this.fieldIndex('max-forwards', i + 1) >= 0) throw new SipParseError('more than one Max-Forwards header');
        const v = this.fieldValue(i);
        const n = smallNumber(v, 10);
        if (n < 0 || n > 255) throw new SipParseError('Max-Forwards is not a number from 0 to 255');
        this._maxForwards = n;
      }
    }
    return this._maxForwards;
  }

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
      const locs = this.valueLocations('contact');
      if (locs.length === 1 && this.buffer.latin1Slice(locs[0]!.start, locs[0]!.end) === '*') this._contacts = '*';
      else this._contacts = this.nameAddrList('contact', 'Contact');
    }
    return this._contacts;
  }

  private single(canonical: string, display: string): string {
    const i = this.fieldIndex(canonical);
    if (i < 0) throw new SipParseError(`missing ${display} header`);
    if (this.fieldIndex(canonical, i + 1) >= 0) throw new SipParseError(`more than one ${display} header`);
    return this.fieldValue(i);
  }

  private singleNameAddr(canonical: string, display: string): NameAddr {
    const i = this.fieldIndex(canonical);
    if (i < 0) throw new SipParseError(`missing ${display} header`);
    if (this.fieldIndex(canonical, i + 1) >= 0) throw new SipParseError(`more than one ${display} header`);
    const raw = this.rawValue(i);
    return parseNameAddr(raw, 0, raw.length, this.index.valueStarts[i]!, display);
  }

  /** Every value of a name-addr list header, split once (valueLocations, which removeValue reuses). */
  private nameAddrList(canonical: string, display: string): NameAddr[] {
    const out: NameAddr[] = [];
    let field = -1;
    let raw = '';
    let base = 0;
    for (const loc of this.valueLocations(canonical)) {
      if (loc.field !== field) {
        field = loc.field;
        raw = this.rawValue(field);
        base = this.index.valueStarts[field]!;
      }
      out.push(parseNameAddr(raw, loc.start - base, loc.end - base, base, display));
    }
    return out;
  }

  // ------------------------------------------------------------------ edits

  get edited(): boolean {
    return this._edits !== undefined;
  }

  /** Replace buffer[start, end) with text; start === end inserts. */
  private edit(start: number, end: number, text: string): void {
    (this._edits ??= []).push({ start, end, text, skip: false });
  }

  /** Insert a header field above the first field named `before` (or at the top of the headers). */
  insertHeaderBefore(before: string, name: string, value: string): void {
    const i = this.firstLiveField(canonicalName(before));
    const at = i < 0 ? this.index.headersStart : this.index.lineStarts[i]!;
    this.edit(at, at, `${displayName(canonicalName(name))}: ${value}${CRLF}`);
  }

  /** Add a header field at the top of the header section. */
  prependHeader(name: string, value: string): void {
    const at = this.index.headersStart;
    this.edit(at, at, `${displayName(canonicalName(name))}: ${value}${CRLF}`);
  }

  /** Add a header field at the end of the header section (Kamailio's append_hf). */
  appendHeader(name: string, value: string): void {
    const at = this.index.headersEnd;
    this.edit(at, at, `${displayName(canonicalName(name))}: ${value}${CRLF}`);
  }

  /** Remove every field with that name. */
  removeHeader(name: string): number {
    const c = canonicalName(name);
    let n = 0;
    for (let i = this.fieldIndex(c); i >= 0; i = this.fieldIndex(c, i + 1)) {
      this.removeField(i);
      n++;
    }
    return n;
  }

  /** Replace the whole value of the first field with that name, or append the field. */
  setHeader(name: string, value: string): void {
    const i = this.firstLiveField(canonicalName(name));
    if (i < 0) this.appendHeader(name, value);
    else this.edit(this.index.valueStarts[i]!, this.index.valueEnds[i]!, value);
  }

  removeField(i: number): void {
    (this._removedFields ??= new Set()).add(i);
    this.edit(this.index.lineStarts[i]!, this.index.lineEnds[i]!, '');
  }

  /**
   * Remove one value of a list header, by its index in valueLocations(canonical) (indexes
   * refer to the message as received, whatever was removed before): the whole field when no
   * other value of that field survives, else the value and the comma joining it to a
   * surviving neighbour.
   */
  removeValue(canonical: string, valueIndex: number): void {
    const locs = this.valueLocations(canonical);
    const loc = locs[valueIndex];
    if (loc === undefined) throw new RangeError(`no ${canonical} value #${valueIndex}`);
    const removed = (this._removedValues ??= new Set());
    const key = `${canonical}#${valueIndex}`;
    if (removed.has(key) || this._removedFields?.has(loc.field)) return;
    removed.add(key);
    const survivors = locs
      .map((l, i) => ({ l, i }))
      .filter(({ l, i }) => l.field === loc.field && i !== valueIndex && !removed.has(`${canonical}#${i}`));
    if (survivors.length === 0) {
      this.removeField(loc.field);
      return;
    }
    const next = survivors.find(({ i }) => i > valueIndex);
    if (next !== undefined) this.edit(loc.start, next.l.start, '');
    else this.edit(survivors[survivors.length - 1]!.l.end, loc.end, '');
  }

  /**
   * Remove the topmost Via value (§16.7 step 3, on every response): the whole first Via
   * field when it holds only that value, else the value and its comma. The same as
   * removeValue('via', 0), without splitting every Via field.
   */
  removeTopVia(): void {
    const top = this.topVia;
    if (top === undefined) return;
    const i = this.fieldIndex('via');
    const ve = this.index.valueEnds[i]!;
    const b = this.buffer;
    let p = top.end;
    while (p < ve && (b[p] === 32 || b[p] === 9 || b[p] === 13 || b[p] === 10)) p++;
    (this._removedValues ??= new Set()).add('via#0');
    if (p >= ve || b[p] !== 44) {
      this.removeField(i);
      return;
    }
    p++;
    while (p < ve && (b[p] === 32 || b[p] === 9 || b[p] === 13 || b[p] === 10)) p++;
    this.edit(top.start, p, '');
  }

  /** Replace the byte range of one value (e.g. a Via value) with new text. */
  replaceRange(start: number, end: number, text: string): void {
    this.edit(start, end, text);
  }

  /** Insert text at a byte offset (e.g. `;received=...` at the end of the top Via). */
  insertAt(offset: number, text: string): void {
    this.edit(offset, offset, text);
  }

  /**
   * Change the Request-URI (RFC 3261 §16.6 step 2 and §16.4). `uri` (the accessor) follows
   * the change; `requestUriText` stays the Request-URI as received.
   */
  setRequestUri(uri: string): void {
    if (!this.isRequest) throw new Error('setRequestUri on a response');
    this._uri = parseUri(uri);
    this._uriText = uri;
    // The start line is METHOD SP URI SP VERSION; its URI starts after the method and a space.
    const s = this.startLineOffset() + this.method.length + 1;
    this.edit(s, s + Buffer.byteLength(this.requestUriText, 'latin1'), uri);
  }

  /** Offset of the start line (after any leading CRLFs). */
  private startLineOffset(): number {
    const b = this.buffer;
    let p = 0;
    while (b[p] === 13 || b[p] === 10) p++;
    return p;
  }

  private firstLiveField(canonical: string): number {
    for (let i = this.fieldIndex(canonical); i >= 0; i = this.fieldIndex(canonical, i + 1)) {
      if (!this._removedFields?.has(i)) return i;
    }
    return -1;
  }

  /**
   * The message to send: original slices plus the edits, a Content-Length added when the
   * message had none (mandatory on streams, §18.3, and harmless on datagrams), and bytes past
   * the body dropped.
   */
  serialize(): Buffer {
    const { headersEnd, bodyStart, bodyEnd, contentLength } = this.index;
    const start = this.startLineOffset();
    const edits = this._edits;
    const needLength = contentLength === undefined;
    if (edits === undefined && !needLength) {
      return start === 0 && bodyEnd === this.buffer.length ? this.buffer : this.buffer.subarray(start, bodyEnd);
    }
    const list = edits === undefined ? [] : edits.slice();
    if (needLength) list.push({ start: headersEnd, end: headersEnd, text: `Content-Length: ${bodyEnd - bodyStart}${CRLF}`, skip: false });
    // By position; at the same offset insertions go before replacements, and otherwise the
    // order they were made in is kept (Array#sort is stable).
    if (list.length > 1) list.sort((a, b) => a.start - b.start || (a.end === a.start ? 0 : 1) - (b.end === b.start ? 0 : 1));
    // One pass to size the result, one to fill it: a single allocation, no concat.
    let size = 0;
    let pos = start;
    for (const e of list) {
      if (e.start < pos) {
        // Two edits overlap (e.g. a value removed inside a field that was removed): the
        // earlier, wider one wins.
        if (e.end <= pos) {
          e.skip = true;
          continue;
        }
        throw new Error(`overlapping edits at byte ${e.start}`);
      }
      e.skip = false;
      size += e.start - pos + Buffer.byteLength(e.text, 'utf8');
      pos = e.end;
    }
    size += bodyEnd - pos;
    const out = Buffer.allocUnsafe(size);
    let w = 0;
    pos = start;
    for (const e of list) {
      if (e.skip) continue;
      w += this.buffer.copy(out, w, pos, e.start);
      if (e.text.length > 0) w += out.write(e.text, w, 'utf8');
      pos = e.end;
    }
    this.buffer.copy(out, w, pos, bodyEnd);
    return out;
  }
}
