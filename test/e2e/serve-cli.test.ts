/**
 * `sipctl serve` as a person runs it: option and config errors are one line and exit 2;
 * a config file sets options and flags override it; SIGTERM stops it with exit 0.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { startProxyProcess } from '../helpers/proxy.js';
import { sipRequest, UdpPeer, unique } from '../helpers/sip-peer.js';

const dir = mkdtempSync(join(tmpdir(), 'sipctl-serve-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function serve(args: string[]) {
  return runCli(['serve', '--db', join(dir, 'db'), '--control', join(dir, 'sock'), ...args], { timeoutMs: 10_000 });
}

describe('sipctl serve refuses bad options with one line and exit 2', () => {
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  it.each([
    ['a bad listen spec', ['--listen', 'udp:foo']],
    ['a bad forward URI', ['--listen', 'udp:127.0.0.1:0', '--forward', 'http://x']],
    ['a wildcard listener without --advertise', ['--listen', 'udp:0.0.0.0:0']],
    ['a missing config file', ['--config', join(dir, 'nope.yaml')]],
    ['an unknown config key', ['--config', file('typo.yaml', 'lisen: [udp:127.0.0.1:5060]\n')]],
    ['a bad config value', ['--config', file('bad.yaml', 'acl:\n  rejectCode: 99\n')]],
    ['a config syntax error', ['--config', file('syntax.yaml', 'acl: [\n')]],
    ['an unknown algorithm', ['--listen', 'udp:127.0.0.1:0', '--config', file('alg.yaml', 'dispatcher:\n  rules: [{ set: 1, algorithm: fastest }]\n')]],
    ['a bad log level', ['--log-level', 'loud']],
  ])('%s', async (_name, args) => {
    const r = await serve(args);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^sipctl: /);
  });
});

describe('config file and flags', () => {
  it('takes options from the file, lets flags override them, and stops on SIGTERM with exit 0', async () => {
    const cfg = join(dir, 'proxy.yaml');
    writeFileSync(cfg, 'listen: [udp:127.0.0.1:1]\nacl:\n  rejectCode: 403\n  rejectReason: Go away\nadvertise: 192.0.2.10\n');
    const proxy = await startProxyProcess({ args: ['--config', cfg, '--listen', 'udp:127.0.0.1:0'] });
    const peer = await UdpPeer.open();
    try {
      const callId = unique('cfg-');
      peer.send(sipRequest({ method: 'OPTIONS', uri: 'sip:x@127.0.0.1', via: { host: '127.0.0.1', port: peer.port }, callId }), proxy.ports.udp!);
      const r = await peer.next((x) => x.msg.header('call-id') === callId);
      expect(r.msg.status).toBe(403);
      expect(r.msg.reason).toBe('Go away');
      expect(proxy.stderr()).toMatch(/the address table is empty/);
    } finally {
      await peer.close();
    }
    expect(await proxy.stop()).toBe(0);
  });
});
