/**
 * `sipctl flood list` and `sipctl flood unblock` against a running proxy, over its control
 * socket: a blocked source, an exempt one (address-table group in flood.exemptGroups) and a
 * hot one; lifting a block by hand; the one-line errors and exit codes; `status` counters; a
 * proxy with flood control off.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/client.js';
import { runCli, stderrLines, useTempDirs } from '../helpers/cli.js';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { sipRequest, TcpClient, UdpPeer } from '../helpers/sip-peer.js';

const LIMIT = 20;

function options(peer: UdpPeer, proxyPort: number, callId: string): string {
  return sipRequest({
    method: 'OPTIONS',
    uri: `sip:100@127.0.0.1:${proxyPort}`,
    via: { host: peer.address, port: peer.port, rport: true },
    callId,
  });
}

describe('sipctl flood against a running proxy', () => {
  const temp = useTempDirs();
  let proxy: ProxyProcess;
  let port: number;
  const peers: Record<string, UdpPeer> = {};
  let barrierSeq = 0;

  /** A request from 127.0.0.20 the proxy answers: everything sent before it has been handled. */
  async function barrier(): Promise<void> {
    const b = peers.barrier!;
    const callId = `barrier-${++barrierSeq}`;
    b.send(options(b, port, callId), port);
    await b.next((r) => r.msg.callId === callId);
  }

  async function sendFrom(name: string, n: number): Promise<void> {
    const p = peers[name]!;
    for (let i = 0; i < n; i++) p.send(options(p, port, `${name}-${i}`), port);
    await barrier();
  }

  async function flood(args: readonly string[]) {
    return runCli(['flood', ...args, '--control', proxy.control]);
  }

  beforeAll(async () => {
    const dir = temp();
    const config = join(dir, 'sipctl.yaml');
    // acl.tcpAccept: any — the TCP test's peer is not admitted, and its messages must reach
    // flood control rather than be closed at accept.
    writeFileSync(config, `flood:\n  maxRequests: ${LIMIT}\n  windowS: 60\n  blockS: 600\n  exemptGroups: [7]\nacl:\n  tcpAccept: any\n`);
    proxy = await startProxyProcess({
      // Group 7 is exempt from flood control; it also admits (acl.groups: any), which is fine here.
      setup: [['address', 'add', '7', '127.0.0.10', '32']],
      args: ['--config', config, '--listen', 'udp:127.0.0.1:0', '--listen', 'tcp:127.0.0.1:0'],
    });
    port = proxy.ports.udp!;
    for (const [name, address] of [
      ['flooder', '127.0.0.9'],
      ['exempt', '127.0.0.10'],
      ['hot', '127.0.0.11'],
      ['barrier', '127.0.0.20'],
    ] as const) {
      peers[name] = await UdpPeer.open(address);
    }
  });

  afterAll(async () => {
    for (const p of Object.values(peers)) await p.close();
    await proxy?.stop();
  });

  it('lists nothing while every source is quiet', async () => {
    const r = await flood(['list']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^no source is blocked or near its limit \(20 messages per 60 s, blocks last 600 s\); 0 sources tracked\n$/);
  });

  it('lists the blocked, the exempt and the hot source, blocked first', async () => {
    await sendFrom('flooder', 30);
    await sendFrom('exempt', 30);
    await sendFrom('hot', 12);
    // Only the first 20 of the flooder's 30 requests were answered (401: not admitted).
    expect(peers.flooder!.drain().filter((r) => r.msg.status === 401)).toHaveLength(LIMIT);
    expect(peers.exempt!.drain()).toHaveLength(30);

    const json = await flood(['list', '--json']);
    expect(json.code, json.stderr).toBe(0);
    const list = JSON.parse(json.stdout);
    expect(list).toMatchObject({ enabled: true, maxRequests: LIMIT, windowS: 60, blockS: 600, blocked: 1, maxTracked: 100_000, omitted: 0 });
    expect(list.sources.map((s: { address: string; state: string }) => [s.address, s.state])).toEqual([
      ['127.0.0.9', 'blocked'],
      ['127.0.0.10', 'exempt'],
      ['127.0.0.11', 'hot'],
    ]);
    expect(list.sources[0]).toMatchObject({ count: LIMIT + 1, dropped: 10 });
    expect(Date.parse(list.sources[0].blockedUntil) - Date.parse(list.sources[0].blockedSince)).toBe(600_000);
    expect(list.sources[2]).toMatchObject({ count: 12, blockedSince: null, blockedUntil: null, dropped: 0 });

    const table = await flood(['list']);
    expect(table.code).toBe(0);
    const lines = table.stdout.split('\n');
    expect(lines[1]).toMatch(/address\s+│ state\s+│ count │ blocked since\s+│ blocked until\s+│ dropped/);
    expect(table.stdout).toMatch(/127\.0\.0\.9 +│ blocked │ +21 │ 20\d\d-\d\d-\d\d \d\d:\d\d:\d\dZ │ 20\d\d-\d\d-\d\d \d\d:\d\d:\d\dZ │ +10/);
    expect(table.stdout).toMatch(/127\.0\.0\.10 +│ exempt +│ +30 │ - +│ - +│ +0/);
    expect(table.stdout).toContain('1 source blocked, 4 of 100,000 tracked (limit: 20 messages per 60 s, blocks last 600 s)');
  });

  it('counts the drops in status, and logged the block once', async () => {
    const status = (await controlRequest(proxy.control, 'status')) as { flood: Record<string, unknown> };
    expect(status.flood).toMatchObject({ enabled: true, blocked: 1, blocks: 1, dropped: 10, maxRequests: LIMIT });
    const blocks = proxy.stderr().split('\n').filter((l) => l.includes('flood: blocking a source'));
    expect(blocks).toHaveLength(1);
    expect(blocks[0]).toMatch(/WARN flood: blocking a source source=127\.0\.0\.9 count=21 windowS=60 blockS=600 until=\S+Z$/);
  });

  it('unblocks a blocked source: it is answered again, and the end of the block is logged with its count', async () => {
    const r = await flood(['unblock', '127.0.0.9']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^unblocked 127\.0\.0\.9 \(blocked since 20\S+ \S+Z, 10 messages dropped\)\n$/);
    await sendFrom('flooder', 1);
    expect(peers.flooder!.drain().map((x) => x.msg.status)).toEqual([401]);
    const list = JSON.parse((await flood(['list', '--json'])).stdout);
    expect(list.blocked).toBe(0);
    await new Promise((res) => setTimeout(res, 200)); // the log is written asynchronously
    expect(proxy.stderr()).toMatch(/INFO flood: block ended source=127\.0\.0\.9 dropped=10 blockedS=[0-9.]+ reason=unblocked/);
  });

  it('says when the address is not blocked (exit 1), also with --json', async () => {
    const r = await flood(['unblock', '127.0.0.11']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("127.0.0.11 is not blocked; nothing changed (see 'sipctl flood list')\n");
    const j = await flood(['unblock', '::ffff:127.0.0.11', '--json']);
    expect(j.code).toBe(1);
    expect(JSON.parse(j.stdout)).toEqual({ address: '127.0.0.11', unblocked: false, dropped: 0, blockedSince: null });
  });

  it.each([['nonsense'], ['10.1'], ['192.0.2.0/24'], ['']])('refuses the address %j in one line, exit 2', async (ip) => {
    const r = await flood(['unblock', ip]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(stderrLines(r)).toHaveLength(1);
    expect(r.stderr).toMatch(/^sipctl: .*(not an IPv4 or IPv6 address|is a network|address is required)/);
  });

  it('counts messages framed from a TCP stream the same way', async () => {
    const tcp = await TcpClient.open(proxy.ports.tcp!, '127.0.0.1');
    try {
      const request = (i: number): string =>
        sipRequest({
          method: 'OPTIONS',
          uri: `sip:100@127.0.0.1:${proxy.ports.tcp}`,
          via: { transport: 'TCP', host: '127.0.0.1', port: tcp.localPort },
          callId: `tcp-${i}`,
        });
      tcp.send(Array.from({ length: LIMIT + 5 }, (_, i) => request(i)).join(''));
      for (let i = 0; i < LIMIT; i++) expect((await tcp.next((r) => r.msg.callId === `tcp-${i}`)).msg.status).toBe(401);
      expect(await tcp.nothing(() => true, 500)).toBe(true);
    } finally {
      tcp.close();
    }
    const list = JSON.parse((await flood(['list', '--json'])).stdout);
    expect(list.sources.find((s: { address: string }) => s.address === '127.0.0.1')).toMatchObject({ state: 'blocked', count: LIMIT + 1, dropped: 5 });
  });

  it('says no proxy listens when there is none, naming the path (exit 1)', async () => {
    const path = join(temp(), 'nobody.sock');
    for (const args of [['list'], ['unblock', '192.0.2.1'], ['list', '--json']]) {
      const r = await runCli(['flood', ...args, '--control', path]);
      expect(r.code).toBe(1);
      expect(stderrLines(r)).toEqual([`sipctl: no sipctl proxy is listening on ${path} (start one with 'sipctl serve', or pass --control PATH)`]);
    }
  });
});

describe('sipctl flood against a proxy with flood control off', () => {
  const temp = useTempDirs();
  let proxy: ProxyProcess | undefined;

  afterAll(async () => {
    await proxy?.stop();
  });

  it('says so, and lets a burst through', async () => {
    const config = join(temp(), 'sipctl.yaml');
    writeFileSync(config, 'flood:\n  enabled: false\n  maxRequests: 1\n');
    proxy = await startProxyProcess({ args: ['--config', config, '--listen', 'udp:127.0.0.1:0'] });
    const port = proxy.ports.udp!;
    const peer = await UdpPeer.open('127.0.0.9');
    try {
      for (let i = 0; i < 5; i++) peer.send(options(peer, port, `off-${i}`), port);
      for (let i = 0; i < 5; i++) await peer.next((r) => r.msg.callId === `off-${i}`);
    } finally {
      await peer.close();
    }
    const list = await runCli(['flood', 'list', '--control', proxy.control]);
    expect(list.code).toBe(0);
    expect(list.stdout).toBe('flood control is off in this proxy (flood.enabled: false)\n');
    expect(JSON.parse((await runCli(['flood', 'list', '--json', '--control', proxy.control])).stdout)).toEqual({ enabled: false });
    const un = await runCli(['flood', 'unblock', '192.0.2.1', '--control', proxy.control]);
    expect(un.code).toBe(1);
    expect(stderrLines(un)).toEqual(['sipctl: flood control is off in this proxy (flood.enabled: false): nothing is blocked']);
    const status = (await controlRequest(proxy.control, 'status')) as { flood: unknown };
    expect(status.flood).toEqual({ enabled: false });
  });
});
