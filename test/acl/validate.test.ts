import { describe, expect, it } from 'vitest';
import { SipctlError } from '../../src/errors.js';
import { validateAddressEntry, type AddressEntryInput } from '../../src/acl/validate.js';

/** The error validateAddressEntry throws for `input` (fails the test when it does not throw). */
function rejection(input: AddressEntryInput): SipctlError {
  try {
    validateAddressEntry(input);
  } catch (err) {
    expect(err).toBeInstanceOf(SipctlError);
    return err as SipctlError;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be refused`);
}

describe('validateAddressEntry: accepted input', () => {
  it('defaults the mask per family: 32 for IPv4, 128 for IPv6 (not Kamailio\'s 32)', () => {
    expect(validateAddressEntry({ grp: 1, ip: '192.0.2.10' })).toEqual({
      grp: 1, ipAddr: '192.0.2.10', mask: 32, port: 0, tag: null, family: 4,
    });
    expect(validateAddressEntry({ grp: '2', ip: '2001:db8::10' })).toEqual({
      grp: 2, ipAddr: '2001:db8::10', mask: 128, port: 0, tag: null, family: 6,
    });
  });

  it('canonicalises IPv6 text (compressed, lowercase) and accepts [brackets]', () => {
    const e = validateAddressEntry({ grp: 1, ip: '[2001:DB8:0:0:0:0:0:1]', mask: '64', port: '5060', tag: 'pbx-a' });
    expect(e).toEqual({ grp: 1, ipAddr: '2001:db8::', mask: 64, port: 5060, tag: 'pbx-a', family: 6, note: expect.any(String) });
    expect(validateAddressEntry({ grp: 1, ip: '[2001:DB8::1]' }).ipAddr).toBe('2001:db8::1');
  });

  it('keeps an IPv4-mapped IPv6 address as IPv6', () => {
    const e = validateAddressEntry({ grp: 1, ip: '::ffff:10.1.2.3' });
    expect(e.family).toBe(6);
    expect(e.mask).toBe(128);
    expect(e.ipAddr).toBe('::ffff:a01:203');
  });

  it('clears host bits under the mask and says so in note', () => {
    const e = validateAddressEntry({ grp: 1, ip: '192.168.1.7', mask: 24 });
    expect(e.ipAddr).toBe('192.168.1.0');
    expect(e.mask).toBe(24);
    expect(e.note).toBe('192.168.1.7/24 has host bits set; stored as the network 192.168.1.0/24');
    const v6 = validateAddressEntry({ grp: 1, ip: '2001:db8::1:2', mask: 100 });
    expect(v6.ipAddr).toBe('2001:db8::');
    expect(v6.note).toBe('2001:db8::1:2/100 has host bits set; stored as the network 2001:db8::/100');
    expect(validateAddressEntry({ grp: 1, ip: '192.168.1.0', mask: 24 }).note).toBeUndefined();
    expect(validateAddressEntry({ grp: 1, ip: '10.9.8.7', mask: 0 }).ipAddr).toBe('0.0.0.0');
  });

  it('accepts addr/len in the address and agrees with an equal explicit mask', () => {
    expect(validateAddressEntry({ grp: 0, ip: '10.0.0.0/8' })).toMatchObject({ ipAddr: '10.0.0.0', mask: 8 });
    expect(validateAddressEntry({ grp: 0, ip: '10.0.0.0/8', mask: '8' }).mask).toBe(8);
    expect(rejection({ grp: 0, ip: '10.0.0.0/8', mask: 16 }).code).toBe('E_ACL_BAD_MASK');
  });

  it('accepts the full ranges of group, mask and port', () => {
    expect(validateAddressEntry({ grp: 4294967295, ip: '::', mask: 0, port: 65535 })).toMatchObject({
      grp: 4294967295, ipAddr: '::', mask: 0, port: 65535,
    });
    expect(validateAddressEntry({ grp: '0', ip: '255.255.255.255', mask: '32', port: '0' }).grp).toBe(0);
  });
});

describe('validateAddressEntry: refused input', () => {
  it.each([
    ['10.0.0.256'], ['10.1'], ['010.0.0.1'], ['0x0a.0.0.1'], ['pbx.example.com'], [''], ['1:2:3:4::5:6:7:8'],
    ['2001:db8:::1'], ['fe80::1%eth0'], ['[10.0.0.1'],
  ])('address %j → E_ACL_BAD_ADDRESS', (ip) => {
    const err = rejection({ grp: 1, ip });
    expect(err.code).toBe('E_ACL_BAD_ADDRESS');
    expect(err.exitCode).toBe(2);
  });

  it('explains why an inet_aton shorthand and a zone index are refused', () => {
    expect(rejection({ grp: 1, ip: '10.1' }).message).toMatch(/dotted-quad.*all four decimal parts/);
    expect(rejection({ grp: 1, ip: 'fe80::1%eth0' }).message).toMatch(/zone index \(%eth0\)/);
  });

  it('checks the mask against the family', () => {
    const v4 = rejection({ grp: 1, ip: '10.0.0.1', mask: 40 });
    expect(v4.code).toBe('E_ACL_BAD_MASK');
    expect(v4.message).toBe('mask 40 is out of range for IPv4 address 10.0.0.1 (0-32)');
    expect(validateAddressEntry({ grp: 1, ip: '2001:db8::', mask: 40 }).mask).toBe(40);
    const v6 = rejection({ grp: 1, ip: '2001:db8::', mask: 129 });
    expect(v6.message).toBe('mask 129 is out of range for IPv6 address 2001:db8:: (0-128)');
    expect(rejection({ grp: 1, ip: '10.0.0.1', mask: -1 }).code).toBe('E_ACL_BAD_MASK');
    expect(rejection({ grp: 1, ip: '10.0.0.1', mask: '24.5' }).message).toMatch(/not an integer; use 0-32/);
    expect(rejection({ grp: 1, ip: '10.0.0.1', mask: 'abc' }).code).toBe('E_ACL_BAD_MASK');
  });

  it.each([[-1], [65536], ['http'], [5060.5], ['70000']])('port %j → E_ACL_BAD_PORT', (port) => {
    const err = rejection({ grp: 1, ip: '10.0.0.1', port });
    expect(err.code).toBe('E_ACL_BAD_PORT');
    expect(err.message).toMatch(/0-65535/);
  });

  it.each([[-1], [1.5], ['one'], [4294967296], ['']])('group %j → E_ACL_BAD_GROUP', (grp) => {
    const err = rejection({ grp, ip: '10.0.0.1' });
    expect(err.code).toBe('E_ACL_BAD_GROUP');
    expect(err.message).toMatch(/non-negative integer/);
  });
});
