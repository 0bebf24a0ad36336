/**
 * Start the real proxy — `node dist/cli/sipctl.js serve ...` — as a child process with its
 * own database and control socket in a temp dir, wait for its start line, and stop it with
 * SIGTERM. What a person runs is what the end-to-end tests run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI_PATH, REPO_ROOT, runCli, type CliResult } from './cli.js';

export interface ProxyProcess {
  child: ChildProcess;
  dir: string;
  db: string;
  control: string;
  /** Bound listeners as printed in the start line, e.g. { udp: 41234, tcp: 41234 }. */
  ports: Record<string, number>;
  /** Everything the proxy wrote on stderr so far. */
  stderr(): string;
  /** Run a sipctl command against this proxy's database and control socket. */
  cli(args: readonly string[]): Promise<CliResult>;
  stop(): Promise<number | null>;
}

export interface StartProxyOptions {
  /** Extra serve arguments (--listen defaults to udp and tcp on 127.0.0.1, ephemeral ports). */
  args?: readonly string[];
  /** Commands to run against the fresh database before the proxy starts (e.g. address add). */
  setup?: ReadonlyArray<readonly string[]>;
  dir?: string;
  /** The database (default: a SQLite file in the temp dir); a postgres:// URL shares one among proxies. */
  db?: string;
  timeoutMs?: number;
}

export async function startProxyProcess(opts: StartProxyOptions = {}): Promise<ProxyProcess> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'sipctl-e2e-'));
  const db = opts.db ?? join(dir, 'sipctl.db');
  const control = join(dir, 'sipctl.sock');
  const cli = (args: readonly string[]): Promise<CliResult> => runCli([...args, '--db', db, ...(needsControl(args) ? ['--control', control] : [])]);
  for (const cmd of opts.setup ?? []) {
    const r = await cli(cmd);
    if (r.code !== 0) throw new Error(`setup 'sipctl ${cmd.join(' ')}' failed: ${r.stderr}`);
  }
  const args = opts.args ?? [];
  const hasListen = args.includes('--listen');
  const child = spawn(
    process.execPath,
    [CLI_PATH, 'serve', '--db', db, '--control', control, ...(hasListen ? [] : ['--listen', 'udp:127.0.0.1:0', '--listen', 'tcp:127.0.0.1:0']), ...args],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const ports = await new Promise<Record<string, number>>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`proxy did not start within ${opts.timeoutMs ?? 15000} ms:\n${err}`));
    }, opts.timeoutMs ?? 15_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /sipctl serving on ([^(]+)\(/.exec(out);
      if (m) {
        clearTimeout(timer);
        const p: Record<string, number> = {};
        for (const spec of m[1]!.split(',')) {
          const mm = /^\s*(udp|tcp):.*:(\d+)\s*$/.exec(spec);
          if (mm && p[mm[1]!] === undefined) p[mm[1]!] = Number(mm[2]);
        }
        resolve(p);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`proxy exited with ${code} before starting:\n${err}`));
    });
  });
  return {
    child,
    dir,
    db,
    control,
    ports,
    stderr: () => err,
    cli,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) {
          cleanup();
          resolve(child.exitCode);
          return;
        }
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', (code) => {
          clearTimeout(timer);
          cleanup();
          resolve(code);
        });
        child.kill('SIGTERM');
      }),
  };
  function cleanup(): void {
    if (opts.dir === undefined) rmSync(dir, { recursive: true, force: true });
  }
}

function needsControl(args: readonly string[]): boolean {
  const sub = args[1];
  return sub === 'reload' || sub === 'dump' || sub === 'test' || sub === 'set-state' || args.includes('--reload');
}
