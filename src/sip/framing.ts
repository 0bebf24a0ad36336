/**
 * Framing SIP messages on a byte stream (TCP), independent of sockets.
 *
 * RFC 3261 §18.3: on a stream transport the header section ends at the first empty line
 * (CRLFCRLF) and Content-Length gives the body length; Content-Length MUST be present on
 * streams, but a message without one is framed with an empty body (the parser may still
 * reject it). RFC 5626 §3.5.1: a double CRLF "ping" between messages is answered with a
 * single CRLF "pong". RFC 3261 §7.5: a lone CRLF preceding a start line is ignored.
 *
 * Anything that cannot be framed (a Content-Length that is not digits or is too big, a
 * header section that never ends) is fatal: the caller closes the connection rather than
 * buffering an unbounded amount of data it will never be able to split.
 *
 * Cost: every byte is scanned for the terminator once, even when data arrives byte by
 * byte; a message that arrives in one chunk is emitted as a slice of that chunk (no copy);
 * one that spans chunks is copied once into a buffer of its final size. What one stream
 * can make the framer hold is bounded by maxHeaderBytes + maxBodyBytes.
 */
import { SipctlError } from '../errors.js';

export interface FramerOptions {
  /** Largest header section (start line + headers + CRLFCRLF), in bytes. */
  readonly maxHeaderBytes: number;
  /** Largest body (Content-Length value), in bytes. */
  readonly maxBodyBytes: number;
}

export type FramerEvent =
  /** One complete message: start line, headers, empty line and exactly Content-Length bytes of body. */
  | { readonly kind: 'message'; readonly bytes: Buffer }
  /** RFC 5626 §3.5.1 keep-alive ping (CRLFCRLF between messages): answer with one CRLF. */
  | { readonly kind: 'ping' }
  /** The stream cannot be framed; close the connection. No further events follow. */
  | { readonly kind: 'error'; readonly error: SipctlError };

/** The answer to a keep-alive ping (RFC 5626 §3.5.1: a single CRLF "pong"). */
export const KEEPALIVE_PONG: Buffer = Buffer.from('\r\n', 'latin1');

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const HEADER_TERMINATOR = Buffer.from('\r\n\r\n', 'latin1');
const CONTENT_LENGTH_LOWER = Buffer.from('content-length', 'latin1');

const NO_EVENTS: readonly FramerEvent[] = Object.freeze([]);
const PING_EVENT: FramerEvent = Object.freeze({ kind: 'ping' });

/** Where the framer is in the stream. */
const enum State {
  /** Between messages: skipping CRLFs, counting them for keep-alive pings. */
  Between,
  /** Inside a header section, looking for CRLFCRLF. */
  Header,
  /** Header section done, collecting `bodyRemaining` more body bytes. */
  Body,
  /** A fatal error was reported; everything else is ignored. */
  Failed,
}

/** Progress through the CRLF run between messages: "", "\r", "\r\n", "\r\n\r". */
const enum CrlfRun {
  Empty,
  Cr,
  Crlf,
  CrlfCr,
}

export class StreamFramer {
  private readonly maxHeaderBytes: number;
  private readonly maxBodyBytes: number;

  private state: State = State.Between;
  private crlfRun: CrlfRun = CrlfRun.Empty;

  /** Header bytes gathered across chunks (only when a header section spans chunks). */
  private head: Buffer | null = null;
  private headLength = 0;
  /** Bytes of `head` already searched for CRLFCRLF without a match ending inside them. */
  private headScanned = 0;

  /**
   * The message being completed, allocated at its final size once Content-Length is
   * known (bounded by maxHeaderBytes + maxBodyBytes), so a body trickling in byte by byte
   * costs one copy per byte and no per-chunk bookkeeping.
   */
  private message: Buffer | null = null;
  private messageFilled = 0;

  constructor(options: FramerOptions) {
    this.maxHeaderBytes = options.maxHeaderBytes;
    this.maxBodyBytes = options.maxBodyBytes;
  }

  /**
   * Feed the next bytes of the stream. Returns the events they complete, in stream order.
   * The chunk must not be modified afterwards: emitted messages may be slices of it.
   */
  push(chunk: Buffer): readonly FramerEvent[] {
    let events: FramerEvent[] | null = null;
    let pos = 0;
    const end = chunk.length;

    while (pos < end) {
      switch (this.state) {
        case State.Failed:
          return events ?? NO_EVENTS;

        case State.Between: {
          const byte = chunk[pos]!;
          if (byte === CR) {
            this.crlfRun = this.crlfRun === CrlfRun.Crlf ? CrlfRun.CrlfCr : CrlfRun.Cr;
            pos++;
          } else if (byte === LF) {
            if (this.crlfRun === CrlfRun.CrlfCr) {
              // RFC 5626 §3.5.1: CRLFCRLF between messages is a ping.
              (events ??= []).push(PING_EVENT);
              this.crlfRun = CrlfRun.Empty;
            } else {
              // First CRLF of a run (or a bare LF): RFC 3261 §7.5 lets us ignore it.
              this.crlfRun = CrlfRun.Crlf;
            }
            pos++;
          } else {
            // A start line begins; a dangling lone CRLF before it is ignored (RFC 3261 §7.5).
            this.crlfRun = CrlfRun.Empty;
            this.state = State.Header;
          }
          break;
        }

        case State.Header:
          pos = this.headLength === 0 ? this.scanHeaderInChunk(chunk, pos, (events ??= [])) : this.scanHeaderAcrossChunks(chunk, pos, (events ??= []));
          break;

        case State.Body: {
          const message = this.message!;
          const take = Math.min(message.length - this.messageFilled, end - pos);
          chunk.copy(message, this.messageFilled, pos, pos + take);
          this.messageFilled += take;
          pos += take;
          if (this.messageFilled === message.length) {
            this.message = null;
            this.messageFilled = 0;
            this.state = State.Between;
            (events ??= []).push({ kind: 'message', bytes: message });
          }
          break;
        }
      }
    }
    return events ?? NO_EVENTS;
  }

  /**
   * True while a message has begun (its first start-line byte arrived) but is not yet
   * complete; false between messages, including inside a run of keep-alive CRLFs. The TCP
   * transport times a message from its first byte with this (slow-loris defence).
   */
  get messageInProgress(): boolean {
    return this.state === State.Header || this.state === State.Body;
  }

  /** True once a fatal error has been reported. */
  get failed(): boolean {
    return this.state === State.Failed;
  }

  /** Bytes held for an incomplete message (for diagnostics). */
  get bufferedBytes(): number {
    return this.headLength + this.messageFilled;
  }

  /**
   * The message starts at `pos` of this chunk and nothing of it is buffered: look for the
   * terminator in the chunk itself, so that a whole message is emitted as one slice.
   */
  private scanHeaderInChunk(chunk: Buffer, pos: number, events: FramerEvent[]): number {
    const limit = Math.min(chunk.length, pos + this.maxHeaderBytes);
    const found = chunk.indexOf(HEADER_TERMINATOR, pos);
    if (found !== -1 && found + 4 <= limit) {
      const headerEnd = found + 4;
      const bodyLength = this.bodyLengthOf(chunk, pos, headerEnd, events);
      if (bodyLength < 0) return chunk.length;
      if (headerEnd + bodyLength <= chunk.length) {
        // Whole message in this chunk: one slice, no copy.
        events.push({ kind: 'message', bytes: chunk.subarray(pos, headerEnd + bodyLength) });
        this.state = State.Between;
        return headerEnd + bodyLength;
      }
      this.startBody(chunk.subarray(pos, headerEnd), bodyLength);
      return headerEnd;
    }
    if (chunk.length - pos >= this.maxHeaderBytes) {
      this.fail(events, headerTooLarge(this.maxHeaderBytes));
      return chunk.length;
    }
    // Incomplete header section: keep it; scanning resumes where this search stopped.
    this.appendHead(chunk, pos, chunk.length);
    this.headScanned = this.headLength;
    return chunk.length;
  }

  /**
   * Part of the header section is buffered. Copy at most what can still belong to the
   * header section (bounded by maxHeaderBytes) and search only the bytes not searched yet
   * (minus 3, for a terminator straddling the old end), so byte-by-byte arrival stays linear.
   */
  private scanHeaderAcrossChunks(chunk: Buffer, pos: number, events: FramerEvent[]): number {
    const before = this.headLength;
    const room = this.maxHeaderBytes - before;
    const copied = Math.min(room, chunk.length - pos);
    this.appendHead(chunk, pos, pos + copied);
    const head = this.head!;
    const searchFrom = Math.max(0, this.headScanned - 3);
    const found = head.subarray(0, this.headLength).indexOf(HEADER_TERMINATOR, searchFrom);
    if (found === -1) {
      if (this.headLength >= this.maxHeaderBytes) {
        this.fail(events, headerTooLarge(this.maxHeaderBytes));
        return chunk.length;
      }
      this.headScanned = this.headLength;
      return pos + copied;
    }
    const headerEnd = found + 4;
    // Bytes copied past the terminator belong to the body or the next message: they are
    // not consumed here but read again from the chunk.
    const consumed = headerEnd - before;
    const header = head.subarray(0, headerEnd);
    this.head = null;
    this.headLength = 0;
    this.headScanned = 0;
    const bodyLength = this.bodyLengthOf(header, 0, headerEnd, events);
    if (bodyLength < 0) return chunk.length;
    if (bodyLength === 0) {
      events.push({ kind: 'message', bytes: header });
      this.state = State.Between;
    } else {
      this.startBody(header, bodyLength);
    }
    return pos + consumed;
  }

  private startBody(header: Buffer, bodyLength: number): void {
    const message = Buffer.allocUnsafe(header.length + bodyLength);
    header.copy(message, 0);
    this.message = message;
    this.messageFilled = header.length;
    this.state = State.Body;
  }

  /** Append chunk[from, to) to the header buffer, growing it geometrically (capped). */
  private appendHead(chunk: Buffer, from: number, to: number): void {
    const needed = this.headLength + (to - from);
    let head = this.head;
    if (head === null || head.length < needed) {
      const capacity = Math.min(this.maxHeaderBytes, Math.max(needed, 512, (head?.length ?? 0) * 2));
      const grown = Buffer.allocUnsafe(capacity);
      if (head !== null) head.copy(grown, 0, 0, this.headLength);
      head = this.head = grown;
    }
    chunk.copy(head, this.headLength, from, to);
    this.headLength = needed;
  }

  /**
   * The body length announced by the header section buf[start, end) (which ends with
   * CRLFCRLF): the value of Content-Length / `l` (RFC 3261 §20.14, §7.3.3 compact form),
   * 0 when absent. Returns -1 after reporting a fatal error.
   */
  private bodyLengthOf(buf: Buffer, start: number, end: number, events: FramerEvent[]): number {
    let announced = -1;
    // The first line is the start line; header lines follow, each ending in CRLF.
    let lineStart = buf.indexOf(LF, start) + 1;
    while (lineStart > 0 && lineStart < end - 2) {
      const valueStart = contentLengthValueStart(buf, lineStart, end);
      const nextLf = buf.indexOf(LF, lineStart);
      if (valueStart !== -1) {
        const value = parseLengthValue(buf, valueStart, end, this.maxBodyBytes);
        if (value === BAD_LENGTH) {
          this.fail(events, badContentLength(buf, lineStart, end));
          return -1;
        }
        if (value === HUGE_LENGTH) {
          this.fail(events, bodyTooLarge(this.maxBodyBytes));
          return -1;
        }
        if (announced !== -1 && announced !== value) {
          // Two different lengths: framing would be a guess, and guessing is how request
          // smuggling happens.
          this.fail(events, conflictingContentLength(announced, value));
          return -1;
        }
        announced = value;
      }
      if (nextLf === -1) break;
      lineStart = nextLf + 1;
    }
    return announced === -1 ? 0 : announced;
  }

  private fail(events: FramerEvent[], error: SipctlError): void {
    this.state = State.Failed;
    this.head = null;
    this.headLength = 0;
    this.message = null;
    this.messageFilled = 0;
    events.push({ kind: 'error', error });
  }
}

/**
 * If the header line at `lineStart` is Content-Length (or its compact form `l`), the
 * offset just after its colon, else -1. Header names are case-insensitive and HCOLON
 * allows spaces and tabs before the colon (RFC 3261 §7.3.1, §25.1). Continuation lines
 * (starting with SP / HTAB) are not header lines.
 */
function contentLengthValueStart(buf: Buffer, lineStart: number, end: number): number {
  const first = buf[lineStart]! | 0x20;
  let p: number;
  if (first === 0x6c /* l */) {
    p = lineStart + 1;
  } else if (first === 0x63 /* c */) {
    const nameEnd = lineStart + CONTENT_LENGTH_LOWER.length;
    if (nameEnd > end) return -1;
    for (let i = 1; i < CONTENT_LENGTH_LOWER.length; i++) {
      if ((buf[lineStart + i]! | 0x20) !== CONTENT_LENGTH_LOWER[i]) return -1;
    }
    p = nameEnd;
  } else {
    return -1;
  }
  while (p < end && (buf[p] === SP || buf[p] === HTAB)) p++;
  return p < end && buf[p] === COLON ? p + 1 : -1;
}

const BAD_LENGTH = -1;
const HUGE_LENGTH = -2;

/**
 * Parse `SWS 1*DIGIT` then optional trailing whitespace up to the end of the header line
 * (RFC 3261 §20.14, §25.1: SWS may include a line fold, CRLF followed by SP / HTAB).
 * Returns the value, BAD_LENGTH, or HUGE_LENGTH when it exceeds `max`.
 */
function parseLengthValue(buf: Buffer, from: number, end: number, max: number): number {
  let p = skipLinearWhitespace(buf, from, end);
  let value = 0;
  let digits = 0;
  let huge = false;
  while (p < end) {
    const c = buf[p]!;
    if (c < 0x30 || c > 0x39) break;
    if (!huge) {
      value = value * 10 + (c - 0x30);
      if (value > max) huge = true;
    }
    digits++;
    p++;
  }
  if (digits === 0) return BAD_LENGTH;
  p = skipLinearWhitespace(buf, p, end);
  // The value must end the header line: CRLF not followed by a fold.
  if (p + 1 >= end || buf[p] !== CR || buf[p + 1] !== LF) return BAD_LENGTH;
  return huge ? HUGE_LENGTH : value;
}

/** Skip SP / HTAB and line folds (CRLF followed by SP / HTAB). */
function skipLinearWhitespace(buf: Buffer, p: number, end: number): number {
  for (;;) {
    while (p < end && (buf[p] === SP || buf[p] === HTAB)) p++;
    if (p + 2 < end && buf[p] === CR && buf[p + 1] === LF && (buf[p + 2] === SP || buf[p + 2] === HTAB)) {
      p += 3;
      continue;
    }
    return p;
  }
}

function headerTooLarge(max: number): SipctlError {
  return new SipctlError(
    'E_SIP_FRAMING_HEADER_TOO_LARGE',
    `SIP stream sent ${max} bytes without ending the header section (no empty line, CRLFCRLF); ` +
      `closing the connection (raise maxHeaderBytes if such headers are legitimate)`,
  );
}

function bodyTooLarge(max: number): SipctlError {
  return new SipctlError(
    'E_SIP_FRAMING_BODY_TOO_LARGE',
    `SIP stream announced a Content-Length over the ${max}-byte limit; closing the connection ` +
      `(raise maxBodyBytes if such bodies are legitimate)`,
  );
}

function conflictingContentLength(a: number, b: number): SipctlError {
  return new SipctlError(
    'E_SIP_FRAMING_BAD_CONTENT_LENGTH',
    `SIP stream message has two different Content-Length values (${a} and ${b}); closing the connection`,
  );
}

function badContentLength(buf: Buffer, lineStart: number, end: number): SipctlError {
  let lineEnd = buf.indexOf(CR, lineStart);
  if (lineEnd === -1 || lineEnd > end) lineEnd = end;
  // Show the offending line, bounded and printable, so a person can find the sender's bug.
  const line = buf
    .toString('latin1', lineStart, Math.min(lineEnd, lineStart + 80))
    .replace(/[^\x20-\x7e]/g, '?');
  return new SipctlError(
    'E_SIP_FRAMING_BAD_CONTENT_LENGTH',
    `SIP stream message has a Content-Length that is not a number ('${line}'); ` +
      `it must be digits only, e.g. 'Content-Length: 0'; closing the connection`,
  );
}
