/**
 * The migration runner. Migrations are the files `migrations/NNN_name.sql`, applied in
 * version order, each in its own transaction, and recorded in `schema_migrations` so that
 * running again applies nothing twice. A database migrated by a newer sipctl (a recorded
 * version this code does not know) is refused rather than written to with an older idea
 * of the schema.
 *
 * A migration file must not contain BEGIN / COMMIT of its own: the runner wraps it.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Database } from 'better-sqlite3';
import { SipctlError } from '../errors.js';
import { defaultMigrationsDir } from './migrations-dir.js';
import { messageOf } from './sqlite-errors.js';

/** One migration file found on disk. */
export interface Migration {
  readonly version: number;
  /** The file name, e.g. `001_address.sql`; recorded in schema_migrations.name. */
  readonly name: string;
  readonly file: string;
}

export interface MigrateOptions {
  /** Where the NNN_*.sql files are; defaults to the package's own migrations folder. */
  readonly migrationsDir?: string;
}

export interface MigrateReport {
  /** The migrations this run applied, in order (empty when the database was up to date). */
  readonly applied: readonly Migration[];
  /** The database's version after the run (the highest recorded version; 0 when empty). */
  readonly version: number;
  /** The highest version this sipctl knows. */
  readonly latest: number;
}

const MIGRATION_FILE = /^(\d+)_[A-Za-z0-9_.-]+\.sql$/;

/** The migrations in `dir`, sorted by version. Two files with one version are refused. */
export function listMigrations(dir: string = defaultMigrationsDir()): Migration[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    throw new SipctlError('E_STORE_NO_MIGRATIONS', `cannot read the migrations folder ${dir}: ${messageOf(err)}`);
  }
  const byVersion = new Map<number, Migration>();
  for (const name of names) {
    const m = MIGRATION_FILE.exec(name);
    if (m === null) continue;
    const version = Number(m[1]);
    const seen = byVersion.get(version);
    if (seen !== undefined) {
      throw new SipctlError(
        'E_STORE_MIGRATION_CLASH',
        `migrations ${seen.name} and ${name} in ${dir} share version ${version}; renumber one of them`,
      );
    }
    byVersion.set(version, { version, name, file: join(dir, name) });
  }
  return [...byVersion.values()].sort((a, b) => a.version - b.version);
}

function ensureMigrationsTable(db: Database): void {
  db.exec(
    `CREATE TABLE IF NOT EXISTS schema_migrations (
       version    INTEGER PRIMARY KEY,
       name       TEXT NOT NULL,
       applied_at TEXT NOT NULL
     )`,
  );
}

function hasMigrationsTable(db: Database): boolean {
  const row = db
    .prepare("SELECT 1 AS present FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
    .get();
  return row !== undefined;
}

function recordedVersions(db: Database): Set<number> {
  if (!hasMigrationsTable(db)) return new Set();
  const rows = db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[];
  return new Set(rows.map((r) => r.version));
}

function highest(versions: Iterable<number>): number {
  let max = 0;
  for (const v of versions) if (v > max) max = v;
  return max;
}

function refuseTooNew(db: Database, recorded: number, latest: number): void {
  if (recorded > latest) {
    throw new SipctlError(
      'E_STORE_TOO_NEW',
      `database ${db.name} was migrated to version ${recorded} by a newer sipctl; ` +
        `this one knows up to ${latest} — upgrade sipctl`,
    );
  }
}

/** The database's schema version: the highest recorded migration (0 for a fresh file). */
export function schemaVersion(db: Database): number {
  return highest(recordedVersions(db));
}

/**
 * Check, without writing, that the database's schema is exactly what this code knows:
 * for read-only opens (the proxy's reload), where migrating is not an option.
 */
export function assertMigrated(db: Database, opts: MigrateOptions = {}): number {
  const known = listMigrations(opts.migrationsDir);
  const latest = highest(known.map((m) => m.version));
  const recorded = recordedVersions(db);
  refuseTooNew(db, highest(recorded), latest);
  const missing = known.filter((m) => !recorded.has(m.version));
  if (missing.length > 0) {
    throw new SipctlError(
      'E_STORE_NOT_MIGRATED',
      `database ${db.name} lacks migration ${missing.map((m) => m.name).join(', ')}; ` +
        `run 'sipctl migrate --db ${db.name}'`,
    );
  }
  return highest(recorded);
}

/**
 * Apply every known migration the database has not recorded, in version order.
 *
 * Each migration runs in a BEGIN IMMEDIATE transaction together with its
 * schema_migrations row, and re-checks inside that transaction whether it was recorded
 * meanwhile: two sipctl processes migrating the same file at once apply each migration
 * exactly once (the second waits on the write lock, then sees the record and skips).
 * A failing migration rolls back wholly, leaving the database at the previous version.
 */
export function migrate(db: Database, opts: MigrateOptions = {}): MigrateReport {
  const known = listMigrations(opts.migrationsDir);
  const latest = highest(known.map((m) => m.version));
  ensureMigrationsTable(db);
  refuseTooNew(db, highest(recordedVersions(db)), latest);

  const isRecorded = db.prepare('SELECT 1 AS present FROM schema_migrations WHERE version = ?');
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  const applied: Migration[] = [];

  for (const migration of known) {
    let sql: string;
    try {
      sql = readFileSync(migration.file, 'utf8');
    } catch (err) {
      throw new SipctlError('E_STORE_MIGRATION_FAILED', `cannot read migration ${migration.file}: ${messageOf(err)}`);
    }
    const applyOne = db.transaction((): boolean => {
      if (isRecorded.get(migration.version) !== undefined) return false;
      db.exec(sql);
      record.run(migration.version, migration.name, new Date().toISOString());
      return true;
    });
    let didApply: boolean;
    try {
      didApply = applyOne.immediate();
    } catch (err) {
      if (err instanceof SipctlError) throw err;
      throw new SipctlError(
        'E_STORE_MIGRATION_FAILED',
        `migration ${migration.file} failed: ${messageOf(err)}; nothing from it was applied ` +
          `(database ${db.name} stays at version ${schemaVersion(db)})`,
        { cause: err },
      );
    }
    if (didApply) applied.push(migration);
  }
  return { applied, version: schemaVersion(db), latest };
}
