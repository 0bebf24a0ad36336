import { describe, expect, it } from 'vitest';
import { SipctlError } from '../../src/errors.js';
import { formatListenSpec, parseListenSpec } from '../../src/transport/listen-spec.js';

describe('parseListenSpec', () => {
  it.each([
    ['udp:127.0.0.1:5060', { protocol: 'udp', address: '127.0.0.1', port: 5060, family: 4 }],
    ['tcp:[::1]:5060', { protocol: 'tcp', address: '::1', port: 5060, family: 6 }],
    ['udp:0.0.0.0:5060', { protocol: 'udp', address: '0.0.0.0', port: 5060, family: 4 }],
    ['TCP:10.0.0.1:5070', { protocol: 'tcp', address: '10.0.0.1', port: 5070, family: 4 }],
    ['tcp:[::]:0', { protocol: 'tcp', address: '::', port: 0, family: 6 }],
    ['udp:[FE80::1]:5080', { protocol: 'udp', address: 'fe80::1', port: 5080, family: 6 }],
    // Defaults: udp when the protocol is left out, 5060 when the port is.
    ['127.0.0.1:5062', { protocol: 'udp', address: '127.0.0.1', port: 5062, family: 4 }],
    ['127.0.0.1', { protocol: 'udp', address: '127.0.0.1', port: 5060, family: 4 }],
    ['tcp:192.0.2.7', { protocol: 'tcp', address: '192.0.2.7', port: 5060, family: 4 }],
    ['[::1]', { protocol: 'udp', address: '::1', port: 5060, family: 6 }],
    ['tcp:[2001:db8::5]', { protocol: 'tcp', address: '2001:db8::5', port: 5060, family: 6 }],
    [' udp:127.0.0.1:5060 ', { protocol: 'udp', address: '127.0.0.1', port: 5060, family: 4 }],
  ])('parses %s', (text, expected) => {
    expect(parseListenSpec(text)).toEqual(expected);
  });

  it.each([
    ['udp:foo', "listen address 'udp:foo' is not PROTO:IP:PORT ('foo' is not an IP address), e.g. udp:127.0.0.1:5060 or tcp:[::1]:5060"],
    ['', 'it is empty'],
    ['tls:127.0.0.1:5061', "protocol 'tls' is not supported; use udp or tcp"],
    ['udp:127.0.0.1:99999', "port '99999' is not a number from 0 to 65535"],
    ['udp:127.0.0.1:http', "port 'http' is not a number"],
    ['udp:127.0.0.1:', "port '' is not a number"],
    ['tcp:::1', 'IPv6 addresses go in brackets: tcp:[::1]:5060'],
    ['::1', 'IPv6 addresses go in brackets: udp:[::1]:5060'],
    ['fe::1', 'IPv6 addresses go in brackets'],
    ['udp:[::1', "opens '[' but never closes it"],
    ['udp:[127.0.0.1]:5060', "'127.0.0.1' in brackets is not an IPv6 address"],
    ['udp:[::1]5060', "unexpected '5060' after ']'"],
    ['udp:256.1.1.1:5060', "'256.1.1.1' is not an IP address"],
    ['udp::5060', 'the IP address is missing'],
    ['udp:sip.example.com:5060', "'sip.example.com' is not an IP address"],
  ])('rejects %j with a usage error that says why', (text, why) => {
    let error: unknown;
    try {
      parseListenSpec(text);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(SipctlError);
    const e = error as SipctlError;
    expect(e.code).toBe('E_CONFIG_BAD_LISTEN');
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain(why);
    expect(e.message).toContain('e.g. udp:127.0.0.1:5060 or tcp:[::1]:5060');
    expect(e.message).not.toContain('\n');
  });

  it('formats a spec back the way a person types it', () => {
    expect(formatListenSpec(parseListenSpec('tcp:[::1]:5070'))).toBe('tcp:[::1]:5070');
    expect(formatListenSpec(parseListenSpec('127.0.0.1'))).toBe('udp:127.0.0.1:5060');
  });
});
