/**
 * RFC 4475 torture-test messages against the SIP parser (src/sip, contract in the lead's
 * sip-api notes): parseMessage(bytes) finds the framing, SipMessage's accessors parse values
 * lazily and throw SipParseError when a value is bad or missing.
 *
 * The messages are the bit-exact Appendix A archive (test/fixtures/rfc4475/*.dat); what each one
 * must do is in test/fixtures/rfc4475/expectations.ts, with the RFC's words beside it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { SipParseError } from '../../src/sip/errors.js';
import type { SipMessage } from '../../src/sip/message.js';
import { parseMessage } from '../../src/sip/parse.js';
import {
  PARSE_ERROR,
  VECTORS,
  type Accessor,
  type Check,
  type Group,
  type Outcome,
  type Reason,
  type Rfc4475Vector,
} from '../fixtures/rfc4475/expectations.js';

const FIXTURES = new URL('../fixtures/rfc4475/', import.meta.url);

function fixture(name: string): Buffer {
  return readFileSync(new URL(`${name}.dat`, FIXTURES));
}

type Attempt<T> = { ok: true; value: T } | { ok: false; error: unknown };

function attempt<T>(fn: () => T): Attempt<T> {
  try {
    return { ok: true, value: fn() };
  } catch (error) {
    return { ok: false, error };
  }
}

function show(v: unknown): string {
  const s = inspect(v, { depth: 4, breakLength: Infinity, maxStringLength: 120 });
  return s.length > 300 ? `${s.slice(0, 297)}...` : s;
}

/** Every refusal is a SipParseError with the stable code and a reason, never a TypeError & co. */
function expectSipParseError(error: unknown, what: string): void {
  expect(error, `${what}: expected SipParseError, got ${show(error)}`).toBeInstanceOf(SipParseError);
  const e = error as SipParseError;
  expect(e.code).toBe('E_SIP_PARSE');
  expect(typeof e.reason === 'string' && e.reason.length > 0, `${what}: SipParseError.reason is empty`).toBe(true);
}

function runCheck(m: SipMessage, check: Check): void {
  if (check.expected === PARSE_ERROR) {
    const got = attempt(() => check.get(m));
    if (got.ok) expect.fail(`${check.label}: expected SipParseError, got ${show(got.value)}`);
    expectSipParseError(got.error, check.label);
    return;
  }
  expect(check.get(m), check.label).toEqual(check.expected);
}

function readAccessor(m: SipMessage, a: Accessor): unknown {
  return (m as unknown as Record<Accessor, unknown>)[a];
}

// ---------------------------------------------------------------------------------------------
// The fixtures are the RFC's own bytes.

/** Regular files of a ustar archive (POSIX.1-1988 headers: name 0..99, size octal 124..135). */
function untar(tar: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  let off = 0;
  while (off + 512 <= tar.length) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const nameEnd = header.indexOf(0);
    const name = header.toString('latin1', 0, nameEnd >= 0 && nameEnd < 100 ? nameEnd : 100);
    const size = parseInt(header.toString('latin1', 124, 136).replace(/\0.*$/, '').trim(), 8);
    const type = header[156];
    off += 512;
    if (type === 0x30 || type === 0) files.set(name.replace(/^\.\//, ''), Buffer.from(tar.subarray(off, off + size)));
    off += Math.ceil(size / 512) * 512;
  }
  return files;
}

describe('RFC 4475 Appendix A archive', () => {
  const archive = untar(gunzipSync(Buffer.from(readFileSync(new URL('archive.b64', FIXTURES), 'latin1'), 'base64')));
  const datFiles = readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.dat'))
    .sort();

  it('holds the 50 messages, and the fixtures are exactly its members, byte for byte', () => {
    expect(archive.size).toBe(50);
    expect([...archive.keys()].sort()).toEqual(datFiles);
    for (const [name, bytes] of archive) {
      expect(readFileSync(new URL(name, FIXTURES)).equals(bytes), `${name} differs from the archive`).toBe(true);
    }
  });

  it('every fixture has exactly one expectation, and every expectation a fixture', () => {
    const names = VECTORS.map((v) => v.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names.map((n) => `${n}.dat`).sort()).toEqual(datFiles);
  });

  it('has the RFC section 3 counts: 13 valid, 19 invalid, 1 transaction, 15 application, 1 compat', () => {
    const count = (g: Group): number => VECTORS.filter((v) => v.group === g).length;
    expect([count('valid'), count('invalid'), count('transaction'), count('application'), count('compat')]).toEqual([
      13, 19, 1, 15, 1,
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// What the RFC says each message must do.

function reasonFor(reason: Reason, where: Accessor | 'parseMessage'): RegExp {
  if (reason instanceof RegExp) return reason;
  const r = where === 'parseMessage' ? undefined : reason[where];
  if (r === undefined) throw new Error(`expectations.ts gives no reason for ${where}`);
  return r;
}

function describeOutcome(outcome: Outcome): string {
  switch (outcome.parse) {
    case 'accept':
      return 'parses';
    case 'liberal':
      return `is parsed liberally, as the RFC allows (${outcome.at.join(', ')})`;
    case 'reject': {
      if (outcome.at === 'framing') return `is refused by parseMessage: ${String(outcome.reason)}`;
      const reason = outcome.reason;
      return `is refused by ${outcome.at.map((a) => `${a} (${String(reasonFor(reason, a))})`).join(', ')}`;
    }
  }
}

/** The SipParseError with the reason the expectations name, never just any error. */
function expectRefusal(error: unknown, what: string, reason: RegExp): void {
  expectSipParseError(error, what);
  expect((error as SipParseError).reason, `${what}: the reason it is refused`).toMatch(reason);
}

function outcomeTest(v: Rfc4475Vector, outcome: Outcome, bytes: Buffer): void {
  const p = attempt(() => parseMessage(bytes));
  if (outcome.parse === 'accept') {
    if (!p.ok) expect.fail(`parseMessage threw ${show(p.error)} on a message the RFC accepts: ${v.rfcSays}`);
    return;
  }
  const at = outcome.at;
  if (at === 'framing') {
    if (p.ok) expect.fail(`parseMessage returned a message; RFC 4475 §${v.section}: ${v.rfcSays} (${v.invalidBecause})`);
    expectRefusal(p.error, 'parseMessage', reasonFor((outcome as { reason: Reason }).reason, 'parseMessage'));
    return;
  }
  if (!p.ok) expect.fail(`parseMessage threw ${show(p.error)}; the fault is in ${at.join(', ')}`);
  const m = p.value;
  for (const a of at) {
    const got = attempt(() => readAccessor(m, a));
    if (outcome.parse === 'reject') {
      if (got.ok) expect.fail(`${a} returned ${show(got.value)}; RFC 4475 §${v.section}: ${v.invalidBecause} ${v.rfcSays}`);
      expectRefusal(got.error, a, reasonFor(outcome.reason, a));
    } else if (!got.ok) {
      expect.fail(`${a} threw ${show(got.error)}; expectations.ts says this parser takes it liberally`);
    }
  }
  if (outcome.parse === 'liberal') for (const check of outcome.checks) runCheck(m, check);
}

function vectorTests(v: Rfc4475Vector): void {
  const title = `${v.name} (§${v.section} ${v.title})`;
  describe(title, () => {
    const bytes = fixture(v.name);
    it(describeOutcome(v.outcome), () => outcomeTest(v, v.outcome, bytes));

    const repaired = v.repaired;
    if (repaired !== undefined) {
      it(`with ${repaired.why}: ${describeOutcome(repaired.outcome)}`, () => outcomeTest(v, repaired.outcome, repaired.bytes(bytes)));
    }

    // The checks read the message; when the archive copy cannot be framed, the repaired one.
    const readable = attempt(() => parseMessage(bytes)).ok || repaired === undefined ? bytes : repaired.bytes(bytes);
    const on = readable === bytes ? '' : ` (with ${repaired!.why})`;
    for (const check of v.checks) {
      it(check.label + on, () => {
        const p = attempt(() => parseMessage(readable));
        if (!p.ok) expect.fail(`parseMessage threw ${show(p.error)}: there is no message to check ${check.label} on`);
        runCheck(p.value, check);
      });
    }
  });
}

const GROUPS: Array<[Group, string]> = [
  ['valid', '§3.1.1 valid messages: every element accepts them'],
  ['invalid', '§3.1.2 invalid messages'],
  ['transaction', '§3.2 transaction layer semantics'],
  ['application', '§3.3 application-layer semantics'],
  ['compat', '§3.4 backward compatibility'],
  ['unlisted', 'in the Appendix A archive, described in no section'],
];

for (const [group, heading] of GROUPS) {
  describe(`RFC 4475 ${heading}`, () => {
    for (const v of VECTORS.filter((x) => x.group === group)) vectorTests(v);
  });
}

// ---------------------------------------------------------------------------------------------
// "Parsers must not break": whatever the message, every accessor returns or throws SipParseError.

function touchEverything(m: SipMessage): string[] {
  const faults: string[] = [];
  const read = (what: string, fn: () => unknown): unknown => {
    const got = attempt(fn);
    if (got.ok) return got.value;
    if (!(got.error instanceof SipParseError)) faults.push(`${what} threw ${show(got.error)}`);
    return undefined;
  };
  for (const a of ['uri', 'vias', 'topVia', 'from', 'to', 'callId', 'cseq', 'maxForwards', 'contacts'] as const) {
    read(a, () => readAccessor(m, a));
  }
  read('routes', () => m.routes);
  read('recordRoutes', () => m.recordRoutes);
  read('contentLength', () => m.contentLength);
  read('body', () => m.body.length);
  read('uri.toString()', () => m.uri.toString());
  const names = read('headerNames', () => m.headerNames);
  if (Array.isArray(names)) {
    for (const n of names as string[]) {
      read(`header(${n})`, () => m.header(n));
      read(`headerFields(${n})`, () => m.headerFields(n));
      read(`headerValues(${n})`, () => m.headerValues(n));
    }
  }
  return faults;
}

describe('RFC 4475: no message breaks the parser', () => {
  for (const v of VECTORS) {
    it(`${v.name}: parseMessage and every accessor return or throw SipParseError`, () => {
      const p = attempt(() => parseMessage(fixture(v.name)));
      if (!p.ok) {
        expectSipParseError(p.error, 'parseMessage');
        return;
      }
      expect(touchEverything(p.value)).toEqual([]);
    });
  }
});
