import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, stderrLines, stdoutLines, useTempDirs } from '../helpers/cli.js';
import { useStores } from '../helpers/stores.js';

const APPLIED = ['applied 001_address.sql', 'applied 002_dispatcher.sql', 'applied 003_cluster.sql', 'applied 004_cdr.sql'];
const TABLES = ['address', 'cdr', 'cluster_command', 'cluster_command_result', 'dispatcher', 'node', 'node_table', 'schema_migrations', 'table_version'];

const stores = useStores();

describe('sipctl migrate: SQLite files', () => {
  const tempDir = useTempDirs();

  it('creates the database and its folder', async () => {
    const db = join(tempDir(), 'data', 'sipctl.db');
    const first = await runCli(['migrate', '--db', db]);
    expect(first.code).toBe(0);
    expect(existsSync(db)).toBe(true);
  });

  it('uses ./data/sipctl.db from any working folder (migrations are found from the compiled code)', async () => {
    const cwd = tempDir();
    const r = await runCli(['migrate'], { cwd });
    expect(r.code).toBe(0);
    expect(stdoutLines(r).at(-1)).toBe('database ./data/sipctl.db is at version 4');
    expect(existsSync(join(cwd, 'data', 'sipctl.db'))).toBe(true);
  });

  it('refuses a newer database and changes nothing, not one byte', async () => {
    const db = join(tempDir(), 'sipctl.db');
    expect((await runCli(['migrate', '--db', db])).code).toBe(0);
    const { default: Database } = await import('better-sqlite3');
    const raw = new Database(db);
    raw.prepare("INSERT INTO schema_migrations VALUES (7, '007_future.sql', '2031-01-01T00:00:00Z')").run();
    raw.close();
    const before = readFileSync(db);
    expect((await runCli(['migrate', '--db', db])).code).toBe(1);
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

describe('sipctl migrate: PostgreSQL locations', () => {
  it('a server that is not there: one line naming it (password masked), exit 1', async () => {
    const r = await runCli(['migrate', '--db', 'postgres://sipctl:pw@127.0.0.1:1/sipctl']);
    expect(r.code).toBe(1);
    const lines = stderrLines(r);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^sipctl: cannot connect to PostgreSQL database postgres:\/\/sipctl:\*\*\*@127\.0\.0\.1:1\/sipctl: .*ECONNREFUSED/);
  });

  it('a URL without a database: one line, exit 2', async () => {
    const r = await runCli(['migrate', '--db', 'postgresql://127.0.0.1']);
    expect(r.code).toBe(2);
    expect(stderrLines(r)).toEqual([
      'sipctl: --db postgresql://127.0.0.1 names no database; expected postgres://USER@HOST:PORT/DATABASE',
    ]);
  });
});

for (const kind of stores) describe.skipIf(kind.skip)(`sipctl migrate (${kind.name})`, () => {
  it('says what it applied, then that it is up to date', async () => {
    const db = await kind.fresh();
    const first = await runCli(['migrate', '--db', db]);
    expect(first.code).toBe(0);
    expect(first.stderr).toBe('');
    expect(stdoutLines(first)).toEqual([...APPLIED, `database ${db} is at version 4`]);
    expect(await kind.tables(db)).toEqual(TABLES);

    const second = await runCli(['migrate', '--db', db]);
    expect(second.code).toBe(0);
    expect(stdoutLines(second)).toEqual([`database ${db} is up to date (version 4)`]);
  });

  it('honours SIPCTL_DB, and --db over it', async () => {
    const fromEnv = await kind.fresh();
    const fromFlag = await kind.fresh();
    expect(stdoutLines(await runCli(['migrate'], { env: { SIPCTL_DB: fromEnv } })).at(-1)).toBe(`database ${fromEnv} is at version 4`);
    expect(stdoutLines(await runCli(['migrate', '--db', fromFlag], { env: { SIPCTL_DB: fromEnv } })).at(-1)).toBe(
      `database ${fromFlag} is at version 4`,
    );
  });

  it('several sipctl processes opening a fresh database at once apply each migration exactly once', async () => {
    const db = await kind.fresh();
    const runs = await Promise.all(Array.from({ length: 6 }, (_, i) => runCli(['address', 'add', '1', `10.0.0.${i}`, '--db', db])));
    for (const r of runs) expect([r.code, r.stderr]).toEqual([0, '']);
    expect((await kind.raw(db, 'SELECT version FROM schema_migrations ORDER BY version')).map((r) => Number(r.version))).toEqual([1, 2, 3, 4]);
    expect(Number((await kind.raw(db, 'SELECT count(*) AS n FROM address'))[0]!.n)).toBe(6);
  });

  it('prints JSON with --json', async () => {
    const db = await kind.fresh();
    const r = await runCli(['migrate', '--db', db, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ db, applied: ['001_address.sql', '002_dispatcher.sql', '003_cluster.sql', '004_cdr.sql'], version: 4 });
  });

  it('refuses a database from a newer sipctl with one line, exit 1, and changes nothing', async () => {
    const db = await kind.fresh();
    expect((await runCli(['migrate', '--db', db])).code).toBe(0);
    await kind.raw(db, "INSERT INTO schema_migrations VALUES (7, '007_future.sql', '2031-01-01T00:00:00Z')");
    const r = await runCli(['migrate', '--db', db]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(stderrLines(r)).toEqual([
      `sipctl: database ${db} was migrated to version 7 by a newer sipctl; this one knows up to 4 — upgrade sipctl`,
    ]);
    expect((await kind.raw(db, 'SELECT version FROM schema_migrations ORDER BY version')).map((r) => Number(r.version))).toEqual([1, 2, 3, 4, 7]);
    // And so does every other command: nothing is written with an older idea of the schema.
    const add = await runCli(['address', 'add', '1', '10.0.0.1', '--db', db]);
    expect(add.code).toBe(1);
    expect(Number((await kind.raw(db, 'SELECT count(*) AS n FROM address'))[0]!.n)).toBe(0);
  });
});
