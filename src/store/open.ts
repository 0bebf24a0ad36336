/**
 * Opening the SQLite store. The CLI and a running proxy share one file: WAL lets the
 * proxy's reload read while the CLI writes, and busy_timeout makes a writer wait for
 * another writer's lock instead of failing at once with SQLITE_BUSY.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import type { Database } from 'better-sqlite3';
import { SipctlError } from '../errors.js';
import { AddressRepository } from './address.js';
import { DispatcherRepository } from './dispatcher.js';
import { assertMigrated, migrate, type MigrateReport } from './migrate.js';
import { messageOf } from './sqlite-errors.js';

/** How long a statement waits for another connection's write lock before SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 5000;

export interface OpenStoreOptions {
  /** Open read-only (the file must exist and be migrated already). Default false. */
  readonly?: boolean;
  /** Apply pending migrations on open. Default true (false when readonly). */
  migrate?: boolean;
  /** Override the migrations folder (tests). */
  migrationsDir?: string;
}

export interface Store {
  /** The path as given (relative paths stay relative, so messages show what was typed). */
  readonly path: string;
  readonly db: Database;
  readonly address: AddressRepository;
  readonly dispatcher: DispatcherRepository;
  /** What migrating on open did; null when the open did not migrate. */
  readonly migration: MigrateReport | null;
  close(): void;
}

function openError(dbPath: string, err: unknown): SipctlError {
  return new SipctlError(
    'E_STORE_OPEN',
    `cannot open database ${dbPath}: ${messageOf(err)} (check --db / SIPCTL_DB points at a sipctl database)`,
    { cause: err },
  );
}

function isInMemory(dbPath: string): boolean {
  return dbPath === ':memory:' || dbPath === '';
}

/**
 * Open (creating when missing, unless readonly) the database at `dbPath` and migrate it.
 * An unreadable or non-SQLite file → E_STORE_OPEN naming the path; a database migrated by
 * a newer sipctl → E_STORE_TOO_NEW; a read-only open of an unmigrated file → E_STORE_NOT_MIGRATED.
 */
export function openStore(dbPath: string, opts: OpenStoreOptions = {}): Store {
  const readonly = opts.readonly ?? false;
  const shouldMigrate = !readonly && (opts.migrate ?? true);

  if (!readonly && !isInMemory(dbPath)) {
    try {
      mkdirSync(dirname(dbPath), { recursive: true });
    } catch (err) {
      throw openError(dbPath, err);
    }
  }

  let db: Database;
  try {
    db = new BetterSqlite3(dbPath, { readonly, fileMustExist: readonly });
  } catch (err) {
    throw openError(dbPath, err);
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
      throw openError(dbPath, err);
    }

    let migration: MigrateReport | null = null;
    if (shouldMigrate) {
      migration = migrate(db, { migrationsDir: opts.migrationsDir });
    } else if (readonly) {
      assertMigrated(db, { migrationsDir: opts.migrationsDir });
    }

    return {
      path: dbPath,
      db,
      address: new AddressRepository(db),
      dispatcher: new DispatcherRepository(db),
      migration,
      close: () => {
        if (db.open) db.close();
      },
    };
  } catch (err) {
    db.close();
    throw err;
  }
}
