import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { BUSY_TIMEOUT_MS, openStore } from '../../src/store/index.js';
import { useTempDirs } from '../helpers/temp-dir.js';
import { catchError } from '../helpers/errors.js';

describe('openStore', () => {
  const tempDir = useTempDirs();

  it('creates the missing parent folder and opens in WAL mode with a busy timeout', () => {
    const path = join(tempDir(), 'data', 'nested', 'sipctl.db');
    const store = openStore(path);
    try {
      expect(existsSync(path)).toBe(true);
      expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(store.db.pragma('busy_timeout', { simple: true })).toBe(BUSY_TIMEOUT_MS);
      expect(store.path).toBe(path);
    } finally {
      store.close();
    }
  });

  it('refuses a file that is not SQLite, naming the path, and leaves it alone', () => {
    const path = join(tempDir(), 'notes.txt');
    const content = 'this is not a database, it is a shopping list\n'.repeat(200);
    writeFileSync(path, content);
    const err = catchError(() => openStore(path));
    expect(err.code).toBe('E_STORE_OPEN');
    expect(err.message).toContain(path);
    expect(err.message).toContain('not a database');
    expect(readFileSync(path, 'utf8')).toBe(content);
  });

  it('refuses a folder given as the database path', () => {
    const path = join(tempDir(), 'a-folder');
    mkdirSync(path);
    const err = catchError(() => openStore(path));
    expect(err.code).toBe('E_STORE_OPEN');
    expect(err.message).toContain(path);
  });

  it('read-only: a missing file is an error and is not created', () => {
    const path = join(tempDir(), 'missing.db');
    const err = catchError(() => openStore(path, { readonly: true }));
    expect(err.code).toBe('E_STORE_OPEN');
    expect(err.message).toContain(path);
    expect(existsSync(path)).toBe(false);
  });

  it('read-only: an unmigrated database is refused with the command that fixes it', () => {
    const path = join(tempDir(), 'empty.db');
    new BetterSqlite3(path).close();
    const err = catchError(() => openStore(path, { readonly: true }));
    expect(err.code).toBe('E_STORE_NOT_MIGRATED');
    expect(err.message).toContain(`sipctl migrate --db ${path}`);
  });

  it('read-only: reads a migrated database and refuses writes', () => {
    const path = join(tempDir(), 'sipctl.db');
    const writer = openStore(path);
    writer.address.add({ grp: 1, ipAddr: '10.0.0.0', mask: 8, port: 0 });
    writer.close();
    const reader = openStore(path, { readonly: true });
    try {
      expect(reader.migration).toBeNull();
      expect(reader.address.count()).toBe(1);
      expect(() => reader.address.add({ grp: 1, ipAddr: '10.0.0.1', mask: 32, port: 0 })).toThrow(/readonly/);
    } finally {
      reader.close();
    }
  });

  it('lets a reader keep reading while another connection writes (WAL)', () => {
    const path = join(tempDir(), 'sipctl.db');
    const cli = openStore(path);
    const proxy = openStore(path, { readonly: true });
    try {
      cli.address.add({ grp: 1, ipAddr: '10.0.0.0', mask: 8, port: 0 });
      cli.address.add({ grp: 1, ipAddr: '10.0.0.1', mask: 32, port: 0 });
      // An open read cursor holds a read transaction; in WAL mode writes still commit.
      const cursor = proxy.address.iterate();
      const first = cursor.next();
      expect(first.done).toBe(false);
      cli.address.add({ grp: 2, ipAddr: '192.168.0.0', mask: 16, port: 5060 });
      const rest = [...cursor];
      // The reader sees the snapshot it started with: 2 rows, not 3.
      expect(rest.length).toBe(1);
      expect(proxy.address.count()).toBe(3);
    } finally {
      proxy.close();
      cli.close();
    }
  });
});
