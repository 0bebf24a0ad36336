/** The `flood` config keys: defaults, overrides, and one clear line for each bad value. */
import { describe, expect, it } from 'vitest';
import { applyConfig, defaultConfig } from '../../src/config/schema.js';
import { parseSourceAddress } from '../../src/flood/address.js';
import { floodControlHandlers } from '../../src/flood/control.js';
import { FloodGuard } from '../../src/flood/guard.js';
import { catchError } from '../helpers/errors.js';

describe('flood config', () => {
  it('is on by default, with the README defaults', () => {
    expect(defaultConfig().flood).toEqual({ enabled: true, maxRequests: 100, windowS: 2, blockS: 120, exemptGroups: [], maxTracked: 100_000 });
  });

  it('takes every key', () => {
    const c = applyConfig(defaultConfig(), {
      flood: { enabled: false, maxRequests: 500, windowS: 0.5, blockS: 600, exemptGroups: [200, 250], maxTracked: 1000 },
    });
    expect(c.flood).toEqual({ enabled: false, maxRequests: 500, windowS: 0.5, blockS: 600, exemptGroups: [200, 250], maxTracked: 1000 });
    expect(applyConfig(defaultConfig(), { flood: { exemptGroups: '1, 2' } }).flood.exemptGroups).toEqual([1, 2]);
    expect(applyConfig(defaultConfig(), { flood: { exemptGroups: 4294967295 } }).flood.exemptGroups).toEqual([4294967295]);
  });

  it.each([
    [{ maxRequests: 0 }, 'config flood.maxRequests: expected a whole number from 1 to 100000000, got 0'],
    [{ maxRequests: 1.5 }, 'config flood.maxRequests: expected a whole number'],
    [{ windowS: 0 }, 'config flood.windowS: expected a number from 0.1 to 3600, got 0'],
    [{ blockS: 'soon' }, 'config flood.blockS: expected a number from 1 to 86400, got "soon"'],
    [{ maxTracked: -1 }, 'config flood.maxTracked: expected a whole number from 1 to 10000000'],
    [{ exemptGroups: [1, 'x'] }, 'config flood.exemptGroups[1]: expected a whole number from 0 to 4294967295'],
    [{ enabled: 'maybe' }, 'config flood.enabled: expected true or false'],
  ])('refuses %j with one line naming the key', (flood, message) => {
    const err = catchError(() => applyConfig(defaultConfig(), { flood }));
    expect(err.code).toBe('E_CONFIG_BAD_VALUE');
    expect(err.exitCode).toBe(2);
    expect(err.message).toContain(message);
  });

  it('refuses an unknown key, naming the known ones', () => {
    const err = catchError(() => applyConfig(defaultConfig(), { flood: { maxRequest: 5 } }));
    expect(err.code).toBe('E_CONFIG_UNKNOWN_KEY');
    expect(err.message).toBe(
      'config flood.maxRequest: unknown option (known: enabled, maxRequests, windowS, blockS, exemptGroups, maxTracked)',
    );
    expect(catchError(() => applyConfig(defaultConfig(), { flood: [1] })).message).toBe('config flood: expected a mapping');
  });
});

describe('flood source addresses as typed', () => {
  it.each([
    ['192.0.2.1', '192.0.2.1'],
    [' 192.0.2.1 ', '192.0.2.1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['[2001:db8::1]', '2001:db8::1'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
  ])('%j is %j', (typed, canonical) => {
    expect(parseSourceAddress(typed)).toBe(canonical);
  });

  it.each(['', 'pbx.example.com', '10.1', '010.0.0.1', '192.0.2.0/24', 'fe80::1%eth0', '1.2.3.256', '::g'])('refuses %j (usage, exit 2)', (typed) => {
    const err = catchError(() => parseSourceAddress(typed));
    expect(err.code).toBe('E_FLOOD_BAD_ADDRESS');
    expect(err.exitCode).toBe(2);
    expect(err.message).not.toContain('\n');
  });
});

describe('flood control handlers', () => {
  const guard = new FloodGuard({
    limits: { maxRequests: 1, windowS: 1, blockS: 10, maxTracked: 10 },
    isExempt: () => false,
    log: { limited: () => undefined },
  });

  it('unblock checks its address before anything else', () => {
    const h = floodControlHandlers(guard);
    expect(catchError(() => h['flood.unblock']({ ip: 'nope' })).code).toBe('E_FLOOD_BAD_ADDRESS');
    expect(catchError(() => h['flood.unblock']({})).code).toBe('E_FLOOD_BAD_ADDRESS');
    guard.allows('192.0.2.1', 5060);
    guard.allows('192.0.2.1', 5060);
    expect(h['flood.unblock']({ ip: '::ffff:192.0.2.1' })).toMatchObject({ address: '192.0.2.1', unblocked: true, dropped: 1 });
  });

  it('says flood control is off when it is', () => {
    const h = floodControlHandlers(undefined);
    expect(h['flood.list']()).toEqual({ enabled: false });
    const err = catchError(() => h['flood.unblock']({ ip: '192.0.2.1' }));
    expect(err.code).toBe('E_FLOOD_DISABLED');
    expect(err.exitCode).toBe(1);
  });
});
