import { describe, expect, it } from 'vitest';
import { StreamFramer, type FramerEvent } from '../../src/sip/framing.js';

const LIMITS = { maxHeaderBytes: 4096, maxBodyBytes: 8192 };

const INVITE =
  'INVITE sip:bob@example.com SIP/2.0\r\n' +
  'Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n' +
  'From: <sip:alice@example.com>;tag=1928301774\r\n' +
  'To: <sip:bob@example.com>\r\n' +
  'Call-ID: a84b4c76e66710\r\n' +
  'CSeq: 314159 INVITE\r\n' +
  'Content-Type: application/sdp\r\n' +
  'Content-Length: 31\r\n' +
  '\r\n' +
  'v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n';

const OPTIONS =
  'OPTIONS sip:pbx@example.com SIP/2.0\r\n' +
  'Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKopt\r\n' +
  'l: 0\r\n' +
  '\r\n';

/** Describe events as strings so whole sequences compare at once. */
function describeEvents(events: readonly FramerEvent[]): string[] {
  return events.map((e) => (e.kind === 'message' ? `message:${e.bytes.toString('latin1')}` : e.kind === 'ping' ? 'ping' : `error:${e.error.code}`));
}

function feed(framer: StreamFramer, ...chunks: (string | Buffer)[]): string[] {
  const out: string[] = [];
  for (const c of chunks) out.push(...describeEvents(framer.push(typeof c === 'string' ? Buffer.from(c, 'latin1') : c)));
  return out;
}

describe('StreamFramer', () => {
  it('checks its own fixture: the INVITE body is exactly 31 bytes', () => {
    expect(Buffer.byteLength(INVITE.slice(INVITE.indexOf('\r\n\r\n') + 4))).toBe(31);
  });

  it('frames one message in one chunk', () => {
    expect(feed(new StreamFramer(LIMITS), INVITE)).toEqual([`message:${INVITE}`]);
  });

  it('frames two pipelined messages split at every byte boundary', () => {
    const stream = Buffer.from(INVITE + OPTIONS, 'latin1');
    for (let split = 0; split <= stream.length; split++) {
      const framer = new StreamFramer(LIMITS);
      const events = feed(framer, stream.subarray(0, split), stream.subarray(split));
      expect(events, `split at ${split}`).toEqual([`message:${INVITE}`, `message:${OPTIONS}`]);
    }
  });

  it('frames messages split at every pair of boundaries (three chunks)', () => {
    const stream = Buffer.from(OPTIONS + OPTIONS, 'latin1');
    for (let a = 0; a <= stream.length; a += 3) {
      for (let b = a; b <= stream.length; b += 5) {
        const framer = new StreamFramer(LIMITS);
        const events = feed(framer, stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b));
        expect(events, `splits at ${a}, ${b}`).toEqual([`message:${OPTIONS}`, `message:${OPTIONS}`]);
      }
    }
  });

  it('frames a stream that arrives one byte at a time', () => {
    const stream = Buffer.from(INVITE + OPTIONS + INVITE, 'latin1');
    const framer = new StreamFramer(LIMITS);
    const events: string[] = [];
    for (let i = 0; i < stream.length; i++) events.push(...feed(framer, stream.subarray(i, i + 1)));
    expect(events).toEqual([`message:${INVITE}`, `message:${OPTIONS}`, `message:${INVITE}`]);
  });

  it('frames many pipelined messages in one chunk', () => {
    const framer = new StreamFramer(LIMITS);
    expect(feed(framer, (INVITE + OPTIONS).repeat(10))).toEqual(
      Array.from({ length: 10 }, () => [`message:${INVITE}`, `message:${OPTIONS}`]).flat(),
    );
  });

  it('reports a CRLFCRLF keep-alive ping between messages (RFC 5626 §3.5.1)', () => {
    const framer = new StreamFramer(LIMITS);
    expect(feed(framer, OPTIONS + '\r\n\r\n' + OPTIONS)).toEqual([`message:${OPTIONS}`, 'ping', `message:${OPTIONS}`]);
    expect(feed(framer, '\r\n\r\n')).toEqual(['ping']);
    expect(feed(framer, '\r\n\r\n\r\n\r\n')).toEqual(['ping', 'ping']);
  });

  it('reports a ping split across chunks once', () => {
    const ping = '\r\n\r\n';
    for (let split = 0; split <= ping.length; split++) {
      const framer = new StreamFramer(LIMITS);
      expect(feed(framer, ping.slice(0, split), ping.slice(split), OPTIONS)).toEqual(['ping', `message:${OPTIONS}`]);
    }
  });

  it('ignores a lone CRLF before a start line (RFC 3261 §7.5)', () => {
    const framer = new StreamFramer(LIMITS);
    expect(feed(framer, '\r\n' + OPTIONS, '\r\n', OPTIONS)).toEqual([`message:${OPTIONS}`, `message:${OPTIONS}`]);
  });

  it('treats a message without Content-Length as having an empty body (RFC 3261 §18.3)', () => {
    const noLength = 'ACK sip:bob@example.com SIP/2.0\r\nCall-ID: x\r\n\r\n';
    const framer = new StreamFramer(LIMITS);
    expect(feed(framer, noLength + OPTIONS)).toEqual([`message:${noLength}`, `message:${OPTIONS}`]);
  });

  it('reads Content-Length in any case, compact form, spaces before the colon and a folded value', () => {
    const variants = ['content-length: 5', 'CONTENT-LENGTH:5', 'Content-Length \t:   5  ', 'L:5', 'l : 5', 'Content-Length:\r\n  5'];
    for (const header of variants) {
      const message = `MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\n${header}\r\n\r\nhello`;
      const framer = new StreamFramer(LIMITS);
      expect(feed(framer, message + OPTIONS), header).toEqual([`message:${message}`, `message:${OPTIONS}`]);
    }
  });

  it('does not mistake other headers starting with l or c for Content-Length', () => {
    const message = 'MESSAGE sip:a@b SIP/2.0\r\nContact: <sip:a@b>\r\nLocation: 99\r\nContent-Type: text/plain\r\nl: 2\r\n\r\nhi';
    expect(feed(new StreamFramer(LIMITS), message)).toEqual([`message:${message}`]);
  });

  it('fails on a Content-Length that is not digits', () => {
    for (const value of ['abc', '-1', '1.5', '', '12 34', '0x10']) {
      const framer = new StreamFramer(LIMITS);
      const events = framer.push(Buffer.from(`MESSAGE sip:a@b SIP/2.0\r\nContent-Length: ${value}\r\n\r\n`, 'latin1'));
      expect(describeEvents(events), `'${value}'`).toEqual(['error:E_SIP_FRAMING_BAD_CONTENT_LENGTH']);
      expect(framer.failed).toBe(true);
      // A failed framer stays failed: later bytes produce nothing.
      expect(framer.push(Buffer.from(OPTIONS, 'latin1'))).toEqual([]);
    }
  });

  it('fails on two different Content-Length values', () => {
    const framer = new StreamFramer(LIMITS);
    expect(feed(framer, 'MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 2\r\nl: 3\r\n\r\nabc')).toEqual([
      'error:E_SIP_FRAMING_BAD_CONTENT_LENGTH',
    ]);
  });

  it('fails on a Content-Length beyond maxBodyBytes, however many digits it has', () => {
    for (const value of ['8193', '99999999999999999999999999999']) {
      const framer = new StreamFramer(LIMITS);
      expect(feed(framer, `MESSAGE sip:a@b SIP/2.0\r\nContent-Length: ${value}\r\n\r\n`)).toEqual(['error:E_SIP_FRAMING_BODY_TOO_LARGE']);
    }
    // Exactly the limit is fine.
    const body = 'x'.repeat(8192);
    const atLimit = `MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 8192\r\n\r\n${body}`;
    expect(feed(new StreamFramer(LIMITS), atLimit)).toEqual([`message:${atLimit}`]);
  });

  it('fails when the header section exceeds maxHeaderBytes without CRLFCRLF, in one chunk or many', () => {
    const endless = 'MESSAGE sip:a@b SIP/2.0\r\n' + 'X-Filler: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n'.repeat(200);
    expect(endless.length).toBeGreaterThan(LIMITS.maxHeaderBytes);
    expect(feed(new StreamFramer(LIMITS), endless)).toEqual(['error:E_SIP_FRAMING_HEADER_TOO_LARGE']);

    const framer = new StreamFramer(LIMITS);
    const events: string[] = [];
    const bytes = Buffer.from(endless, 'latin1');
    for (let i = 0; i < bytes.length && !framer.failed; i += 7) events.push(...feed(framer, bytes.subarray(i, i + 7)));
    expect(events).toEqual(['error:E_SIP_FRAMING_HEADER_TOO_LARGE']);
    expect(framer.bufferedBytes).toBe(0);
  });

  it('accepts a header section of exactly maxHeaderBytes', () => {
    const start = 'MESSAGE sip:a@b SIP/2.0\r\nX-Pad: ';
    const pad = 'p'.repeat(LIMITS.maxHeaderBytes - start.length - 4);
    const message = `${start}${pad}\r\n\r\n`;
    expect(Buffer.byteLength(message)).toBe(LIMITS.maxHeaderBytes);
    expect(feed(new StreamFramer(LIMITS), message)).toEqual([`message:${message}`]);
    const framer = new StreamFramer(LIMITS);
    const events: string[] = [];
    for (let i = 0; i < message.length; i += 100) events.push(...feed(framer, message.slice(i, i + 100)));
    expect(events).toEqual([`message:${message}`]);
  });

  it('emits a message that arrives whole as a slice of the chunk, without copying', () => {
    const chunk = Buffer.from(OPTIONS + OPTIONS, 'latin1');
    const events = new StreamFramer(LIMITS).push(chunk);
    expect(events).toHaveLength(2);
    const second = events[1]!;
    expect(second.kind).toBe('message');
    if (second.kind === 'message') expect(second.bytes.buffer).toBe(chunk.buffer);
  });

  it('frames a large body delivered byte by byte', () => {
    // 8 KiB body one byte at a time: every byte seen once; a quadratic framer would still
    // pass, but this at least covers the long Body path and its final concatenation.
    const body = Buffer.alloc(8192, 0x61);
    const message = Buffer.concat([Buffer.from('MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 8192\r\n\r\n', 'latin1'), body]);
    const framer = new StreamFramer(LIMITS);
    const out: FramerEvent[] = [];
    for (let i = 0; i < message.length; i++) out.push(...framer.push(message.subarray(i, i + 1)));
    expect(out).toHaveLength(1);
    expect(out[0]!.kind === 'message' && out[0]!.bytes.equals(message)).toBe(true);
  });
});
