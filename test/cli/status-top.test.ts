/**
 * `sipctl status`, `sipctl top` and the new `dispatcher dump` fields against the real proxy,
 * after real datagrams: requests forwarded to a PBX socket, requests refused from a stranger.
 * Also the serve options that come with them (--metrics, --log-format) and their mistakes.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, stderrLines } from '../helpers/cli.js';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { sip, UdpPeer, unique } from '../helpers/sip-peer.js';

let proxy: ProxyProcess;
let uac: UdpPeer;
let pbx: UdpPeer;
let stranger: UdpPeer;
const FORWARDED = 4;
const REFUSED = 2;

function options(from: UdpPeer, port: number, host: string, method = 'OPTIONS'): string {
  return sip(
    [
      `${method} sip:service@127.0.0.1:${port} SIP/2.0`,
      `Via: SIP/2.0/UDP ${host}:${from.port};branch=${unique('z9hG4bK')}`,
      `From: <sip:c@${host}>;tag=${unique('t')}`,
      `To: <sip:service@127.0.0.1:${port}>`,
      `Call-ID: ${unique('st-')}`,
      `CSeq: 1 ${method}`,
      'Max-Forwards: 70',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
  );
}

const ctl = (args: string[]) => runCli([...args, '--control', proxy.control]);

beforeAll(async () => {
  uac = await UdpPeer.open();
  pbx = await UdpPeer.open();
  stranger = await UdpPeer.open('127.0.0.2');
  proxy = await startProxyProcess({
    args: ['--listen', 'udp:127.0.0.1:0'],
    setup: [
      ['address', 'add', '1', '127.0.0.1', '32'],
      ['dispatcher', 'add', '1', `sip:127.0.0.1:${pbx.port}`],
    ],
  });
  const port = proxy.ports.udp!;
  // MESSAGEs are dispatched to the PBX; the stranger's OPTIONS are refused.
  for (let i = 0; i < FORWARDED; i++) {
    uac.send(options(uac, port, '127.0.0.1', 'MESSAGE'), port);
    await pbx.next((r) => r.msg.isRequest);
  }
  for (let i = 0; i < REFUSED; i++) {
    stranger.send(options(stranger, port, '127.0.0.2'), port);
    expect((await stranger.next()).msg.status).toBe(401);
  }
});

afterAll(async () => {
  await uac?.close();
  await pbx?.close();
  await stranger?.close();
  await proxy?.stop();
});

describe('sipctl status', () => {
  it('--json reports traffic, refusals, tables and the proxy as stateless', async () => {
    const r = await ctl(['status', '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.pid).toBe(proxy.child.pid);
    expect(s.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(s.mode).toBe('dispatcher');
    expect(s.relay).toBe('stateless');
    expect(s.transactions).toEqual({ inUse: 0, created: 0, timedOut: 0 });
    expect(s.listeners).toEqual([`udp:127.0.0.1:${proxy.ports.udp}`]);
    expect(s.messages.requestsByMethod.MESSAGE).toBe(FORWARDED);
    expect(s.messages.requestsByMethod.OPTIONS).toBe(REFUSED);
    expect(s.messages.forwarded).toBe(FORWARDED);
    expect(s.messages.refused).toBe(REFUSED);
    expect(s.messages.localReplies).toBe(REFUSED);
    expect(s.messages.received).toBe(FORWARDED + REFUSED);
    expect(s.messages.dropped).toBe(0);
    expect(s.rates.messagesPerS.sinceStart).toBeGreaterThan(0);
    expect(s.addressTable).toMatchObject({ entries: 1, groups: [{ grp: 1, count: 1 }], lastReload: { ok: true, failures: 0 } });
    expect(s.dispatcher.sets).toEqual([{ setid: 1, destinations: 1, active: 1 }]);
    expect(s.tcp).toEqual({ inbound: 0, outbound: 0 });
    expect(s.memory.rss).toBeGreaterThan(1e6);
    expect(typeof s.eventLoopLagMs).toBe('number');
    expect(s.capture).toBeNull();
    expect(s.metrics).toBeNull();
    // The fields status had before are still there.
    expect(s.stats.forwarded).toBe(FORWARDED);
    expect(s.transport.udpDatagramsIn).toBe(FORWARDED + REFUSED);
  });

  it('prints the same for a person', async () => {
    const r = await ctl(['status']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^sipctl \\d+\\.\\d+\\.\\d+, pid ${proxy.child.pid}, up `));
    expect(r.stdout).toContain('mode:          dispatcher, stateless');
    expect(r.stdout).toContain(`refused:       ${REFUSED} requests (address table)`);
    expect(r.stdout).toContain('transactions:  0 in use, 0 created, 0 timed out');
    expect(r.stdout).toContain('dispatcher:    set 1: 1 of 1 active; loaded ');
    expect(r.stdout).toContain('metrics:       off; capture: off');
  });

  it('says in one line that no proxy listens, exit 1', async () => {
    const r = await runCli(['status', '--control', `${proxy.dir}/nobody.sock`]);
    expect(r.code).toBe(1);
    expect(stderrLines(r)).toEqual([expect.stringContaining('no sipctl proxy is listening on')]);
  });
});

describe('sipctl top', () => {
  it('prints plain frames when stdout is not a terminal, and stops after --count', async () => {
    const r = await ctl(['top', '--count', '2', '--interval', '0.2']);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('\x1b[');
    const frames = r.stdout.split(/\n(?=sipctl top - )/);
    expect(frames).toHaveLength(2);
    for (const f of frames) {
      expect(f).toMatch(/^sipctl top - pid \d+, dispatcher, up /);
      expect(f).toContain(`sip:127.0.0.1:${pbx.port}`);
      expect(f).toMatch(/calls\/s [0-9.]+ {3}messages\/s [0-9.]+/);
    }
    // The first frame shares the last minute: all of set 1's requests went to its one destination.
    expect(frames[0]).toMatch(/│\s+1 │ sip:127\.0\.0\.1:\d+ │ active │ 100\.0% │/);
  });

  it('--once prints one frame; a bad --count is a usage error', async () => {
    const once = await ctl(['top', '--once']);
    expect(once.code).toBe(0);
    expect(once.stdout.match(/sipctl top - /g)).toHaveLength(1);
    const bad = await ctl(['top', '--count', '0']);
    expect(bad.code).toBe(2);
    expect(stderrLines(bad)).toEqual(['sipctl: --count: expected a whole number from 1 to 1000000, got "0"']);
  });
});

describe('sipctl dispatcher dump', () => {
  it('gives requests in the last minute, probe latency, probe failures and failovers per destination', async () => {
    const r = await ctl(['dispatcher', 'dump', '--json']);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout).sets[0].destinations[0];
    expect(d).toMatchObject({ requestsSent: FORWARDED, requestsLastMinute: FORWARDED, probeLatencyMs: null, probeFailures: 0, failovers: 0 });
    const text = await ctl(['dispatcher', 'dump']);
    expect(text.stdout).toContain('last min');
    expect(text.stdout).toContain('probe ms last / avg');
  });
});

describe('serve options for observability', () => {
  it('refuses a bad --metrics, --log-format or capture address in one line, exit 2', async () => {
    const m = await runCli(['serve', '--metrics', 'localhost', '--db', `${proxy.dir}/x.db`, '--control', `${proxy.dir}/x.sock`]);
    expect(m.code).toBe(2);
    expect(stderrLines(m)).toEqual([expect.stringContaining('config metrics.listen: expected IP:PORT')]);
    const f = await runCli(['serve', '--log-format', 'xml', '--db', `${proxy.dir}/x.db`, '--control', `${proxy.dir}/x.sock`]);
    expect(f.code).toBe(2);
    expect(stderrLines(f)).toEqual(['sipctl: config log.format: expected text or json, got "xml"']);
    writeFileSync(`${proxy.dir}/bad.yaml`, 'capture: { hep: "http://127.0.0.1:9060" }\n');
    const c = await runCli(['serve', '--config', `${proxy.dir}/bad.yaml`, '--db', `${proxy.dir}/x.db`, '--control', `${proxy.dir}/x.sock`]);
    expect(c.code).toBe(2);
    expect(stderrLines(c)).toEqual([expect.stringContaining('config capture.hep: expected udp:IP:PORT or tcp:IP:PORT of a HEP collector')]);
    writeFileSync(`${proxy.dir}/bad.yaml`, 'metrics: { port: 9090 }\n');
    const k = await runCli(['serve', '--config', `${proxy.dir}/bad.yaml`, '--db', `${proxy.dir}/x.db`, '--control', `${proxy.dir}/x.sock`]);
    expect(k.code).toBe(2);
    expect(stderrLines(k)).toEqual([expect.stringContaining('config metrics.port: unknown option (known: listen)')]);
  });

  it('--log-format json writes one JSON object per line with time, level and msg', async () => {
    const p = await startProxyProcess({ args: ['--listen', 'udp:127.0.0.1:0', '--log-format', 'json'] });
    try {
      // Something to log at info: a refused request.
      const s = await UdpPeer.open('127.0.0.2');
      s.send(options(s, p.ports.udp!, '127.0.0.2'), p.ports.udp!);
      await s.next();
      await s.close();
    } finally {
      await p.stop();
    }
    const lines = p.stderr().split('\n').filter((l) => l !== '');
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const line of lines) {
      const o = JSON.parse(line);
      expect(typeof o.time).toBe('string');
      expect(Number.isNaN(Date.parse(o.time))).toBe(false);
      expect(['error', 'warn', 'info', 'debug']).toContain(o.level);
      expect(typeof o.msg).toBe('string');
    }
    const refused = lines.map((l) => JSON.parse(l)).find((o) => o.msg === 'request from an address not in the address table');
    expect(refused).toMatchObject({ level: 'info', method: 'OPTIONS', proto: 'udp' });
  });
});
