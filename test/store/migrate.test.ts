import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { defaultMigrationsDir, listMigrations, migrate, openStore, schemaVersion } from '../../src/store/index.js';
import { useTempDirs } from '../helpers/temp-dir.js';
import { catchError } from '../helpers/errors.js';

function tableNames(db: BetterSqlite3.Database): string[] {
  const rows = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[];
  return rows.map((r) => r.name).filter((n) => !n.startsWith('sqlite_'));
}

/** A migrations folder holding the real 001 and 002 plus the extra files given. */
function migrationsWith(dir: string, extra: Record<string, string>): string {
  const target = join(dir, 'migrations');
  mkdirSync(target);
  for (const name of readdirSync(defaultMigrationsDir())) {
    copyFileSync(join(defaultMigrationsDir(), name), join(target, name));
  }
  for (const [name, sql] of Object.entries(extra)) writeFileSync(join(target, name), sql);
  return target;
}

describe('migrations', () => {
  const tempDir = useTempDirs();

  it('finds the shipped migrations from the sources', () => {
    const names = listMigrations().map((m) => m.name);
    expect(names.slice(0, 2)).toEqual(['001_address.sql', '002_dispatcher.sql']);
  });

  it('applies every migration once on a fresh file and records it', () => {
    const path = join(tempDir(), 'sipctl.db');
    const store = openStore(path);
    try {
      expect(store.migration?.applied.map((m) => m.name)).toEqual(['001_address.sql', '002_dispatcher.sql']);
      expect(store.migration?.version).toBe(2);
      expect(tableNames(store.db)).toEqual(['address', 'dispatcher', 'schema_migrations']);
      const recorded = store.db.prepare('SELECT version, name, applied_at FROM schema_migrations ORDER BY version').all() as {
        version: number;
        name: string;
        applied_at: string;
      }[];
      expect(recorded.map((r) => [r.version, r.name])).toEqual([
        [1, '001_address.sql'],
        [2, '002_dispatcher.sql'],
      ]);
      for (const r of recorded) expect(Number.isNaN(Date.parse(r.applied_at))).toBe(false);
    } finally {
      store.close();
    }
  });

  it('applies nothing the second time', () => {
    const path = join(tempDir(), 'sipctl.db');
    openStore(path).close();
    const again = openStore(path);
    try {
      expect(again.migration).toEqual({ applied: [], version: 2, latest: 2 });
      // And migrate() called directly on an open handle is a no-op as well.
      expect(migrate(again.db).applied).toEqual([]);
      const n = again.db.prepare('SELECT count(*) AS n FROM schema_migrations').get() as { n: number };
      expect(n.n).toBe(2);
    } finally {
      again.close();
    }
  });

  it('refuses a database migrated by a newer sipctl, and leaves it as it was', () => {
    const path = join(tempDir(), 'sipctl.db');
    openStore(path).close();
    const raw = new BetterSqlite3(path);
    raw.prepare("INSERT INTO schema_migrations VALUES (7, '007_future.sql', '2030-01-01T00:00:00Z')").run();
    raw.close();

    const err = catchError(() => openStore(path));
    expect(err.code).toBe('E_STORE_TOO_NEW');
    expect(err.message).toBe(
      `database ${path} was migrated to version 7 by a newer sipctl; this one knows up to 2 — upgrade sipctl`,
    );
    const check = new BetterSqlite3(path, { readonly: true });
    expect(schemaVersion(check)).toBe(7);
    expect((check.prepare('SELECT count(*) AS n FROM schema_migrations').get() as { n: number }).n).toBe(3);
    check.close();
  });

  it('rolls a failing migration back wholly, names the file, and applies it once fixed', () => {
    const dir = tempDir();
    const migrationsDir = migrationsWith(dir, {
      // The first statement succeeds, the second fails: the table must not survive.
      '003_half.sql': 'CREATE TABLE half_done (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n',
    });
    const path = join(dir, 'sipctl.db');

    const err = catchError(() => openStore(path, { migrationsDir }));
    expect(err.code).toBe('E_STORE_MIGRATION_FAILED');
    expect(err.message).toContain('003_half.sql');
    expect(err.message).toContain('no such table: no_such_table');

    const raw = new BetterSqlite3(path);
    expect(tableNames(raw)).toEqual(['address', 'dispatcher', 'schema_migrations']);
    expect(schemaVersion(raw)).toBe(2);
    raw.close();

    writeFileSync(join(migrationsDir, '003_half.sql'), 'CREATE TABLE half_done (x INTEGER);\n');
    const store = openStore(path, { migrationsDir });
    try {
      expect(store.migration?.applied.map((m) => m.name)).toEqual(['003_half.sql']);
      expect(tableNames(store.db)).toContain('half_done');
    } finally {
      store.close();
    }
  });

  it('refuses two migration files with one version', () => {
    const dir = tempDir();
    const migrationsDir = migrationsWith(dir, { '002_again.sql': 'SELECT 1;' });
    const err = catchError(() => openStore(join(dir, 'sipctl.db'), { migrationsDir }));
    expect(err.code).toBe('E_STORE_MIGRATION_CLASH');
    expect(err.message).toContain('002_again.sql');
  });

  it('ignores files that are not NNN_name.sql', () => {
    const dir = tempDir();
    const migrationsDir = migrationsWith(dir, { 'README.md': '# notes', '003_x.sql.bak': 'garbage' });
    expect(listMigrations(migrationsDir).map((m) => m.version)).toEqual([1, 2]);
  });
});
