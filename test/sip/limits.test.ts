/**
 * The bounds of src/sip/limits.ts: past them a value is refused with a SipParseError naming
 * the bound (the proxy turns it into 400, or 414 for a Request-URI), and at them it parses.
 * Each bound keeps what reading a crafted message costs a small constant per byte.
 */
import { describe, expect, it } from 'vitest';
import { SipParseError } from '../../src/sip/errors.js';
import { MAX_LIST_VALUES, MAX_PARAMS, MAX_VALUE_BYTES } from '../../src/sip/limits.js';
import { parseMessage } from '../../src/sip/parse.js';
import { parseUri } from '../../src/sip/uri.js';
import { firstListElement, parseNameAddr, parseVia, splitList } from '../../src/sip/values.js';

const params = (n: number): string => Array.from({ length: n }, (_, i) => `;p${i}=1`).join('');
const refused = (f: () => unknown, reason: RegExp): void => {
  let caught: unknown;
  try {
    f();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(SipParseError);
  expect((caught as SipParseError).reason).toMatch(reason);
};

describe('sip limits', () => {
  it(`parameters: ${MAX_PARAMS} parse, one more is refused (Via, URI, name-addr)`, () => {
    const via = (n: number) => `SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1${params(n - 1)}`;
    expect(parseVia(via(MAX_PARAMS), 0, via(MAX_PARAMS).length, 0).params.size).toBe(MAX_PARAMS);
    refused(() => parseVia(via(MAX_PARAMS + 1), 0, via(MAX_PARAMS + 1).length, 0), /more than 64 parameters/);
    expect(parseUri(`sip:a@b${params(MAX_PARAMS)}`).params.size).toBe(MAX_PARAMS);
    refused(() => parseUri(`sip:a@b${params(MAX_PARAMS + 1)}`), /more than 64 parameters/);
    const na = (n: number) => `<sip:a@b>${params(n)}`;
    expect(parseNameAddr(na(MAX_PARAMS), 0, na(MAX_PARAMS).length, 0, 'From').params.size).toBe(MAX_PARAMS);
    refused(() => parseNameAddr(na(MAX_PARAMS + 1), 0, na(MAX_PARAMS + 1).length, 0, 'From'), /From: more than 64 parameters/);
  });

  it(`values the proxy reads: ${MAX_VALUE_BYTES} bytes parse, longer ones are refused`, () => {
    const tag = (n: number) => `<sip:a@b>;tag=${'t'.repeat(n - 14)}`;
    expect(parseNameAddr(tag(MAX_VALUE_BYTES), 0, MAX_VALUE_BYTES, 0, 'From').tag).toHaveLength(MAX_VALUE_BYTES - 14);
    refused(() => parseNameAddr(tag(MAX_VALUE_BYTES + 1), 0, MAX_VALUE_BYTES + 1, 0, 'From'), /From: a value longer than 4096 bytes/);
    const msg = (callId: string) =>
      parseMessage(Buffer.from(`OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: ${callId}\r\n\r\n`, 'latin1'));
    expect(msg('c'.repeat(MAX_VALUE_BYTES)).callId).toHaveLength(MAX_VALUE_BYTES);
    refused(() => msg('c'.repeat(MAX_VALUE_BYTES + 1)).callId, /Call-ID longer than 4096 bytes/);
  });

  it(`list values: ${MAX_LIST_VALUES} in one message parse, one more is refused`, () => {
    const list = (n: number) => Array.from({ length: n }, (_, i) => `<sip:h${i};lr>`).join(', ');
    expect(splitList(list(MAX_LIST_VALUES))).toHaveLength(MAX_LIST_VALUES);
    refused(() => splitList(list(MAX_LIST_VALUES + 1)), /more than 512 values/);
    // Across fields too.
    const lines = Array.from({ length: MAX_LIST_VALUES + 1 }, (_, i) => `Route: <sip:h${i};lr>`).join('\r\n');
    const m = parseMessage(Buffer.from(`OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n${lines}\r\n\r\n`, 'latin1'));
    refused(() => m.valueLocations('route'), /more than 512 values/);
  });

  it('firstListElement finds what splitList finds first, and never looks further', () => {
    for (const v of ['a', ' a , b', ',, a,b', '"x,y" <sip:a,b>;p, c', '<sip:a>, <sip:b>', 'a, "unterminated']) {
      let first: unknown;
      try {
        first = splitList(v)[0];
      } catch {
        first = 'throws';
      }
      if (first === 'throws') {
        // Only the part up to the first element is looked at: a broken tail does not matter.
        expect(firstListElement(v)).toEqual([0, 1]);
      } else {
        expect(firstListElement(v)).toEqual(first);
      }
    }
  });
});
