import { describe, expect, it } from 'vitest';
import { parseAlgorithm } from '../../src/dispatcher/algorithm.js';
import { parseAttrs } from '../../src/dispatcher/attrs.js';
import { parseDestinationUri } from '../../src/dispatcher/destination-uri.js';
import { parseFlags, parsePriority, parseSetid } from '../../src/dispatcher/row.js';
import { SipctlError } from '../../src/errors.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SipctlError);
    return (err as SipctlError).code;
  }
  return undefined;
}

describe('parseAlgorithm', () => {
  it('takes names and Kamailio numbers', () => {
    expect(parseAlgorithm('round-robin')).toBe('round-robin');
    expect(parseAlgorithm('4')).toBe('round-robin');
    expect(parseAlgorithm(0)).toBe('hash-callid');
    expect(parseAlgorithm('HASH-FROM')).toBe('hash-from');
    expect(parseAlgorithm(8)).toBe('priority');
    expect(parseAlgorithm('9')).toBe('weight');
    expect(parseAlgorithm('11')).toBe('relative-weight');
  });

  it('refuses others with a usage error listing what exists', () => {
    for (const bad of ['roundrobin', '12', '5', '99', '', '-1']) {
      expect(codeOf(() => parseAlgorithm(bad))).toBe('E_DS_BAD_ALGORITHM');
    }
    expect(() => parseAlgorithm('roundrobin')).toThrow(/round-robin \(4\)/);
    try {
      parseAlgorithm('x');
    } catch (err) {
      expect((err as SipctlError).exitCode).toBe(2);
    }
  });
});

describe('parseAttrs', () => {
  it('reads the known keys', () => {
    expect(parseAttrs('weight=50;rweight=20;duid=pbx-a;maxload=100;')).toEqual({ weight: 50, rweight: 20, duid: 'pbx-a', maxload: 100 });
    expect(parseAttrs('')).toEqual({});
    expect(parseAttrs('ping_from=sip:probe@lb.example.com')).toEqual({ ping_from: 'sip:probe@lb.example.com' });
  });

  it('names an unknown key and lists the known ones', () => {
    expect(codeOf(() => parseAttrs('wieght=50'))).toBe('E_DS_BAD_ATTRS');
    expect(() => parseAttrs('wieght=50')).toThrow("unknown attribute 'wieght' (known: weight, rweight, duid, maxload, ping_from)");
  });

  it('checks value ranges as Kamailio documents them', () => {
    expect(() => parseAttrs('weight=101')).toThrow(/weight must be an integer 0..100/);
    expect(() => parseAttrs('rweight=0')).toThrow(/rweight must be an integer 1..100/);
    expect(() => parseAttrs('maxload=-1')).toThrow(/maxload/);
    expect(() => parseAttrs('weight')).toThrow(/not name=value/);
    expect(() => parseAttrs('ping_from=nope')).toThrow(/ping_from must be a sip: URI/);
  });
});

describe('parseDestinationUri', () => {
  it('takes sip URIs with udp or tcp and normalizes them', () => {
    const u = parseDestinationUri('sip:PBX1.Example.com:5070;transport=TCP');
    expect(u.explicitTransport).toBe('tcp');
    expect(u.parsed.port).toBe(5070);
    expect(u.normalized).toBe('sip:pbx1.example.com:5070;transport=tcp');
    expect(parseDestinationUri('sip:10.0.0.1').explicitTransport).toBeUndefined();
    expect(parseDestinationUri('sip:[2001:db8::1]:5060').parsed.host).toBe('2001:db8::1');
  });

  it('refuses sips with a clear error, and what is not a usable SIP URI', () => {
    expect(codeOf(() => parseDestinationUri('sips:pbx.example.com'))).toBe('E_DS_SIPS_UNSUPPORTED');
    expect(() => parseDestinationUri('sips:pbx.example.com')).toThrow(/sips: needs TLS/);
    expect(codeOf(() => parseDestinationUri('http://x'))).toBe('E_DS_BAD_URI');
    expect(codeOf(() => parseDestinationUri('10.0.0.1:5060'))).toBe('E_DS_BAD_URI');
    expect(codeOf(() => parseDestinationUri('tel:+15551234'))).toBe('E_DS_BAD_URI');
    expect(() => parseDestinationUri('sip:a.example.com;transport=tls')).toThrow(/transport=tls is not supported/);
    expect(() => parseDestinationUri('sip:a.example.com?subject=x')).toThrow(/headers/);
  });
});

describe('set id, priority and flags', () => {
  it('accepts what the table can hold', () => {
    expect(parseSetid('0')).toBe(0);
    expect(parseSetid(12)).toBe(12);
    expect(parsePriority('-5')).toBe(-5);
    expect(parseFlags('12')).toBe(12);
  });

  it('refuses the rest', () => {
    for (const s of ['-1', 'one', '1.5', '']) expect(codeOf(() => parseSetid(s))).toBe('E_DS_BAD_SETID');
    for (const p of ['high', '1e3', '']) expect(codeOf(() => parsePriority(p))).toBe('E_DS_BAD_PRIORITY');
    for (const f of ['16', '-1', 'x']) expect(codeOf(() => parseFlags(f))).toBe('E_DS_BAD_FLAGS');
  });
});
