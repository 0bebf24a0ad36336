import { describe, expect, it } from 'vitest';
import { parseUri } from '../../src/sip/uri.js';
import { SipParseError } from '../../src/sip/errors.js';

describe('parseUri', () => {
  it('parses every part of a SIP URI', () => {
    const u = parseUri('sip:alice:secret@Atlanta.Example.com:5070;transport=TCP;lr;maddr=239.255.255.1?subject=project%20x&priority=urgent');
    expect(u.scheme).toBe('sip');
    expect(u.user).toBe('alice');
    expect(u.password).toBe('secret');
    expect(u.host).toBe('atlanta.example.com');
    expect(u.port).toBe(5070);
    expect(u.transport).toBe('tcp');
    expect(u.params.get('lr')).toBeNull();
    expect(u.params.get('maddr')).toBe('239.255.255.1');
    expect(u.headers.get('subject')).toBe('project x');
    expect(u.headers.get('priority')).toBe('urgent');
  });

  it('handles IPv6 references and IPv4 hosts', () => {
    const v6 = parseUri('sips:[2001:DB8::10]:5061');
    expect(v6.scheme).toBe('sips');
    expect(v6.host).toBe('2001:db8::10');
    expect(v6.hostType).toBe('ipv6');
    expect(v6.port).toBe(5061);
    expect(v6.toString()).toBe('sips:[2001:db8::10]:5061');
    const v4 = parseUri('sip:10.0.0.21:5060');
    expect(v4.hostType).toBe('ipv4');
    expect(v4.user).toBeUndefined();
  });

  it('resolves %-escapes in the user part and escapes on output', () => {
    const u = parseUri('sip:sips%3Auser%40example.com@example.net');
    expect(u.user).toBe('sips:user@example.com');
    expect(u.toString()).toBe('sip:sips%3Auser%40example.com@example.net');
  });

  it('parses tel URIs', () => {
    const t = parseUri('tel:+1-201-555-0123;phone-context=example.com');
    expect(t.scheme).toBe('tel');
    expect(t.user).toBe('+1-201-555-0123');
    expect(t.params.get('phone-context')).toBe('example.com');
  });

  it.each([
    'http://example.com', 'sip:', 'sip:user@', 'sip:host:99999', 'sip:[2001:db8::1', 'sip:exa mple.com',
    'sip:host:abc', 'sip:a@b@c', 'nocolon', 'sip:host;p=%zz',
  ])('rejects %s', (text) => {
    expect(() => parseUri(text)).toThrow(SipParseError);
  });
});
