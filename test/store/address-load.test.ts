/**
 * Reloading the address table from either store through the load worker (src/acl/load.ts):
 * every row arrives, with the version it was read at; a bad row written past sipctl is named
 * and the table held is kept; text that would confuse the packed read is read row by row.
 * For PostgreSQL the worker is kept, with its connection, from one reload to the next.
 */
import { describe, expect, it } from 'vitest';
import { AddressTableHolder, loadAddressTable } from '../../src/acl/load.js';
import { rejection } from '../helpers/errors.js';
import { useStores, withTestStore } from '../helpers/stores.js';

const stores = useStores();

for (const kind of stores) describe.skipIf(kind.skip)(`address table loads (${kind.name})`, () => {
  it('loads every row with its tag, and the version it read', async () => {
    const db = await kind.fresh();
    await withTestStore(db, async (s) => {
      await s.address.add({ grp: 1, ipAddr: '10.0.0.0', mask: 8, port: 0, tag: 'ten' });
      await s.address.add({ grp: 2, ipAddr: '2001:db8::', mask: 32, port: 5060 });
    });
    await kind.raw(
      db,
      `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 20000)
       INSERT INTO address (grp, ip_addr, mask, port, tag) SELECT 3, '172.' || (16 + i / 65536) || '.' || ((i / 256) % 256) || '.' || (i % 256), 32, 0,
         CASE WHEN i % 1000 = 0 THEN 'tag ' || i END FROM s`,
    );
    const version = Number((await kind.raw(db, "SELECT version FROM table_version WHERE table_name = 'address'"))[0]!.version);
    const { table, version: loaded } = await loadAddressTable(db);
    expect(loaded).toBe(version);
    expect(table.size).toBe(20_002);
    expect(table.match('10.1.2.3', 5060, null)).toMatchObject({ grp: 1, tag: 'ten' });
    expect(table.match('2001:db8::1', 5060, null)).toMatchObject({ grp: 2 });
    expect(table.match('172.16.3.232', 9, null)).toMatchObject({ grp: 3, tag: 'tag 1000' });
    expect(table.match('172.16.3.233', 9, null)).toMatchObject({ grp: 3, tag: null });
    expect(table.match('192.0.2.1', 5060, null)).toBeNull();
  });

  it('reads tags holding the packing separators, and non-ASCII tags, exactly', async () => {
    const db = await kind.fresh();
    await withTestStore(db, async (s) => {
      await s.address.add({ grp: 1, ipAddr: '10.0.0.1', mask: 32, port: 0, tag: 'a\u001fb\u001ec' });
      await s.address.add({ grp: 1, ipAddr: '10.0.0.2', mask: 32, port: 0, tag: 'ünïcødé ☎' });
    });
    const { table } = await loadAddressTable(db);
    expect(table.match('10.0.0.1', 0, null)?.tag).toBe('a\u001fb\u001ec');
    expect(table.match('10.0.0.2', 0, null)?.tag).toBe('ünïcødé ☎');
  });

  it('a bad row written past sipctl: the reload fails naming it, the table held stays', async () => {
    const db = await kind.fresh();
    await withTestStore(db, (s) => s.address.add({ grp: 1, ipAddr: '10.0.0.1', mask: 32, port: 0 }));
    const holder = new AddressTableHolder();
    expect((await holder.reload(db)).total).toBe(1);
    const held = holder.current;
    await kind.raw(db, "INSERT INTO address (grp, ip_addr, mask, port) VALUES (1, 'not-an-address', 32, 0)");
    const err = await rejection(holder.reload(db));
    expect(err.code).toBe('E_ACL_RELOAD_FAILED');
    expect(err.message).toMatch(/not-an-address/);
    expect(err.message).toContain('still using the previous table (1 entries)');
    expect(holder.current).toBe(held);
    // Fixed: the next reload (same kept worker, for PostgreSQL) works again.
    await kind.raw(db, "DELETE FROM address WHERE ip_addr = 'not-an-address'");
    expect((await holder.reload(db)).total).toBe(1);
  });

  if (kind.name === 'postgres') it('a database that went away and came back: the failed reload says why, the next one reconnects', async () => {
    const db = await kind.fresh();
    await withTestStore(db, (s) => s.address.add({ grp: 1, ipAddr: '10.0.0.1', mask: 32, port: 0 }));
    expect((await loadAddressTable(db)).table.size).toBe(1);
    await kind.raw(kind.server().url(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'sipctl address load'`);
    // The kept connection was closed under the worker; whichever way the worker notices
    // (the error event, or the next query failing), a reload after it reconnects.
    let size: number | undefined;
    for (let i = 0; i < 3 && size === undefined; i++) {
      size = await loadAddressTable(db).then(
        (r) => r.table.size,
        (err: Error) => {
          expect(err.message).toMatch(/address table reload failed: cannot read the address table of postgres:\/\//);
          return undefined;
        },
      );
    }
    expect(size).toBe(1);
  });
});
