/**
 * The reloader each node table goes through: one reload at a time, bursts of change notices
 * coalesced, versions already held skipped, a reload asked for by a person always run (after
 * the one in progress), failures reported and the old version kept. The loader here is a
 * function that counts its calls and returns the version it is told the table is at — the
 * logic under test is the reloader's; the real loads are exercised in test/cluster/cluster.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { NodeTables, TableReloader, type ReloadResult } from '../../src/cluster/node-tables.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A table "in the database" whose version the test moves, and a loader reading it. */
function fakeTable(loadMs = 20) {
  const t = { version: 0, loads: 0, fail: null as Error | null, running: 0, maxRunning: 0 };
  const load = async (): Promise<ReloadResult> => {
    t.loads++;
    t.running++;
    t.maxRunning = Math.max(t.maxRunning, t.running);
    const seen = t.version; // read at the start, like a snapshot
    await sleep(loadMs);
    t.running--;
    if (t.fail) throw t.fail;
    return { version: seen, total: seen };
  };
  return { t, load };
}

/** Wait (bounded) until `cond` holds. */
async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(5);
  }
}

describe('TableReloader', () => {
  it('makes a burst of notices into one reload, and a burst during that reload into one more', async () => {
    const { t, load } = fakeTable();
    const loaded: number[] = [];
    const r = new TableReloader('address', load, 30, { onLoaded: (_table, res) => loaded.push(res.version as number) });
    for (let v = 1; v <= 100; v++) {
      t.version = v;
      r.changed(v);
    }
    await until(() => t.running === 1);
    for (let v = 101; v <= 200; v++) {
      t.version = v;
      r.changed(v);
    }
    await until(() => r.version === 200);
    expect(t.loads).toBe(2);
    expect(t.maxRunning).toBe(1);
    expect(loaded).toEqual([100, 200]);
    r.close();
  });

  it('ignores a notice for a version it holds, and reloads for a newer one', async () => {
    const { t, load } = fakeTable(1);
    const r = new TableReloader('dispatcher', load, 0);
    t.version = 4;
    await r.reload();
    expect([r.version, t.loads]).toEqual([4, 1]);
    r.changed(4);
    r.changed(3);
    await sleep(30);
    expect(t.loads).toBe(1);
    t.version = 5;
    r.changed(5);
    await until(() => r.version === 5);
    expect(t.loads).toBe(2);
    // Unknown version (null): always reload.
    r.changed(null);
    await until(() => t.loads === 3);
    r.close();
  });

  it('a reload asked for during a reload runs again after it, and reads the later state', async () => {
    const { t, load } = fakeTable(40);
    const r = new TableReloader('address', load, 0);
    t.version = 1;
    const first = r.reload();
    await sleep(10); // the first one is reading
    t.version = 2; // a write the person just made
    const second = r.reload();
    const third = r.reload(); // joins the second
    expect((await first).version).toBe(1);
    expect((await second).version).toBe(2);
    expect(await third).toEqual(await second);
    expect(t.loads).toBe(2);
    expect(t.maxRunning).toBe(1);
    r.close();
  });

  it('a failed reload rejects, keeps the version held and reports once through onFailed', async () => {
    const { t, load } = fakeTable(1);
    const failures: string[] = [];
    const r = new TableReloader('address', load, 0, { onFailed: (_t, err) => failures.push((err as Error).message) });
    t.version = 1;
    await r.reload();
    t.version = 2;
    t.fail = new Error('row 7: mask 40 is out of range');
    await expect(r.reload()).rejects.toThrow('mask 40');
    expect(r.version).toBe(1);
    expect(r.lastError?.message).toBe('row 7: mask 40 is out of range');
    r.changed(2); // a notice: its failure is reported, not thrown
    await until(() => failures.length === 2);
    t.fail = null;
    r.changed(2);
    await until(() => r.version === 2);
    expect(r.lastError).toBeNull();
    r.close();
  });

  it('close() drops what was pending and refuses later work', async () => {
    const { t, load } = fakeTable(1);
    const r = new TableReloader('address', load, 1000);
    r.changed(1);
    r.close();
    await sleep(20);
    r.changed(2);
    expect(t.loads).toBe(0);
  });
});

describe('NodeTables.wrap', () => {
  it('routes the reload handlers through the reloaders and adds the store to status', async () => {
    let dsVersion = 7;
    const tables = new NodeTables({ kind: 'postgres', location: 'postgres://x@h/db', delayMs: 0, dispatcherVersion: async () => dsVersion });
    let addressCalls = 0;
    const handlers = tables.wrap({
      'address.reload': async () => ({ groups: [], total: 3, ms: 1, version: 12 + addressCalls++ }),
      'dispatcher.reload': async () => ({ sets: [], total: 0, ms: 1 }),
      status: () => ({ pid: 1 }),
      other: () => 'untouched',
    });
    expect(await handlers['address.reload']!({})).toMatchObject({ total: 3, version: 12 });
    expect(await handlers['dispatcher.reload']!({})).toMatchObject({ version: 7 });
    dsVersion = 8;
    tables.dispatcher.changed(8);
    await until(() => tables.dispatcher.version === 8);
    expect(handlers.other!({})).toBe('untouched');
    const status = (await handlers.status!({})) as Record<string, unknown>;
    expect(status).toMatchObject({
      pid: 1,
      store: { kind: 'postgres', state: 'up', downSince: null, tables: { address: { version: 12 }, dispatcher: { version: 8 } } },
    });
    tables.close();
  });
});
