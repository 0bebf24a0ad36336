/**
 * The settings this feature adds (`db` as a postgres:// URL, the `cluster` block, `--node`),
 * validated like every other: a safe default, one clear line for a bad value, exit 2 from
 * `sipctl serve` before anything starts.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyConfig, defaultConfig } from '../../src/config/schema.js';
import { SipctlError } from '../../src/errors.js';
import { runCli, stderrLines, useTempDirs } from '../helpers/cli.js';

function refusal(input: unknown): SipctlError {
  try {
    applyConfig(defaultConfig(), input);
  } catch (err) {
    expect(err).toBeInstanceOf(SipctlError);
    return err as SipctlError;
  }
  throw new Error('expected the config to be refused');
}

describe('cluster settings', () => {
  it('have safe defaults', () => {
    expect(defaultConfig().cluster).toEqual({ node: undefined, heartbeatS: 5, reloadDelayMs: 50, retryMaxS: 10 });
  });

  it('take valid values', () => {
    const c = applyConfig(defaultConfig(), {
      db: 'postgres://sipctl@db.example.com:5432/sipctl',
      cluster: { node: 'edge-1', heartbeatS: 2, reloadDelayMs: 0, retryMaxS: 30 },
    });
    expect(c.db).toBe('postgres://sipctl@db.example.com:5432/sipctl');
    expect(c.cluster).toEqual({ node: 'edge-1', heartbeatS: 2, reloadDelayMs: 0, retryMaxS: 30 });
  });

  it.each([
    [{ cluster: { nodes: 'x' } }, 'E_CONFIG_UNKNOWN_KEY', 'config cluster.nodes: unknown option (known: node, heartbeatS, reloadDelayMs, retryMaxS)'],
    [{ cluster: { heartbeatS: 0 } }, 'E_CONFIG_BAD_VALUE', 'config cluster.heartbeatS: expected a whole number from 1 to 3600, got 0'],
    [{ cluster: { reloadDelayMs: -1 } }, 'E_CONFIG_BAD_VALUE', 'config cluster.reloadDelayMs: expected a whole number from 0 to 10000, got -1'],
    [{ cluster: { retryMaxS: 'soon' } }, 'E_CONFIG_BAD_VALUE', 'config cluster.retryMaxS: expected a whole number from 1 to 3600, got "soon"'],
    [{ cluster: { node: 'a b' } }, 'E_CONFIG_BAD_VALUE', 'config cluster.node: expected up to 48 letters, digits or . _ : @ / -, got "a b"'],
    [{ cluster: 'yes' }, 'E_CONFIG_BAD_VALUE', 'config cluster: expected a mapping'],
    [{ db: 'postgres://sipctl@db.example.com' }, 'E_STORE_BAD_URL', 'config db: postgres://sipctl@db.example.com names no database; expected postgres://USER@HOST:PORT/DATABASE'],
  ])('refuses %j with one line', (input, code, message) => {
    const err = refusal(input);
    expect(err.code).toBe(code);
    expect(err.exitCode).toBe(2);
    expect(err.message).toBe(message);
  });

  describe('sipctl serve', () => {
    const tempDir = useTempDirs();

    it('refuses a bad cluster setting and a bad --node before starting: one line, exit 2', async () => {
      const dir = tempDir();
      const cfg = join(dir, 'bad.yaml');
      writeFileSync(cfg, 'cluster:\n  heartbeatS: 0\n');
      for (const args of [['--config', cfg], ['--node', 'no spaces please']]) {
        const r = await runCli(['serve', '--listen', 'udp:127.0.0.1:0', '--db', join(dir, 'x.db'), '--control', join(dir, 's.sock'), ...args]);
        expect(r.code).toBe(2);
        expect(stderrLines(r)).toHaveLength(1);
        expect(stderrLines(r)[0]).toMatch(/^sipctl: config cluster\.(heartbeatS|node): /);
      }
    });

    it('a PostgreSQL server that is not there: one line naming it, exit 1', async () => {
      const dir = tempDir();
      const r = await runCli(['serve', '--listen', 'udp:127.0.0.1:0', '--db', 'postgres://sipctl@127.0.0.1:1/sipctl', '--control', join(dir, 's.sock')]);
      expect(r.code).toBe(1);
      expect(stderrLines(r)).toHaveLength(1);
      expect(stderrLines(r)[0]).toMatch(/^sipctl: cannot connect to PostgreSQL database postgres:\/\/sipctl@127\.0\.0\.1:1\/sipctl: .*ECONNREFUSED/);
    });
  });
});
