/**
 * Run the compiled sipctl CLI as a child process, the way a person or a script does:
 * `node dist/cli/sipctl.js ...`. Tests run after `make build`; in a quick loop run
 * `npx tsc -p tsconfig.json` first.
 *
 *   const r = await runCli(['address', 'list', '--json', '--db', dbPath]);
 *   expect(r.code).toBe(0);
 *   JSON.parse(r.stdout);
 *
 * The child gets the test's environment minus SIPCTL_DB / SIPCTL_CONTROL (so a developer's
 * own settings never leak into a test), plus `env`. Every run is bounded: a child still
 * running after `timeoutMs` is killed and the promise rejects.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI_PATH = join(REPO_ROOT, 'dist', 'cli', 'sipctl.js');

export interface CliResult {
  /** Exit code; null only when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunCliOptions {
  cwd?: string;
  /** Added to the environment; a value of undefined removes the variable. */
  env?: Record<string, string | undefined>;
  /** Kill the child after this long (default 20 s; a run normally takes well under 1 s). */
  timeoutMs?: number;
  /** Written to the child's stdin, which is then closed. */
  input?: string;
}

export function runCli(args: readonly string[], opts: RunCliOptions = {}): Promise<CliResult> {
  if (!existsSync(CLI_PATH)) {
    return Promise.reject(new Error(`${CLI_PATH} is missing: run 'make build' (or 'npx tsc -p tsconfig.json') first`));
  }
  const env: Record<string, string | undefined> = { ...process.env, SIPCTL_DB: undefined, SIPCTL_CONTROL: undefined, ...opts.env };
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key];
  const timeoutMs = opts.timeoutMs ?? 20_000;

  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_PATH, ...args], {
      cwd: opts.cwd ?? REPO_ROOT,
      env: env as NodeJS.ProcessEnv,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sipctl ${args.join(' ')} still running after ${timeoutMs} ms; killed`));
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** The non-empty lines a run wrote to stderr. */
export function stderrLines(r: CliResult): string[] {
  return r.stderr.split('\n').filter((l) => l.trim() !== '');
}

/** The non-empty lines a run wrote to stdout. */
export function stdoutLines(r: CliResult): string[] {
  return r.stdout.split('\n').filter((l) => l.trim() !== '');
}

export { useTempDirs } from './temp-dir.js';
