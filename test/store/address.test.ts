import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/index.js';
import { useTempDirs } from '../helpers/temp-dir.js';
import { catchError } from '../helpers/errors.js';

describe('address repository', () => {
  const tempDir = useTempDirs();
  let store: Store;

  beforeEach(() => {
    store = openStore(join(tempDir(), 'sipctl.db'));
    return () => store.close();
  });

  it('adds entries and lists them with the database column names', () => {
    const a = store.address.add({ grp: 250, ipAddr: '10.8.203.139', mask: 32, port: 5060, tag: 'TestServer' });
    const b = store.address.add({ grp: 200, ipAddr: '192.168.1.0', mask: 24, port: 5060, tag: 'OfficeSubnet' });
    const c = store.address.add({ grp: 200, ipAddr: '2001:db8::', mask: 32, port: 0 });
    expect(b.id).toBeGreaterThan(a.id);
    expect(store.address.list()).toEqual([
      { id: b.id, grp: 200, ip_addr: '192.168.1.0', mask: 24, port: 5060, tag: 'OfficeSubnet' },
      { id: c.id, grp: 200, ip_addr: '2001:db8::', mask: 32, port: 0, tag: null },
      { id: a.id, grp: 250, ip_addr: '10.8.203.139', mask: 32, port: 5060, tag: 'TestServer' },
    ]);
    expect(store.address.list(250).map((r) => r.id)).toEqual([a.id]);
    expect(store.address.list(9)).toEqual([]);
    expect(store.address.count()).toBe(3);
    expect(store.address.count(200)).toBe(2);
    expect(store.address.get(a.id)?.tag).toBe('TestServer');
    expect(store.address.get(9999)).toBeUndefined();
    expect([...store.address.iterate()]).toEqual(store.address.list());
    expect([...store.address.iterate(200)]).toEqual(store.address.list(200));
  });

  it('refuses a duplicate (grp, ip_addr, mask, port) naming the existing id, and adds nothing', () => {
    const { id } = store.address.add({ grp: 1, ipAddr: '10.0.0.0', mask: 8, port: 0, tag: 'first' });
    const err = catchError(() => store.address.add({ grp: 1, ipAddr: '10.0.0.0', mask: 8, port: 0, tag: 'second' }));
    expect(err.code).toBe('E_ACL_DUPLICATE');
    expect(err.exitCode).toBe(2);
    expect(err.message).toContain(`id ${id}`);
    expect(err.message).toContain('10.0.0.0/8');
    expect(store.address.count()).toBe(1);
    expect(store.address.get(id)?.tag).toBe('first');
  });

  it('treats a different group, mask or port as a different entry', () => {
    store.address.add({ grp: 1, ipAddr: '10.0.0.0', mask: 8, port: 0 });
    store.address.add({ grp: 2, ipAddr: '10.0.0.0', mask: 8, port: 0 });
    store.address.add({ grp: 1, ipAddr: '10.0.0.0', mask: 16, port: 0 });
    store.address.add({ grp: 1, ipAddr: '10.0.0.0', mask: 8, port: 5060 });
    expect(store.address.count()).toBe(4);
  });

  it('turns a CHECK violation into a SipctlError rather than a raw SQLite error', () => {
    const err = catchError(() => store.address.add({ grp: 1, ipAddr: '10.0.0.0', mask: 200, port: 0 }));
    expect(err.code).toBe('E_STORE_CONSTRAINT');
    expect(store.address.count()).toBe(0);
  });

  it('removes by id, returning the row, and reports nothing removed the second time', () => {
    const { id } = store.address.add({ grp: 3, ipAddr: '172.16.0.0', mask: 12, port: 0, tag: 'x' });
    store.address.add({ grp: 3, ipAddr: '172.16.0.1', mask: 32, port: 0 });
    expect(store.address.remove(id)).toEqual({ id, grp: 3, ip_addr: '172.16.0.0', mask: 12, port: 0, tag: 'x' });
    expect(store.address.remove(id)).toBeNull();
    expect(store.address.count()).toBe(1);
  });

  it('removes by group and address, narrowed by mask and port when given', () => {
    store.address.add({ grp: 5, ipAddr: '10.1.0.0', mask: 16, port: 0 });
    store.address.add({ grp: 5, ipAddr: '10.1.0.0', mask: 16, port: 5060 });
    store.address.add({ grp: 5, ipAddr: '10.1.0.0', mask: 24, port: 0 });
    store.address.add({ grp: 6, ipAddr: '10.1.0.0', mask: 16, port: 0 });

    expect(store.address.removeMatching(5, '10.1.0.0', 16, 5060)).toBe(1);
    expect(store.address.removeMatching(5, '10.1.0.0', 16, 5060)).toBe(0);
    expect(store.address.removeMatching(5, '10.9.0.0')).toBe(0);
    expect(store.address.removeMatching(5, '10.1.0.0', 24)).toBe(1);
    expect(store.address.count()).toBe(2);
    const [last] = store.address.list(5);
    expect(store.address.removeMatchingRows(5, '10.1.0.0')).toEqual([last]);
    // Group 6 was never touched.
    expect(store.address.list()).toEqual([{ id: expect.any(Number), grp: 6, ip_addr: '10.1.0.0', mask: 16, port: 0, tag: null }]);
  });
});
