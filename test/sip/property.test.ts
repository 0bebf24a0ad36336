/**
 * Property-based tests of the parser and the edit model (fast-check), over the fixture corpus:
 * the RFC 4475 torture messages and the messages a proxy sees every second.
 *
 * 1. Random byte mutations: parseMessage and every accessor return or throw SipParseError,
 *    nothing else; and a message nobody edited serializes to its own bytes.
 * 2. Random sequences of edits (insert / prepend / append / set / remove a header, remove a
 *    list value by its index as received or by a value read before, remove the top Via, set the Request-URI,
 *    received/rport and other replacements inside a Via, remove a field): the serialized
 *    message parses again, and every accessor of the edited message says what that parse says.
 *
 * `make test` runs a fixed seed for a few seconds; `make fuzz` runs longer with a fresh seed
 * (FUZZ_RUNS, FUZZ_SEED). A failure prints the seed and the shrunk counterexample.
 */
import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SipParseError } from '../../src/sip/errors.js';
import type { SipMessage } from '../../src/sip/message.js';
import { parseMessage } from '../../src/sip/parse.js';
import type { NameAddr, Via } from '../../src/sip/values.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : process.env.FUZZ_RUNS !== undefined ? Date.now() % 2 ** 31 : 20260418;
// Long runs need more than the default minute.
const TIMEOUT = Math.max(60_000, RUNS * 200);
const PARAMS = { seed: SEED, numRuns: RUNS } as const;
if (process.env.FUZZ_RUNS !== undefined) console.log(`property tests: FUZZ_RUNS=${RUNS} FUZZ_SEED=${SEED}`);

// ------------------------------------------------------------------ the corpus

const crlf = (s: string): Buffer => Buffer.from(s.replace(/^\n/, '').replace(/\r?\n/g, '\r\n'), 'latin1');

const TYPICAL: Buffer[] = [
  crlf(`
INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport, SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bKabc;received=10.0.0.9
v: SIP/2.0/UDP [2001:db8::9]:5062;branch=z9hG4bKv6;rport
Max-Forwards: 70
Route: <sip:p1.example.com;lr>,
 <sip:p2.example.com;lr>
Record-Route: <sip:rr.example.com;lr>
To: Bob <sip:bob@biloxi.example.com>
f: "Alice \\"A\\" Liddell" <sip:alice@atlanta.example.com;transport=tcp>;tag=1928301774
i: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:alice@pc33.atlanta.example.com>, "Two, comma" <sip:two@[2001:db8::1]:5080;lr>;q=0.5
Subject: I know you're
 there, pick up the phone
Content-Type: text/plain
l: 4

body`),
  crlf(`
SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsc.0123
Via: SIP/2.0/UDP 127.0.0.1:5101;branch=z9hG4bK-1;received=127.0.0.1;rport=5101
Record-Route: <sip:127.0.0.1:5060;transport=udp;lr>
From: "bench" <sip:caller1@127.0.0.1:5101>;tag=21003c1
To: <sip:bench@127.0.0.1:5060>;tag=21010s1
Call-ID: 1-21003@127.0.0.1
CSeq: 1 INVITE
Contact: <sip:pbx@127.0.0.1:5070;transport=UDP>
Content-Length: 0

`),
  crlf(`
REGISTER sip:registrar.example.com SIP/2.0
Via: SIP/2.0/TCP 192.0.2.4:5060;branch=z9hG4bKnashds7
Max-Forwards: 70
To: Bob <sip:bob@example.com>
From: Bob <sip:bob@example.com>;tag=456248
Call-ID: 843817637684230@998sdasdh09
CSeq: 1826 REGISTER
Contact: *
Expires: 0

`),
];

const RFC4475 = new URL('../fixtures/rfc4475/', import.meta.url);
const CORPUS: Buffer[] = [
  ...TYPICAL,
  ...readdirSync(RFC4475)
    .filter((f) => f.endsWith('.dat'))
    .sort()
    .map((f) => readFileSync(new URL(f, RFC4475))),
];
const PARSABLE = CORPUS.filter((b) => attempt(() => parseMessage(b)).ok);

// ------------------------------------------------------------------ helpers

type Attempt<T> = { ok: true; value: T } | { ok: false; error: unknown };

function attempt<T>(f: () => T): Attempt<T> {
  try {
    return { ok: true, value: f() };
  } catch (error) {
    return { ok: false, error };
  }
}

/** A value, or the reason a SipParseError gave; anything else thrown is a failure. */
function outcome(what: string, f: () => unknown): unknown {
  const r = attempt(f);
  if (r.ok) return r.value;
  if (r.error instanceof SipParseError) return `SipParseError: ${r.error.reason}`;
  throw new Error(`${what} threw ${String(r.error)} (only SipParseError is allowed)`, { cause: r.error });
}

/** A Via or name-addr without its offsets (the edited message's differ from a fresh parse's). */
const viaValue = (v: Via | undefined): unknown => (v === undefined ? undefined : { ...v, start: 0, end: 0, rportStart: 0, rportEnd: 0, receivedStart: 0, receivedEnd: 0 });
const nameAddrValue = (n: NameAddr): unknown => ({
  displayName: n.displayName,
  uriText: n.uriText,
  params: [...n.params],
  tag: n.tag,
  uri: outcome('uri', () => n.uri.toString()),
});

/**
 * Everything the message says about itself through its accessors. `fields` is how many
 * header fields to describe (serialize() appends a Content-Length to a message that has none,
 * which the accessors of the edited message do not list).
 */
function view(m: SipMessage, dropLast = false): Record<string, unknown> {
  const sent = m.fieldsAsSent();
  if (dropLast) sent.pop();
  const names = sent.map((f) => f.name);
  const byName: Record<string, unknown> = {};
  for (const n of new Set(names)) {
    if (n === 'content-length') continue;
    byName[n] = {
      header: outcome(`header(${n})`, () => m.header(n)),
      fields: outcome(`headerFields(${n})`, () => m.headerFields(n)),
      values: outcome(`headerValues(${n})`, () => m.headerValues(n)),
    };
  }
  return {
    start: [m.isRequest, m.method, m.status, m.reason, m.version],
    uriText: m.isRequest ? m.currentUriText : undefined,
    uri: m.isRequest ? outcome('uri', () => m.uri.toString()) : undefined,
    names,
    raw: sent.map((f) => f.raw),
    values: sent.map((f) => f.value),
    byName,
    topVia: outcome('topVia', () => viaValue(m.topVia)),
    vias: outcome('vias', () => m.vias.map(viaValue)),
    from: outcome('from', () => nameAddrValue(m.from)),
    to: outcome('to', () => nameAddrValue(m.to)),
    callId: outcome('callId', () => m.callId),
    cseq: outcome('cseq', () => m.cseq),
    maxForwards: outcome('maxForwards', () => m.maxForwards),
    routes: outcome('routes', () => m.routes.map(nameAddrValue)),
    recordRoutes: outcome('recordRoutes', () => m.recordRoutes.map(nameAddrValue)),
    contacts: outcome('contacts', () => {
      const c = m.contacts;
      return c === '*' ? '*' : c.map(nameAddrValue);
    }),
    body: m.body.toString('latin1'),
  };
}

/** What serialize() must give for a message nobody edited: its own bytes (plus a Content-Length when it has none). */
function ownBytes(m: SipMessage): Buffer {
  const b = m.buffer;
  let start = 0;
  while (b[start] === 13 || b[start] === 10) start++;
  const { headersEnd, bodyStart, bodyEnd, contentLength } = m.index;
  if (contentLength !== undefined) return b.subarray(start, bodyEnd);
  return Buffer.concat([b.subarray(start, headersEnd), Buffer.from(`Content-Length: ${bodyEnd - bodyStart}\r\n`), b.subarray(headersEnd, bodyEnd)]);
}

// ------------------------------------------------------------------ mutations

const SNIPPETS = ['\r\n', '\r\n ', '\n', '\r', ',', ';', ':', '<', '>', '"', '\\', ' ', '\t', '\0', '\xff', '\xc3\x28', '=', '@', '%', '[', ']',
  'SIP/2.0', 'Via: ', 'v: SIP/2.0/UDP h', 'Route: <sip:x;lr>', 'Content-Length: 5', 'l: 0', ';rport', ';branch=z9hG4bK', ';received=', ', ', '\r\n\r\n'];

type Mutation =
  | { kind: 'flip'; at: number; byte: number }
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'delete'; at: number; len: number }
  | { kind: 'duplicate'; at: number; len: number }
  | { kind: 'truncate'; at: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.oneof(fc.constantFrom(...SNIPPETS), fc.string({ unit: 'binary-ascii', maxLength: 4 })) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 24 }) }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 60 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);

function mutate(bytes: Buffer, ms: Mutation[]): Buffer {
  let b = bytes;
  for (const m of ms) {
    const at = b.length === 0 ? 0 : m.at % (b.length + 1);
    switch (m.kind) {
      case 'flip':
        if (b.length === 0) break;
        b = Buffer.from(b);
        b[at % b.length] = m.byte;
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), Buffer.from(m.text, 'latin1'), b.subarray(at)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
        break;
      case 'duplicate':
        b = Buffer.concat([b.subarray(0, at + m.len), b.subarray(at, at + m.len), b.subarray(at + m.len)]);
        break;
      case 'truncate':
        b = b.subarray(0, at);
        break;
    }
  }
  return b;
}

const corpusArb = fc.constantFrom(...CORPUS);
const mutatedArb = fc.tuple(corpusArb, fc.array(mutationArb, { minLength: 1, maxLength: 5 })).map(([b, ms]) => mutate(b, ms));

// ------------------------------------------------------------------ edits

const NAMES = ['Via', 'v', 'Max-Forwards', 'Route', 'Record-Route', 'Contact', 'm', 'X-Test', 'Subject', 'From', 'To', 'Call-ID', 'CSeq', 'Supported', 'l', 'X Bad'];
const LIST_NAMES = ['via', 'route', 'record-route', 'contact', 'supported'];
const VALUES = [
  '70', '0', '69', 'x', '', '  padded  ', 'SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKnew;rport', 'SIP/2.0/TCP h;branch=z9hG4bK1, SIP/2.0/UDP g;rport',
  '<sip:a.example.com;lr>', '<sip:a.example.com;lr>, <sip:b.example.com;lr>', '"Quoted, name" <sip:q@example.com>;tag=9', 'sip:plain@example.com;tag=1',
  '1 INVITE', 'c@h', 'üñí ©', 'a\r\nInjected: yes', 'line\nbreak', '"unterminated', 'a,,b', ',', ';', '<', '*',
];
const valueArb = fc.oneof(fc.constantFrom(...VALUES), fc.string({ maxLength: 12 }));
const URIS = ['sip:bob@10.0.0.2:5070', 'sip:x@[2001:db8::1];transport=tcp', 'tel:+15551234567', 'sips:a@b;lr', 'sip:a b@c', 'sip:ü@example.com', 'not a uri', 'sip:'];

type Edit =
  | { op: 'insertBefore'; before: string; name: string; value: string }
  | { op: 'prepend' | 'append' | 'set'; name: string; value: string }
  | { op: 'remove'; name: string }
  | { op: 'removeValue'; name: string; index: number }
  | { op: 'remember'; name: string }
  | { op: 'removeRemembered'; pick: number }
  | { op: 'removeTopVia' }
  | { op: 'setRequestUri'; uri: string }
  | { op: 'received'; port: number }
  | { op: 'viaEdit'; pick: number; how: 'replace' | 'insertEnd' | 'insertStart'; text: string; stale: boolean }
  | { op: 'removeField'; index: number }
  | { op: 'read' };

const editArb: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ op: fc.constant('insertBefore' as const), before: fc.constantFrom(...NAMES), name: fc.constantFrom(...NAMES), value: valueArb }),
  fc.record({ op: fc.constantFrom('prepend' as const, 'append' as const, 'set' as const), name: fc.constantFrom(...NAMES), value: valueArb }),
  fc.record({ op: fc.constant('remove' as const), name: fc.constantFrom(...NAMES) }),
  fc.record({ op: fc.constant('removeValue' as const), name: fc.constantFrom(...LIST_NAMES), index: fc.nat(4) }),
  fc.record({ op: fc.constant('remember' as const), name: fc.constantFrom('via', 'route', 'record-route', 'contact') }),
  fc.record({ op: fc.constant('removeRemembered' as const), pick: fc.nat() }),
  fc.constant({ op: 'removeTopVia' as const }),
  fc.record({ op: fc.constant('setRequestUri' as const), uri: fc.constantFrom(...URIS) }),
  fc.record({ op: fc.constant('received' as const), port: fc.integer({ min: 1, max: 65535 }) }),
  fc.record({
    op: fc.constant('viaEdit' as const),
    pick: fc.nat(),
    how: fc.constantFrom('replace' as const, 'insertEnd' as const, 'insertStart' as const),
    text: fc.constantFrom('SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKr', ';x=1', 'SIP/2.0/UDP a, SIP/2.0/UDP b', '', ';received=1.2.3.4', ' ; y = "q,uo" '),
    stale: fc.boolean(),
  }),
  fc.record({ op: fc.constant('removeField' as const), index: fc.nat(60) }),
  fc.constant({ op: 'read' as const }),
);

/** Errors an edit may throw on purpose: a clear Error (or RangeError) for a refused edit, SipParseError for a bad value it had to read. */
function expectedEditError(err: unknown): boolean {
  return err instanceof SipParseError || (err instanceof Error && (err.constructor === Error || err.constructor === RangeError));
}

function applyEdit(m: SipMessage, e: Edit, remembered: Array<{ name: string; value: { start: number } }>, staleVias: Via[]): void {
  switch (e.op) {
    case 'insertBefore':
      return m.insertHeaderBefore(e.before, e.name, e.value);
    case 'prepend':
      return m.prependHeader(e.name, e.value);
    case 'append':
      return m.appendHeader(e.name, e.value);
    case 'set':
      return m.setHeader(e.name, e.value);
    case 'remove':
      void m.removeHeader(e.name);
      return;
    case 'removeValue':
      void m.removeValue(e.name, e.index);
      return;
    case 'remember': {
      const values: Array<{ start: number }> =
        e.name === 'via' ? m.vias : e.name === 'route' ? m.routes : e.name === 'record-route' ? m.recordRoutes : m.contacts === '*' ? [] : (m.contacts as NameAddr[]);
      for (const value of values) remembered.push({ name: e.name, value });
      return;
    }
    case 'removeRemembered': {
      const r = remembered[e.pick % Math.max(1, remembered.length)];
      if (r !== undefined) void m.removeValue(r.name, r.value);
      return;
    }
    case 'removeTopVia':
      return m.removeTopVia();
    case 'setRequestUri':
      return m.setRequestUri(e.uri);
    case 'received': {
      // What the core does on a request it forwards (RFC 3261 §18.2.1, RFC 3581 §4).
      const top = m.topVia;
      if (top === undefined) return;
      if (top.rport === null) m.replaceRange(top.rportStart, top.rportEnd, `rport=${e.port}`);
      if (top.received === undefined) m.insertAt(top.end, ';received=192.0.2.200');
      return;
    }
    case 'viaEdit': {
      const vias = e.stale && staleVias.length > 0 ? staleVias : m.vias;
      if (!e.stale) staleVias.splice(0, staleVias.length, ...vias);
      const v = vias[e.pick % Math.max(1, vias.length)];
      if (v === undefined) return;
      if (e.how === 'replace') m.replaceRange(v.start, v.end, e.text);
      else if (e.how === 'insertEnd') m.insertAt(v.end, e.text);
      else m.insertAt(v.start, e.text);
      return;
    }
    case 'removeField':
      // An index as received (fieldIndex).
      if (m.headerCount > 0) void m.removeField(e.index % m.headerCount);
      return;
    case 'read':
      void view(m);
      return;
  }
}

// ------------------------------------------------------------------ the properties

describe('the parser under random mutations of the corpus (fast-check)', () => {
  it('parses every message of the corpus that RFC 4475 calls parsable, and many of the rest', () => {
    expect(CORPUS.length).toBeGreaterThanOrEqual(50);
    expect(PARSABLE.length).toBeGreaterThanOrEqual(40);
  });

  it(
    'throws nothing but SipParseError, from parseMessage or any accessor; an unedited message serializes to its own bytes',
    () => {
      let parsed = 0;
      let refused = 0;
      fc.assert(
        fc.property(mutatedArb, (bytes) => {
          const p = attempt(() => parseMessage(bytes));
          if (!p.ok) {
            if (!(p.error instanceof SipParseError)) throw new Error(`parseMessage threw ${String(p.error)}`);
            refused++;
            return;
          }
          parsed++;
          const m = p.value;
          const before = m.serialize();
          expect(before.equals(ownBytes(m))).toBe(true);
          view(m); // every accessor returns or throws SipParseError
          // Reading changes nothing.
          expect(m.serialize().equals(before)).toBe(true);
          expect(m.edited).toBe(false);
        }),
        { ...PARAMS, numRuns: RUNS * 4 },
      );
      // Both sides are exercised: mutations the parser takes, and mutations it refuses.
      expect(parsed).toBeGreaterThan(RUNS / 2);
      expect(refused).toBeGreaterThan(RUNS / 2);
    },
    TIMEOUT,
  );

  it('serializes an unedited message to its own buffer, without a copy', () => {
    for (const b of PARSABLE) {
      const m = parseMessage(b);
      if (m.index.contentLength === undefined) continue;
      let start = 0;
      while (b[start] === 13 || b[start] === 10) start++;
      if (start === 0 && m.index.bodyEnd === b.length) expect(m.serialize()).toBe(b);
      else expect(m.serialize().buffer).toBe(b.buffer);
    }
  });
});

describe('edits under random sequences (fast-check)', () => {
  const messageArb = fc.oneof({ arbitrary: fc.constantFrom(...PARSABLE), weight: 3 }, { arbitrary: mutatedArb, weight: 1 });

  it(
    'serialize() gives what the accessors of the edited message report, whatever the edits',
    () => {
      let edited = 0;
      let refusedEdits = 0;
      fc.assert(
        fc.property(messageArb, fc.array(editArb, { minLength: 1, maxLength: 12 }), (bytes, edits) => {
          const p = attempt(() => parseMessage(bytes));
          if (!p.ok) return;
          const m = p.value;
          const remembered: Array<{ name: string; value: { start: number } }> = [];
          const staleVias: Via[] = [];
          for (const e of edits) {
            const r = attempt(() => applyEdit(m, e, remembered, staleVias));
            if (!r.ok) {
              if (!expectedEditError(r.error)) throw new Error(`${JSON.stringify(e)} threw ${String(r.error)}`, { cause: r.error });
              refusedEdits++;
            }
          }
          if (m.edited) edited++;
          const out = m.serialize();
          const again = attempt(() => parseMessage(out));
          if (!again.ok) throw new Error(`the serialized message does not parse: ${String(again.error)}\n${out.toString('latin1')}`);
          const sent = again.value;
          // serialize() appends a Content-Length to a message that has none.
          const added = m.index.contentLength === undefined;
          expect(sent.headerCount).toBe(m.fieldsAsSent().length + (added ? 1 : 0));
          if (added) expect(sent.headerNames[sent.headerCount - 1]).toBe('content-length');
          expect(view(m)).toEqual(view(sent, added));
          // And the bytes of the message as received are still there, untouched.
          expect(m.received.serialize().equals(ownBytes(m))).toBe(true);
        }),
        PARAMS,
      );
      expect(edited).toBeGreaterThan(RUNS / 2);
      expect(refusedEdits).toBeGreaterThan(0);
    },
    TIMEOUT,
  );
});

describe('value locations of list headers (fast-check)', () => {
  // valueLocations takes a field without a comma as one value without splitting it; it must
  // find exactly what splitting every field finds, whatever the fields hold.
  const piece = fc.constantFrom('<sip:a@10.0.0.1;lr>', '"Bob, Jr." <sip:b@h>', 'sip:c@h', ' ', ',', '"', '\\"', '<', '>', ';x=1', '\r\n ', 'tok', '');
  const field = fc.array(piece, { maxLength: 8 }).map((p) => p.join('').replace(/^[ \t]+|[ \t]+$/g, '').replace(/^(\r\n )+/, ''));
  it('finds the same values as splitList over every field', async () => {
    const { splitList } = await import('../../src/sip/values.js');
    fc.assert(
      fc.property(fc.array(field, { minLength: 1, maxLength: 6 }), (fields) => {
        const text = `OPTIONS sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n${fields.map((f) => `Route: ${f}\r\n`).join('')}Content-Length: 0\r\n\r\n`;
        let msg: SipMessage;
        try {
          msg = parseMessage(Buffer.from(text, 'latin1'));
        } catch {
          return; // not a message the parser takes: nothing to compare
        }
        // What splitting every field finds, or the refusal it throws (an unterminated quote).
        const split = (): Array<{ field: number; start: number; end: number }> => {
          const out: Array<{ field: number; start: number; end: number }> = [];
          for (let i = msg.fieldIndex('route'); i >= 0; i = msg.fieldIndex('route', i + 1)) {
            const base = msg.index.valueStarts[i]!;
            for (const [s, e] of splitList(msg.rawValue(i))) out.push({ field: i, start: base + s, end: base + e });
          }
          return out;
        };
        const outcome = (f: () => unknown): unknown => {
          try {
            return f();
          } catch (err) {
            return (err as Error).message;
          }
        };
        expect(outcome(() => msg.valueLocations('route'))).toEqual(outcome(split));
      }),
      { numRuns: 2000 },
    );
  });
});
