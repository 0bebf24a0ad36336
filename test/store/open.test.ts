import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUSY_TIMEOUT_MS, openSqliteStore, openStore } from '../../src/store/index.js';
import { rejection } from '../helpers/errors.js';
import { useStores, withTestStore } from '../helpers/stores.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const stores = useStores();

describe('openStore: SQLite files', () => {
  const tempDir = useTempDirs();

  it('creates the missing parent folder and opens in WAL mode with a busy timeout', async () => {
    const path = join(tempDir(), 'data', 'nested', 'sipctl.db');
    const store = await openSqliteStore(path);
    try {
      expect(store.kind).toBe('sqlite');
      expect(existsSync(path)).toBe(true);
      expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(store.db.pragma('busy_timeout', { simple: true })).toBe(BUSY_TIMEOUT_MS);
      expect(store.location).toBe(path);
    } finally {
      await store.close();
    }
  });

  it('refuses a file that is not SQLite, naming the path, and leaves it alone', async () => {
    const path = join(tempDir(), 'notes.txt');
    const content = 'this is not a database, it is a shopping list\n'.repeat(200);
    writeFileSync(path, content);
    const err = await rejection(openStore(path));
    expect(err.code).toBe('E_STORE_OPEN');
    expect(err.message).toContain(path);
    expect(err.message).toContain('not a database');
    expect(readFileSync(path, 'utf8')).toBe(content);
  });

  it('refuses a folder given as the database path', async () => {
    const path = join(tempDir(), 'a-folder');
    mkdirSync(path);
    const err = await rejection(openStore(path));
    expect(err.code).toBe('E_STORE_OPEN');
    expect(err.message).toContain(path);
  });

  it('read-only: a missing file is an error and is not created', async () => {
    const path = join(tempDir(), 'missing.db');
    const err = await rejection(openStore(path, { readonly: true }));
    expect(err.code).toBe('E_STORE_OPEN');
    expect(err.message).toContain(path);
    expect(existsSync(path)).toBe(false);
  });
});

describe('openStore: PostgreSQL locations', () => {
  it('refuses a URL without a database, before connecting', async () => {
    const err = await rejection(openStore('postgres://sipctl@127.0.0.1:5432'));
    expect(err.code).toBe('E_STORE_BAD_URL');
    expect(err.exitCode).toBe(2);
    expect(err.message).toContain('names no database; expected postgres://USER@HOST:PORT/DATABASE');
  });

  it('cannot connect: one error naming the server, the password masked', async () => {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    const err = await rejection(openStore('postgres://sipctl:s3cret@127.0.0.1:1/sipctl'));
    expect(err.code).toBe('E_STORE_OPEN');
    expect(err.message).toMatch(/^cannot connect to PostgreSQL database postgres:\/\/sipctl:\*\*\*@127\.0\.0\.1:1\/sipctl: .*ECONNREFUSED/);
    expect(err.message).not.toContain('s3cret');
  });
});

for (const kind of stores) describe.skipIf(kind.skip)(`openStore (${kind.name})`, () => {
  it('opens the kind of store its location names', async () => {
    const db = await kind.fresh();
    await withTestStore(db, async (s) => {
      expect(s.kind).toBe(kind.name);
      expect(s.location).toBe(db);
    });
  });

  it('a snapshot does not move while another connection writes', async () => {
    const db = await kind.fresh();
    const cli = await openStore(db);
    const proxy = await openStore(db, { readonly: true });
    try {
      await cli.address.add({ grp: 1, ipAddr: '10.0.0.0', mask: 8, port: 0 });
      await cli.address.add({ grp: 1, ipAddr: '10.0.0.1', mask: 32, port: 0 });
      const seen = await proxy.snapshot(async (t) => {
        const before = await t.address.count();
        const rows: unknown[] = [];
        for await (const r of t.address.iterate()) {
          rows.push(r);
          // Written (and committed) while the snapshot reads.
          if (rows.length === 1) await cli.address.add({ grp: 2, ipAddr: '192.168.0.0', mask: 16, port: 5060 });
        }
        return { before, rows: rows.length, after: await t.address.count() };
      });
      // The reader sees the moment it started at: 2 rows throughout, not 3.
      expect(seen).toEqual({ before: 2, rows: 2, after: 2 });
      expect(await proxy.address.count()).toBe(3);
    } finally {
      await proxy.close();
      await cli.close();
    }
  });

  it('a database that does not exist is named, with what to do', async () => {
    const db = kind.name === 'sqlite' ? join(await kind.fresh(), 'no-such-folder', 'x.db') : (await kind.fresh()).replace(/\/[^/]+$/, '/no_such_db');
    const err = await rejection(openStore(db, { readonly: true }));
    expect(err.code).toBe('E_STORE_OPEN');
    expect(err.message).toContain(db);
    if (kind.name === 'postgres') expect(err.message).toContain('database "no_such_db" does not exist (create it first');
  });
});
