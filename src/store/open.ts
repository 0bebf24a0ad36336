/**
 * Opening a store: a SQLite file, or a PostgreSQL database when the location is a
 * `postgres://` URL (location.ts). Both give the same Store — the same repositories over the
 * same tables, migrated by the same files — so every command works against either.
 *
 * SQLite: the CLI and a running proxy share one file. WAL lets the proxy's reload read while
 * the CLI writes, and busy_timeout makes a writer wait for another writer's lock instead of
 * failing at once with SQLITE_BUSY.
 *
 * PostgreSQL: a small connection pool; the node's LISTEN connection and the address-table
 * load worker open their own connections with the same settings (pgClientConfig).
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import type { Database } from 'better-sqlite3';
import type pg from 'pg';
import { SipctlError } from '../errors.js';
import { AddressRepository } from './address.js';
import { CdrRepository } from './cdr.js';
import { DispatcherRepository } from './dispatcher.js';
import { messageOf } from './errors.js';
import { checkPostgresUrl, describeLocation, isPostgresUrl, type StoreKind } from './location.js';
import { assertMigrated, migrate, type MigrateReport } from './migrate.js';
import type { Sql } from './sql.js';
import { SqliteSql } from './sqlite.js';
import { TableVersionRepository } from './versions.js';

/** How long a statement waits for another connection's write lock before SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 5000;

export interface OpenStoreOptions {
  /**
   * Open read-only: nothing is migrated (the database must be migrated already) and writes are
   * refused (SQLite opens the file read-only; PostgreSQL sessions default to read-only
   * transactions). Default false.
   */
  readonly?: boolean;
  /** Apply pending migrations on open. Default true (false when readonly). */
  migrate?: boolean;
  /** Override the migrations folder (tests). */
  migrationsDir?: string;
  /** PostgreSQL: most connections the pool opens (default 2). */
  poolSize?: number;
  /** PostgreSQL: application_name of the pool's connections (default `sipctl`). */
  applicationName?: string;
  /** PostgreSQL: give up a query after this long (default: no limit). */
  queryTimeoutMs?: number;
}

/** The repositories, over the store or over one transaction of it. */
export interface StoreTables {
  readonly address: AddressRepository;
  readonly dispatcher: DispatcherRepository;
  readonly versions: TableVersionRepository;
  readonly cdr: CdrRepository;
}

/**
 * One store interface for both engines. A new table (the `cdr` table of a later issue, say)
 * is added the same way as address and dispatcher: a migration file, a repository class over
 * `Sql`, and a field here — nothing engine-specific.
 */
export interface Store extends StoreTables {
  readonly kind: StoreKind;
  /** Where it is, as it may be shown: the path as given, or the URL with any password masked. */
  readonly location: string;
  /** The executor the repositories use (for code that adds tables of its own, like src/cluster/). */
  readonly sql: Sql;
  /** What migrating on open did; null when the open did not migrate. */
  readonly migration: MigrateReport | null;
  /** Run `fn` over one consistent, read-only view: every read inside sees the same moment. */
  snapshot<T>(fn: (tables: StoreTables) => Promise<T>): Promise<T>;
  /** Run `fn` in one write transaction. */
  write<T>(fn: (tables: StoreTables) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface SqliteStore extends Store {
  readonly kind: 'sqlite';
  /** The better-sqlite3 handle (SQLite-specific tests and tools). */
  readonly db: Database;
}

export interface PostgresStore extends Store {
  readonly kind: 'postgres';
  /** The URL as given, password included: for connections of the same process (LISTEN, the load worker). */
  readonly url: string;
  readonly pool: pg.Pool;
  /**
   * Listen for errors of the pool's idle connections (the server went away). Without a
   * listener they are ignored: the next query fails and says why.
   */
  onPoolError(listener: (err: Error) => void): void;
}

function tablesOver(sql: Sql): StoreTables {
  return {
    address: new AddressRepository(sql),
    dispatcher: new DispatcherRepository(sql),
    versions: new TableVersionRepository(sql),
    cdr: new CdrRepository(sql),
  };
}

/**
 * Open (creating a SQLite file when missing, unless readonly) the store at `location` and
 * migrate it. Cannot open or connect → E_STORE_OPEN naming the location; a database migrated
 * by a newer sipctl → E_STORE_TOO_NEW; a read-only open of an unmigrated one → E_STORE_NOT_MIGRATED.
 */
export async function openStore(location: string, opts: OpenStoreOptions = {}): Promise<Store> {
  return isPostgresUrl(location) ? openPostgresStore(location, opts) : openSqliteStore(location, opts);
}

// ---- SQLite --------------------------------------------------------------------------------

function sqliteOpenError(dbPath: string, err: unknown): SipctlError {
  return new SipctlError(
    'E_STORE_OPEN',
    `cannot open database ${dbPath}: ${messageOf(err)} (check --db / SIPCTL_DB points at a sipctl database)`,
    { cause: err },
  );
}

function isInMemory(dbPath: string): boolean {
  return dbPath === ':memory:' || dbPath === '';
}

export async function openSqliteStore(dbPath: string, opts: OpenStoreOptions = {}): Promise<SqliteStore> {
  const readonly = opts.readonly ?? false;
  const shouldMigrate = !readonly && (opts.migrate ?? true);

  if (!readonly && !isInMemory(dbPath)) {
    try {
      mkdirSync(dirname(dbPath), { recursive: true });
    } catch (err) {
      throw sqliteOpenError(dbPath, err);
    }
  }

  let db: Database;
  try {
    db = new BetterSqlite3(dbPath, { readonly, fileMustExist: readonly });
  } catch (err) {
    throw sqliteOpenError(dbPath, err);
  }

  try {
    try {
      // The first statement reads the file header: a file that is not SQLite fails here
      // (SQLITE_NOTADB), so this is where "not a database" becomes E_STORE_OPEN.
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      if (readonly) {
        db.prepare('SELECT count(*) FROM sqlite_master').get();
      } else {
        // WAL is a property of the file; setting it needs write access, so read-only opens
        // simply use whatever mode the writer set. NORMAL sync is durable enough in WAL mode
        // (a power cut may lose the last commit, never corrupt the file).
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
      }
      db.pragma('foreign_keys = ON');
    } catch (err) {
      throw sqliteOpenError(dbPath, err);
    }

    const sql = new SqliteSql(db);
    let migration: MigrateReport | null = null;
    if (shouldMigrate) {
      migration = await migrate(sql, dbPath, { migrationsDir: opts.migrationsDir });
    } else if (readonly) {
      await assertMigrated(sql, dbPath, { migrationsDir: opts.migrationsDir });
    }

    return {
      kind: 'sqlite',
      location: dbPath,
      db,
      sql,
      ...tablesOver(sql),
      migration,
      snapshot: (fn) => sql.transaction((tx) => fn(tablesOver(tx)), 'snapshot'),
      write: (fn) => sql.transaction((tx) => fn(tablesOver(tx)), 'write'),
      close: async () => {
        if (db.open) db.close();
      },
    };
  } catch (err) {
    db.close();
    throw err;
  }
}

// ---- PostgreSQL ----------------------------------------------------------------------------

function postgresOpenError(location: string, err: unknown): SipctlError {
  const why = messageOf(err);
  const hint = /database ".*" does not exist/.test(why)
    ? 'create it first (createdb, or CREATE DATABASE); sipctl creates the tables'
    : 'check --db / SIPCTL_DB, and that the server runs and accepts this user';
  return new SipctlError('E_STORE_OPEN', `cannot connect to PostgreSQL database ${location}: ${why} (${hint})`, { cause: err });
}

export async function openPostgresStore(url: string, opts: OpenStoreOptions = {}): Promise<PostgresStore> {
  checkPostgresUrl(url);
  const location = describeLocation(url);
  const readonly = opts.readonly ?? false;
  const shouldMigrate = !readonly && (opts.migrate ?? true);

  // Loaded only here: a command on a SQLite file does not pay for the PostgreSQL driver.
  const { default: pgModule } = await import('pg');
  const { pgClientConfig, PgPoolSql } = await import('./postgres.js');
  const pool = new pgModule.Pool({
    ...pgClientConfig(url, { applicationName: opts.applicationName, readOnly: readonly, queryTimeoutMs: opts.queryTimeoutMs }),
    max: opts.poolSize ?? 2,
    idleTimeoutMillis: 30_000,
  });
  // An idle pooled connection that the server closes (a restart, pg_terminate_backend) is an
  // 'error' event on the pool; unheard, Node would treat it as an uncaught exception.
  const poolErrorListeners = new Set<(err: Error) => void>();
  pool.on('error', (err) => {
    for (const l of poolErrorListeners) l(err);
  });

  try {
    try {
      await pool.query('SELECT 1');
    } catch (err) {
      throw postgresOpenError(location, err);
    }
    const sql = new PgPoolSql(pool);
    let migration: MigrateReport | null = null;
    if (shouldMigrate) {
      migration = await migrate(sql, location, { migrationsDir: opts.migrationsDir });
    } else if (readonly) {
      await assertMigrated(sql, location, { migrationsDir: opts.migrationsDir });
    }
    let closing: Promise<void> | undefined;
    return {
      kind: 'postgres',
      location,
      url,
      pool,
      sql,
      ...tablesOver(sql),
      migration,
      snapshot: (fn) => sql.transaction((tx) => fn(tablesOver(tx)), 'snapshot'),
      write: (fn) => sql.transaction((tx) => fn(tablesOver(tx)), 'write'),
      onPoolError: (listener) => {
        poolErrorListeners.add(listener);
      },
      close: () => (closing ??= pool.end().catch(() => undefined)),
    };
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
}
