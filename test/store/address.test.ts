import { beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/index.js';
import { rejection } from '../helpers/errors.js';
import { useStores } from '../helpers/stores.js';

const stores = useStores();

for (const kind of stores) describe.skipIf(kind.skip)(`address repository (${kind.name})`, () => {
  let store: Store;

  beforeEach(async () => {
    store = await openStore(await kind.fresh());
    return () => store.close();
  });

  it('adds entries and lists them with the database column names', async () => {
    const a = await store.address.add({ grp: 250, ipAddr: '10.8.203.139', mask: 32, port: 5060, tag: 'TestServer' });
    const b = await store.address.add({ grp: 200, ipAddr: '192.168.1.0', mask: 24, port: 5060, tag: 'OfficeSubnet' });
    const c = await store.address.add({ grp: 200, ipAddr: '2001:db8::', mask: 32, port: 0 });
    expect(b.id).toBeGreaterThan(a.id);
    expect(await store.address.list()).toEqual([
      { id: b.id, grp: 200, ip_addr: '192.168.1.0', mask: 24, port: 5060, tag: 'OfficeSubnet' },
      { id: c.id, grp: 200, ip_addr: '2001:db8::', mask: 32, port: 0, tag: null },
      { id: a.id, grp: 250, ip_addr: '10.8.203.139', mask: 32, port: 5060, tag: 'TestServer' },
    ]);
    expect((await store.address.list(250)).map((r) => r.id)).toEqual([a.id]);
    expect(await store.address.list(9)).toEqual([]);
    expect(await store.address.count()).toBe(3);
    expect(await store.address.count(200)).toBe(2);
    expect((await store.address.get(a.id))?.tag).toBe('TestServer');
    expect(await store.address.get(9999)).toBeUndefined();
    expect(await fromAsync(store.address.iterate())).toEqual(await store.address.list());
    expect(await fromAsync(store.address.iterate(200))).toEqual(await store.address.list(200));
  });

  it('refuses a duplicate (grp, ip_addr, mask, port) naming the existing id, and adds nothing', async () => {
    const { id } = await store.address.add({ grp: 1, ipAddr: '10.0.0.0', mask: 8, port: 0, tag: 'first' });
    const err = await rejection(store.address.add({ grp: 1, ipAddr: '10.0.0.0', mask: 8, port: 0, tag: 'second' }));
    expect(err.code).toBe('E_ACL_DUPLICATE');
    expect(err.exitCode).toBe(2);
    expect(err.message).toContain(`id ${id}`);
    expect(err.message).toContain('10.0.0.0/8');
    expect(await store.address.count()).toBe(1);
    expect((await store.address.get(id))?.tag).toBe('first');
  });

  it('a refused duplicate uses up no id: the next entry gets the next one', async () => {
    const first = await store.address.add({ grp: 1, ipAddr: '10.0.0.0', mask: 8, port: 0 });
    await rejection(store.address.add({ grp: 1, ipAddr: '10.0.0.0', mask: 8, port: 0 }));
    const next = await store.address.add({ grp: 1, ipAddr: '10.0.0.1', mask: 32, port: 0 });
    expect(next.id).toBe(first.id + 1);
  });

  it('keeps groups up to 2^32 - 1 and returns every number as a number', async () => {
    const { id } = await store.address.add({ grp: 4294967295, ipAddr: '10.0.0.0', mask: 8, port: 65535 });
    expect(await store.address.get(id)).toEqual({ id, grp: 4294967295, ip_addr: '10.0.0.0', mask: 8, port: 65535, tag: null });
    expect(await store.address.count(4294967295)).toBe(1);
  });

  it('treats a different group, mask or port as a different entry', async () => {
    await store.address.add({ grp: 1, ipAddr: '10.0.0.0', mask: 8, port: 0 });
    await store.address.add({ grp: 2, ipAddr: '10.0.0.0', mask: 8, port: 0 });
    await store.address.add({ grp: 1, ipAddr: '10.0.0.0', mask: 16, port: 0 });
    await store.address.add({ grp: 1, ipAddr: '10.0.0.0', mask: 8, port: 5060 });
    expect(await store.address.count()).toBe(4);
  });

  it('turns a CHECK violation into a SipctlError rather than a raw database error', async () => {
    const err = await rejection(store.address.add({ grp: 1, ipAddr: '10.0.0.0', mask: 200, port: 0 }));
    expect(err.code).toBe('E_STORE_CONSTRAINT');
    expect(await store.address.count()).toBe(0);
  });

  it('removes by id, returning the row, and reports nothing removed the second time', async () => {
    const { id } = await store.address.add({ grp: 3, ipAddr: '172.16.0.0', mask: 12, port: 0, tag: 'x' });
    await store.address.add({ grp: 3, ipAddr: '172.16.0.1', mask: 32, port: 0 });
    expect(await store.address.remove(id)).toEqual({ id, grp: 3, ip_addr: '172.16.0.0', mask: 12, port: 0, tag: 'x' });
    expect(await store.address.remove(id)).toBeNull();
    expect(await store.address.count()).toBe(1);
  });

  it('removes by group and address, narrowed by mask and port when given', async () => {
    await store.address.add({ grp: 5, ipAddr: '10.1.0.0', mask: 16, port: 0 });
    await store.address.add({ grp: 5, ipAddr: '10.1.0.0', mask: 16, port: 5060 });
    await store.address.add({ grp: 5, ipAddr: '10.1.0.0', mask: 24, port: 0 });
    await store.address.add({ grp: 6, ipAddr: '10.1.0.0', mask: 16, port: 0 });

    expect(await store.address.removeMatching(5, '10.1.0.0', 16, 5060)).toBe(1);
    expect(await store.address.removeMatching(5, '10.1.0.0', 16, 5060)).toBe(0);
    expect(await store.address.removeMatching(5, '10.9.0.0')).toBe(0);
    expect(await store.address.removeMatching(5, '10.1.0.0', 24)).toBe(1);
    expect(await store.address.count()).toBe(2);
    const [last] = await store.address.list(5);
    expect(await store.address.removeMatchingRows(5, '10.1.0.0')).toEqual([last]);
    // Group 6 was never touched.
    expect(await store.address.list()).toEqual([{ id: expect.any(Number), grp: 6, ip_addr: '10.1.0.0', mask: 16, port: 0, tag: null }]);
  });
});

async function fromAsync<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of items) out.push(x);
  return out;
}
