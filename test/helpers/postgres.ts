/**
 * A throwaway PostgreSQL server for the tests: `initdb` + `pg_ctl` in a temp folder,
 * listening on 127.0.0.1 on a free port (and a Unix socket inside that folder), small
 * (shared_buffers 16 MB, fsync off: nothing here must survive a crash), stopped and deleted
 * at the end.
 *
 *   const pg = usePostgres();          // at the top of a file or describe: starts in beforeAll
 *   const url = await pg().createDatabase();   // a fresh, empty database per test
 *
 * The server binaries come from the Debian package `postgresql` (apt-get install -y
 * postgresql), which puts them in /usr/lib/postgresql/<version>/bin without symlinks in PATH;
 * they are looked for there (newest version first), then in PATH. initdb and pg_ctl refuse to
 * run as root: a root test process runs them as the `postgres` user the package creates,
 * with the temp folder owned by that user.
 *
 * Without the binaries, outside CI the tests skip and say why (RUN_PG, PG_SKIP_REASON); in CI
 * (CI=true) they run and fail, as the SIPp tests do.
 *
 * initdb is the slow part (a few seconds of CPU): its output for this PostgreSQL version is
 * kept as a template in the temp folder and copied for each server, which is what initdb
 * would produce again.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';

const IN_CI = process.env.CI === 'true' || process.env.CI === '1';
const SUPERUSER = 'sipctl';

/** The folder holding initdb, pg_ctl and psql, or null. */
function findBinDir(): string | null {
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => /^[0-9]+(\.[0-9]+)?$/.test(v) && existsSync(join(root, v, 'bin', 'pg_ctl')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions.length > 0) return join(root, versions[0]!, 'bin');
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && existsSync(join(dir, 'pg_ctl')) && existsSync(join(dir, 'initdb'))) return dir;
  }
  return null;
}

export const PG_BIN = findBinDir();

/** Whether the PostgreSQL tests run: always in CI (a missing server fails them), else when installed. */
export const RUN_PG = IN_CI || PG_BIN !== null;

export const PG_SKIP_REASON =
  'PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or PATH; ' +
  'install them with `apt-get install -y postgresql` to run the PostgreSQL tests';

if (!RUN_PG) console.log(`skipping PostgreSQL tests: ${PG_SKIP_REASON}`);

/** When root: the uid/gid to run the server as (initdb and postgres refuse root). */
function serverUser(): { uid: number; gid: number } | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new Error('the tests run as root and there is no `postgres` user to run PostgreSQL as (the Debian package postgresql creates it)');
  }
}

function binary(name: string): string {
  if (PG_BIN === null) throw new Error(PG_SKIP_REASON);
  return join(PG_BIN, name);
}

/** Run a server binary as the server user; throws with its output when it fails. */
function runAs(user: { uid: number; gid: number } | null, name: string, args: string[], timeoutMs = 60_000): string {
  const r = spawnSync(binary(name), args, {
    encoding: 'utf8',
    timeout: timeoutMs,
    cwd: tmpdir(),
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C' },
    ...(user ?? {}),
  });
  if (r.status !== 0) {
    throw new Error(`${name} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout}${r.stderr}`);
  }
  return r.stdout;
}

function chownTree(path: string, user: { uid: number; gid: number } | null): void {
  if (user === null) return;
  chownSync(path, user.uid, user.gid);
}

/** The initdb output for this server version, made once and copied for each server. */
function template(user: { uid: number; gid: number } | null): string {
  const version = PG_BIN!.replace(/[^A-Za-z0-9]+/g, '_');
  const dir = join(tmpdir(), `sipctl-pg-template-${process.getuid?.() ?? 'u'}-${version}`);
  if (existsSync(join(dir, 'PG_VERSION')) && existsSync(join(dir, 'global', 'pg_control'))) return dir;
  const work = mkdtempSync(join(tmpdir(), 'sipctl-pg-initdb-'));
  chownTree(work, user);
  const data = join(work, 'data');
  runAs(user, 'initdb', ['-D', data, '-U', SUPERUSER, '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], 120_000);
  try {
    renameSync(data, dir); // atomic: a concurrent run that made it first wins, this copy goes
  } catch {
    // another process made it meanwhile
  }
  rmSync(work, { recursive: true, force: true });
  if (!existsSync(join(dir, 'PG_VERSION'))) throw new Error(`could not prepare the PostgreSQL template in ${dir}`);
  return dir;
}

async function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

let databaseSeq = 0;

export class TestPostgres {
  private running = false;

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly user: { uid: number; gid: number } | null,
  ) {}

  /** Copy the template into a temp folder and start a server on a free port. */
  static async start(): Promise<TestPostgres> {
    const user = serverUser();
    const source = template(user);
    for (let attempt = 0; ; attempt++) {
      const dir = mkdtempSync(join(tmpdir(), 'sipctl-pg-'));
      chownTree(dir, user);
      // cp -a keeps owner and modes (the server insists on a 0700 data folder of its own user).
      execFileSync('cp', ['-a', source, join(dir, 'data')]);
      const server = new TestPostgres(dir, await freeTcpPort(), user);
      try {
        await server.startServer();
        return server;
      } catch (err) {
        rmSync(dir, { recursive: true, force: true });
        if (attempt >= 2) throw err; // the port may have been taken meanwhile: try another
      }
    }
  }

  /** A URL for `database` (default: the maintenance database `postgres`). */
  url(database = 'postgres'): string {
    return `postgres://${SUPERUSER}@127.0.0.1:${this.port}/${database}`;
  }

  /** A new empty database; returns its URL. */
  async createDatabase(): Promise<string> {
    const name = `t${process.pid}_${++databaseSeq}`;
    await this.query(this.url(), `CREATE DATABASE ${name}`);
    return this.url(name);
  }

  /** Run SQL as the superuser (a client of our own, not sipctl's). */
  async query<T extends Record<string, unknown> = Record<string, unknown>>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return (await client.query(text, params)).rows as T[];
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** Run `psql -c SQL` on `url`, the way an operator or a provisioning script would. */
  psql(url: string, sql: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(binary('psql'), ['-X', '-v', 'ON_ERROR_STOP=1', '-q', '-d', url, '-c', sql], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, PGCONNECT_TIMEOUT: '5' },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** Start the server again after stop() (same folder, same port). */
  async restart(): Promise<void> {
    await this.startServer();
  }

  /** Stop the server (fast shutdown: connections are closed), keeping its folder. */
  async stopServer(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    runAs(this.user, 'pg_ctl', ['-D', join(this.dir, 'data'), '-m', 'fast', '-w', '-t', '30', 'stop']);
  }

  /** Stop the server and delete its folder. */
  async stop(): Promise<void> {
    try {
      await this.stopServer();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  private async startServer(): Promise<void> {
    const options = [
      '-c listen_addresses=127.0.0.1',
      `-c port=${this.port}`,
      `-c unix_socket_directories=${this.dir}`,
      '-c fsync=off',
      '-c synchronous_commit=off',
      '-c full_page_writes=off',
      '-c shared_buffers=16MB',
      '-c max_connections=80',
      '-c max_wal_size=64MB',
      '-c log_min_messages=warning',
    ].join(' ');
    runAs(this.user, 'pg_ctl', ['-D', join(this.dir, 'data'), '-o', options, '-l', join(this.dir, 'server.log'), '-w', '-t', '60', 'start']);
    this.running = true;
  }
}

/**
 * Start a server before the tests of the enclosing block and stop it after them; returns a
 * getter for it. Without the binaries outside CI it starts nothing (the tests skip with RUN_PG).
 */
export function usePostgres(): () => TestPostgres {
  let server: TestPostgres | undefined;
  beforeAll(async () => {
    if (!RUN_PG) return;
    server = await TestPostgres.start();
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
    server = undefined;
  }, 60_000);
  return () => {
    if (server === undefined) throw new Error(RUN_PG ? 'the PostgreSQL server did not start (see beforeAll)' : PG_SKIP_REASON);
    return server;
  };
}
