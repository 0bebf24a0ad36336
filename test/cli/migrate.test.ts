import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { runCli, stderrLines, stdoutLines, useTempDirs } from '../helpers/cli.js';

function tables(dbPath: string): string[] {
  const db = new BetterSqlite3(dbPath, { readonly: true });
  try {
    const rows = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[];
    return rows.map((r) => r.name).filter((n) => !n.startsWith('sqlite_'));
  } finally {
    db.close();
  }
}

describe('sipctl migrate', () => {
  const tempDir = useTempDirs();

  it('creates the database and its folder, says what it applied, then that it is up to date', async () => {
    const db = join(tempDir(), 'data', 'sipctl.db');
    const first = await runCli(['migrate', '--db', db]);
    expect(first.code).toBe(0);
    expect(first.stderr).toBe('');
    expect(stdoutLines(first)).toEqual([
      'applied 001_address.sql',
      'applied 002_dispatcher.sql',
      `database ${db} is at version 2`,
    ]);
    expect(tables(db)).toEqual(['address', 'dispatcher', 'schema_migrations']);

    const second = await runCli(['migrate', '--db', db]);
    expect(second.code).toBe(0);
    expect(stdoutLines(second)).toEqual([`database ${db} is up to date (version 2)`]);
  });

  it('uses ./data/sipctl.db from any working folder (migrations are found from the compiled code)', async () => {
    const cwd = tempDir();
    const r = await runCli(['migrate'], { cwd });
    expect(r.code).toBe(0);
    expect(stdoutLines(r).at(-1)).toBe('database ./data/sipctl.db is at version 2');
    expect(tables(join(cwd, 'data', 'sipctl.db'))).toContain('address');
  });

  it('honours SIPCTL_DB, and --db over it', async () => {
    const dir = tempDir();
    const fromEnv = join(dir, 'env.db');
    const fromFlag = join(dir, 'flag.db');
    expect((await runCli(['migrate'], { env: { SIPCTL_DB: fromEnv } })).code).toBe(0);
    expect(existsSync(fromEnv)).toBe(true);
    expect((await runCli(['migrate', '--db', fromFlag], { env: { SIPCTL_DB: fromEnv } })).code).toBe(0);
    expect(existsSync(fromFlag)).toBe(true);
  });

  it('several sipctl processes opening a fresh database at once apply each migration exactly once', async () => {
    const db = join(tempDir(), 'sipctl.db');
    const runs = await Promise.all(
      Array.from({ length: 6 }, (_, i) => runCli(['address', 'add', '1', `10.0.0.${i}`, '--db', db])),
    );
    for (const r of runs) expect([r.code, r.stderr]).toEqual([0, '']);
    const raw = new BetterSqlite3(db, { readonly: true });
    try {
      expect(raw.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all()).toEqual([1, 2]);
      expect(raw.prepare('SELECT count(*) FROM address').pluck().get()).toBe(6);
    } finally {
      raw.close();
    }
  });

  it('prints JSON with --json', async () => {
    const db = join(tempDir(), 'sipctl.db');
    const r = await runCli(['migrate', '--db', db, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ db, applied: ['001_address.sql', '002_dispatcher.sql'], version: 2 });
  });

  it('refuses a database from a newer sipctl with one line, exit 1, and changes nothing', async () => {
    const db = join(tempDir(), 'sipctl.db');
    expect((await runCli(['migrate', '--db', db])).code).toBe(0);
    const raw = new BetterSqlite3(db);
    raw.prepare("INSERT INTO schema_migrations VALUES (7, '007_future.sql', '2031-01-01T00:00:00Z')").run();
    raw.close();
    const before = readFileSync(db);

    const r = await runCli(['migrate', '--db', db]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(stderrLines(r)).toEqual([
      `sipctl: database ${db} was migrated to version 7 by a newer sipctl; this one knows up to 2 — upgrade sipctl`,
    ]);
    expect(readFileSync(db).equals(before)).toBe(true);
  });

  it('refuses a file that is not a database, naming it', async () => {
    const path = join(tempDir(), 'notes.txt');
    writeFileSync(path, 'not sqlite at all\n'.repeat(100));
    const r = await runCli(['migrate', '--db', path]);
    expect(r.code).toBe(1);
    const lines = stderrLines(r);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^sipctl: cannot open database .*notes\.txt: file is not a database/);
  });
});
