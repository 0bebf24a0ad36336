/**
 * The store and CLI suites run once per store: SQLite (a file in a temp folder) and
 * PostgreSQL (a database on a throwaway server, see postgres.ts). One suite, parameterized:
 *
 *   const stores = useStores();     // at the top of the file: starts PostgreSQL for the file
 *   for (const kind of stores) {
 *     describe.skipIf(kind.skip)(`address repository (${kind.name})`, () => {
 *       it('...', async () => { const db = await kind.fresh(); ... });
 *     });
 *   }
 *
 * `fresh()` is a new empty database (a path, or a postgres:// URL): what `--db` takes.
 * `raw(db, sql)` runs SQL past sipctl, the way sqlite3 or psql would (to plant a row from the
 * future, or look at what was written).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll } from 'vitest';
import { openStore, type OpenStoreOptions, type Store, type StoreTables } from '../../src/store/index.js';
import { RUN_PG, usePostgres, type TestPostgres } from './postgres.js';

export interface StoreUnderTest {
  name: 'sqlite' | 'postgres';
  /** True when this store cannot run here (PostgreSQL missing outside CI). */
  skip: boolean;
  /** A new, empty database. */
  fresh(): Promise<string>;
  /** Run SQL on `db` bypassing sipctl; returns the rows (if any). */
  raw(db: string, sql: string): Promise<Record<string, unknown>[]>;
  /** The names of the tables in `db` (sipctl's and any other), sorted. */
  tables(db: string): Promise<string[]>;
  /** The server (PostgreSQL only). */
  server(): TestPostgres;
}

export function useStores(): StoreUnderTest[] {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const pg = usePostgres();
  const sqlite: StoreUnderTest = {
    name: 'sqlite',
    skip: false,
    fresh: async () => {
      const dir = mkdtempSync(join(tmpdir(), 'sipctl-store-'));
      dirs.push(dir);
      return join(dir, 'sipctl.db');
    },
    raw: async (db, sql) => {
      const d = new Database(db);
      try {
        const stmt = d.prepare(sql);
        return stmt.reader ? (stmt.all() as Record<string, unknown>[]) : (stmt.run(), []);
      } finally {
        d.close();
      }
    },
    tables: async (db) => {
      const d = new Database(db, { readonly: true });
      try {
        const rows = d.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[];
        return rows.map((r) => r.name).filter((n) => !n.startsWith('sqlite_'));
      } finally {
        d.close();
      }
    },
    server: () => {
      throw new Error('no server: this is SQLite');
    },
  };
  const postgres: StoreUnderTest = {
    name: 'postgres',
    skip: !RUN_PG,
    fresh: () => pg().createDatabase(),
    raw: (db, sql) => pg().query(db, sql),
    tables: async (db) =>
      (await pg().query<{ name: string }>(db, "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")).map(
        (r) => r.name,
      ),
    server: () => pg(),
  };
  return [sqlite, postgres];
}

/** Open `db`, run `fn` on its tables, close. */
export async function withTestStore<T>(db: string, fn: (s: Store) => Promise<T>, opts: OpenStoreOptions = {}): Promise<T> {
  const store = await openStore(db, opts);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** The address rows of `db`, read-only. */
export function addressRows(db: string): ReturnType<StoreTables['address']['list']> {
  return withTestStore(db, (s) => s.address.list(), { readonly: true });
}

/** The dispatcher rows of `db`, read-only. */
export function dispatcherRows(db: string): ReturnType<StoreTables['dispatcher']['list']> {
  return withTestStore(db, (s) => s.dispatcher.list(), { readonly: true });
}
