/**
 * Table versions: the change counters the triggers keep in table_version, and (PostgreSQL)
 * the NOTIFY they send at commit — what every node listens to.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { useStores, withTestStore } from '../helpers/stores.js';

const stores = useStores();

for (const kind of stores) describe.skipIf(kind.skip)(`table versions (${kind.name})`, () => {
  async function versions(db: string): Promise<Record<string, number>> {
    const rows = await kind.raw(db, 'SELECT table_name, version FROM table_version ORDER BY table_name');
    return Object.fromEntries(rows.map((r) => [String(r.table_name), Number(r.version)]));
  }

  it('start at 0 and count every committed change, by sipctl or by plain SQL', async () => {
    const db = await kind.fresh();
    await withTestStore(db, async () => undefined);
    expect(await versions(db)).toEqual({ address: 0, dispatcher: 0 });

    await withTestStore(db, async (s) => {
      await s.address.add({ grp: 1, ipAddr: '10.0.0.1', mask: 32, port: 0 });
      await s.dispatcher.add({ setid: 1, destination: 'sip:10.0.0.9' });
      expect(await s.versions.get('address')).toBe(1);
    });
    await kind.raw(db, "INSERT INTO address (grp, ip_addr, mask, port) VALUES (2, '10.0.0.2', 32, 0)");
    await kind.raw(db, "UPDATE address SET tag = 'x' WHERE grp = 2");
    await kind.raw(db, 'DELETE FROM dispatcher');
    const after = await versions(db);
    expect(after.address).toBeGreaterThanOrEqual(3);
    expect(after.dispatcher).toBeGreaterThanOrEqual(2);

    // A statement that changes no row changes no version.
    await kind.raw(db, 'DELETE FROM address WHERE grp = 999');
    await kind.raw(db, "UPDATE dispatcher SET attrs = 'x' WHERE setid = 999");
    expect(await versions(db)).toEqual(after);
  });

  it('a rolled-back change leaves the version alone', async () => {
    const db = await kind.fresh();
    await withTestStore(db, async (s) => {
      await s.address.add({ grp: 1, ipAddr: '10.0.0.1', mask: 32, port: 0 });
      const before = await s.versions.get('address');
      await expect(
        s.write(async (t) => {
          await t.address.add({ grp: 1, ipAddr: '10.0.0.2', mask: 32, port: 0 });
          throw new Error('changed my mind');
        }),
      ).rejects.toThrow('changed my mind');
      expect(await s.versions.get('address')).toBe(before);
      expect(await s.address.count()).toBe(1);
    });
  });

  if (kind.name === 'postgres') it('NOTIFY sipctl "table NAME VERSION" at commit only, once per statement', async () => {
    const db = await kind.fresh();
    await withTestStore(db, async () => undefined);
    const listener = new pg.Client({ connectionString: db });
    await listener.connect();
    const notices: string[] = [];
    listener.on('notification', (m) => notices.push(`${m.channel}: ${m.payload}`));
    await listener.query('LISTEN sipctl');
    try {
      const store = await openStore(db);
      try {
        await store.address.add({ grp: 1, ipAddr: '10.0.0.1', mask: 32, port: 0 });
        // Three rows in one statement: one notice.
        await kind.raw(db, "INSERT INTO address (grp, ip_addr, mask, port) VALUES (2, '10.0.0.2', 32, 0), (2, '10.0.0.3', 32, 0), (2, '10.0.0.4', 32, 0)");
        await expect(
          store.write(async (t) => {
            await t.dispatcher.add({ setid: 1, destination: 'sip:10.0.0.9' });
            throw new Error('rolled back');
          }),
        ).rejects.toThrow();
        await kind.raw(db, 'TRUNCATE dispatcher');
      } finally {
        await store.close();
      }
      // Notices arrive asynchronously: wait (bounded) for the last one.
      for (let i = 0; i < 100 && notices.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
      expect(notices).toEqual(['sipctl: table address 1', 'sipctl: table address 2', 'sipctl: table dispatcher 1']);
    } finally {
      await listener.end();
    }
  });
});
