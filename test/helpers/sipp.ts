/**
 * Real SIPp calls for end-to-end tests: `uas.xml` PBXs and a `uac.xml` caller (the bench
 * scenarios, copied into test/fixtures/sipp). SIPp is the Debian package sip-tester; `.ci/run`
 * installs it. Outside CI a missing sipp skips these tests; in CI (CI=true) it fails them.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './cli.js';

export const UAC_XML = join(REPO_ROOT, 'test', 'fixtures', 'sipp', 'uac.xml');
export const UAS_XML = join(REPO_ROOT, 'test', 'fixtures', 'sipp', 'uas.xml');

export function hasSipp(): boolean {
  try {
    execFileSync('sipp', ['-v'], { stdio: 'ignore' });
    return true;
  } catch (err) {
    // sipp -v exits non-zero on some versions but still runs
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/** Run SIPp tests: always in CI (where a missing sipp must fail), else only when installed. */
export const RUN_SIPP = process.env.CI === 'true' || process.env.CI === '1' || hasSipp();

/** A port free for both UDP and TCP on 127.0.0.1 (SIPp binds both in some modes). */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const u = createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, '127.0.0.1', () => u.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error('no free port found');
}

export interface SippStats {
  successful: number;
  failed: number;
  current: number;
}

function readStats(dir: string): SippStats {
  const file = readdirSync(dir).find((f) => f.endsWith('.csv'));
  if (file === undefined) return { successful: 0, failed: 0, current: 0 };
  const lines = readFileSync(join(dir, file), 'utf8').trim().split('\n');
  const head = lines[0]!.split(';');
  const last = lines[lines.length - 1]!.split(';');
  const col = (name: string): number => Number(last[head.indexOf(name)] ?? 0);
  return { successful: col('SuccessfulCall(C)'), failed: col('FailedCall(C)'), current: col('CurrentCall') };
}

export interface Uas {
  port: number;
  proc: ChildProcess;
  stats(): SippStats;
  stop(): Promise<void>;
}

/** A SIPp PBX on 127.0.0.1:port answering every call (uas.xml). */
export async function startUas(
  port: number,
  transport: 'u1' | 't1' = 'u1',
  address = '127.0.0.1',
  opts: { answerOptions?: boolean; scenario?: string; pauseMs?: number } = {},
): Promise<Uas> {
  const dir = mkdtempSync(join(tmpdir(), 'sipctl-uas-'));
  const args = [...(opts.pauseMs === undefined ? [] : ['-d', String(opts.pauseMs)]),'-sf', opts.scenario ?? UAS_XML, '-t', transport, '-i', address, '-p', String(port), '-nostdin', '-trace_stat', '-stf', join(dir, 'uas.csv'), '-fd', '1'];
  // -aa: answer OPTIONS (our health probes) with 200 OK.
  if (opts.answerOptions) args.push('-aa');
  const proc = spawn('sipp', args, { stdio: 'ignore', detached: false });
  proc.on('error', () => {});
  await new Promise((r) => setTimeout(r, 300));
  return {
    port,
    proc,
    stats: () => readStats(dir),
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) {
          rmSync(dir, { recursive: true, force: true });
          resolve();
          return;
        }
        const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
        proc.once('exit', () => {
          clearTimeout(t);
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
        proc.kill('SIGTERM');
      }),
  };
}

export interface UacResult extends SippStats {
  code: number | null;
  stderr: string;
  /** SIPp's error log (unexpected messages, timeouts), first 4,000 characters: why calls failed. */
  errors: string;
}

/** Run `calls` calls of uac.xml at `rate` calls/s through the proxy and wait for SIPp to finish. */
export async function runUac(opts: {
  proxyPort: number;
  calls: number;
  rate: number;
  transport?: 'u1' | 't1';
  localPort?: number;
  address?: string;
  timeoutS?: number;
  /** The Request-URI's user part (SIPp's -s). */
  service?: string;
  /** Another caller scenario (default uac.xml). */
  scenario?: string;
  /** SIPp's -d: how long the scenario's <pause/> lasts (the call length), ms (default 0). */
  pauseMs?: number;
}): Promise<UacResult> {
  const dir = mkdtempSync(join(tmpdir(), 'sipctl-uac-'));
  const localPort = opts.localPort ?? (await freePort());
  const timeoutS = opts.timeoutS ?? Math.ceil(opts.calls / opts.rate) + 20;
  const args = [
    '-sf', opts.scenario ?? UAC_XML, '-t', opts.transport ?? 'u1', '-s', opts.service ?? 'e2e', '-i', opts.address ?? '127.0.0.1', '-p', String(localPort),
    `127.0.0.1:${opts.proxyPort}`, '-r', String(opts.rate), '-m', String(opts.calls), '-d', String(opts.pauseMs ?? 0), '-nostdin',
    '-timeout', `${timeoutS}s`, '-timeout_error', '-trace_stat', '-stf', join(dir, 'uac.csv'), '-fd', '1',
    '-trace_err', '-error_file', join(dir, 'errors.log'),
  ];
  return new Promise((resolve, reject) => {
    const proc = spawn('sipp', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    proc.on('error', (err) => {
      rmSync(dir, { recursive: true, force: true });
      reject(new Error(`cannot run sipp (${err.message}); install it: apt-get install -y sip-tester`));
    });
    const kill = setTimeout(() => proc.kill('SIGKILL'), (timeoutS + 15) * 1000);
    proc.on('exit', (code) => {
      clearTimeout(kill);
      const s = readStats(dir);
      let errors = '';
      try {
        errors = readFileSync(join(dir, 'errors.log'), 'latin1').slice(0, 4000);
      } catch {
        // no error log: no errors
      }
      rmSync(dir, { recursive: true, force: true });
      resolve({ ...s, code, stderr, errors });
    });
  });
}
