/**
 * Kamailio (Debian package `kamailio`) as a real peer in end-to-end tests — a registrar and
 * PBX front behind sipctl (test/fixtures/kamailio/*.cfg). `.ci/run` installs it; outside CI
 * a missing kamailio skips these tests, in CI (CI=true) it fails them.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './cli.js';

export function hasKamailio(): boolean {
  try {
    execFileSync('kamailio', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export const RUN_KAMAILIO = process.env.CI === 'true' || process.env.CI === '1' || hasKamailio();

export interface Kamailio {
  proc: ChildProcess;
  /** Everything it logged so far. */
  log(): string;
  stop(): Promise<void>;
}

/** Start test/fixtures/kamailio/NAME.cfg listening on `listen` (e.g. udp:127.0.0.1:5990); resolves once it has bound. */
export async function startKamailio(name: string, listen: string): Promise<Kamailio> {
  const dir = mkdtempSync(join(tmpdir(), 'sipctl-kam-'));
  const cfg = readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'kamailio', `${name}.cfg`), 'utf8')
    .replaceAll('LISTEN', listen)
    .replaceAll('WORKDIR', dir);
  writeFileSync(join(dir, 'kamailio.cfg'), cfg);
  const proc = spawn('kamailio', ['-f', join(dir, 'kamailio.cfg'), '-DD', '-E', '-m', '32', '-M', '8', '-Y', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kamailio did not start within 10 s:\n${log}`)), 10_000);
    proc.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run kamailio (${err.message}); install it: apt-get install -y kamailio`));
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`kamailio exited with ${code}:\n${log}`));
    });
    const poll = setInterval(() => {
      // The ctl process starts last: once it listens, the SIP workers are up.
      if (log.includes('io_listen_loop')) {
        clearInterval(poll);
        clearTimeout(timer);
        proc.removeAllListeners('exit');
        resolve();
      }
    }, 50);
    proc.once('exit', () => clearInterval(poll));
  });
  return {
    proc,
    log: () => log,
    stop: () =>
      new Promise<void>((resolve) => {
        const done = (): void => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        };
        if (proc.exitCode !== null || proc.signalCode !== null) return done();
        const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
        proc.once('exit', () => {
          clearTimeout(t);
          done();
        });
        proc.kill('SIGTERM');
      }),
  };
}
