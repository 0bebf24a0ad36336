/**
 * SIP capture through the real proxy: `sipctl serve` with `capture: { hep: udp:..., id: 2001 }`.
 *
 * 1. A UDP listener in the test is the collector. A caller socket sends an INVITE, a PBX socket
 *    receives the forwarded INVITE and answers 200, the caller receives the relayed 200; the four
 *    HEPv3 packets are decoded and checked byte for byte against what passed on the wire, with
 *    their addresses, ports, protocol, capture id, Call-ID correlation and time.
 * 2. sngrep (Debian package sngrep), run without its interface as a HEP server (`-N -L`), is the
 *    collector for SIPp calls through the proxy: it counts the dialogs and writes them to a pcap.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { responseTo, sip, UdpPeer, unique } from '../helpers/sip-peer.js';
import { freePort, RUN_SIPP, runUac, startUas } from '../helpers/sipp.js';
import { decodeHep, type DecodedHep } from './hep-decode.js';

const CI = process.env.CI === 'true' || process.env.CI === '1';
function hasSngrep(): boolean {
  return spawnSync('sngrep', ['-V'], { stdio: 'ignore' }).error === undefined;
}
/** In CI a missing sngrep fails the test (.ci/run installs it); elsewhere it is skipped. */
const RUN_SNGREP = CI || hasSngrep();

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
}

describe('HEP capture of what passes through the proxy', () => {
  let dir: string;
  let proxy: ProxyProcess;
  let collector: Socket;
  const packets: Buffer[] = [];
  let uac: UdpPeer;
  let pbx: UdpPeer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sipctl-capture-'));
    collector = createSocket('udp4');
    collector.on('message', (m) => packets.push(m));
    await new Promise<void>((r) => collector.bind(0, '127.0.0.1', () => r()));
    uac = await UdpPeer.open();
    pbx = await UdpPeer.open();
    writeFileSync(join(dir, 'sipctl.yaml'), `capture:\n  hep: udp:127.0.0.1:${collector.address().port}\n  id: 2001\n`);
    proxy = await startProxyProcess({
      dir,
      args: ['--listen', 'udp:127.0.0.1:0', '--config', join(dir, 'sipctl.yaml')],
      setup: [
        ['address', 'add', '1', '127.0.0.1', '32'],
        ['dispatcher', 'add', '1', `sip:127.0.0.1:${pbx.port}`],
      ],
    });
  });

  afterAll(async () => {
    await uac?.close();
    await pbx?.close();
    await proxy?.stop();
    await new Promise<void>((r) => collector.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('mirrors every message received and sent, byte for byte, with addresses, ports, capture id and Call-ID', async () => {
    const port = proxy.ports.udp!;
    const callId = unique('hep-call-');
    const invite = sip(
      [
        `INVITE sip:service@127.0.0.1:${port} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${uac.port};branch=${unique('z9hG4bK')};rport`,
        `From: <sip:caller@127.0.0.1:${uac.port}>;tag=${unique('f')}`,
        `To: <sip:service@127.0.0.1:${port}>`,
        `Call-ID: ${callId}`,
        'CSeq: 1 INVITE',
        `Contact: <sip:caller@127.0.0.1:${uac.port}>`,
        'Max-Forwards: 70',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    );
    const t0 = Date.now();
    uac.send(invite, port);
    const atPbx = await pbx.next((r) => r.msg.isRequest && r.msg.method === 'INVITE');
    const ok = responseTo(atPbx.msg, 200, 'OK');
    pbx.send(ok, atPbx.port);
    const atUac = await uac.next((r) => !r.msg.isRequest);
    expect(atUac.msg.status).toBe(200);
    await until(() => packets.length >= 4);
    const t1 = Date.now();
    await new Promise((r) => setTimeout(r, 200)); // nothing more should come
    expect(packets.length).toBe(4);
    const hep = packets.map(decodeHep);
    for (const h of hep) {
      expect(h).toMatchObject({ family: 2, ipProtocol: 17, protocolType: 1, captureId: 2001, correlationId: callId });
      const ms = h.seconds * 1000 + h.microseconds / 1000;
      expect(ms).toBeGreaterThanOrEqual(t0 - 1);
      expect(ms).toBeLessThanOrEqual(t1 + 1);
    }
    const find = (pred: (h: DecodedHep) => boolean): DecodedHep => {
      const h = hep.find(pred);
      if (h === undefined) throw new Error('missing HEP packet');
      return h;
    };
    // Received from the caller: exactly the bytes it sent, from its port to the proxy's.
    const inviteIn = find((h) => h.sourcePort === uac.port);
    expect(inviteIn.payload.toString()).toBe(invite);
    expect(inviteIn).toMatchObject({ source: '127.0.0.1', destination: '127.0.0.1', destinationPort: port });
    // Sent to the PBX: exactly the bytes the PBX received.
    const inviteOut = find((h) => h.destinationPort === pbx.port);
    expect(inviteOut.payload.equals(atPbx.raw)).toBe(true);
    expect(inviteOut.sourcePort).toBe(port);
    // The 200 from the PBX, and the 200 the caller received.
    const okIn = find((h) => h.sourcePort === pbx.port);
    expect(okIn.payload.toString()).toBe(ok);
    expect(okIn.destinationPort).toBe(port);
    const okOut = find((h) => h.destinationPort === uac.port);
    expect(okOut.payload.equals(atUac.raw)).toBe(true);
    // In the order they passed.
    expect(hep.map((h) => h.payload.toString().split(' ')[0])).toEqual(['INVITE', 'INVITE', 'SIP/2.0', 'SIP/2.0']);

    // status reports the capture.
    const s = await runCli(['status', '--json', '--control', proxy.control]);
    expect(s.code).toBe(0);
    const st = JSON.parse(s.stdout) as { capture: { sent: number; dropped: number; collector: string } };
    expect(st.capture).toMatchObject({ sent: 4, dropped: 0, collector: `udp:127.0.0.1:${collector.address().port}` });
  });
});

describe.skipIf(!RUN_SNGREP || !RUN_SIPP)('sngrep as the HEP server', () => {
  it('sees the SIPp calls that passed through the proxy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sipctl-sngrep-'));
    const hepPort = await freePort();
    const pcap = join(dir, 'capture.pcap');
    // -N: no interface, -L: listen for HEP, -O: write what it got to a pcap. With -L, sngrep 1.6
    // reads HEP only and sniffs no device, so every dialog it counts came through our capture.
    const sngrep = spawn('sngrep', ['-N', '-L', `udp:127.0.0.1:${hepPort}`, '-O', pcap], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    sngrep.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    sngrep.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<void>((r) => sngrep.once('exit', () => r()));
    const pbxPort = await freePort();
    const uas = await startUas(pbxPort);
    writeFileSync(join(dir, 'sipctl.yaml'), `capture: { hep: "udp:127.0.0.1:${hepPort}", id: 2001 }\n`);
    const proxy = await startProxyProcess({
      dir,
      args: ['--listen', 'udp:127.0.0.1:0', '--config', join(dir, 'sipctl.yaml')],
      setup: [
        ['address', 'add', '1', '127.0.0.1', '32'],
        ['dispatcher', 'add', '1', `sip:127.0.0.1:${pbxPort}`],
      ],
    });
    try {
      await new Promise((r) => setTimeout(r, 500));
      const calls = 3;
      const r = await runUac({ proxyPort: proxy.ports.udp!, calls, rate: 10 });
      expect(r.successful).toBe(calls);
      await until(() => new RegExp(`Dialog count: ${calls}`).test(out), 5000);
      expect(out).toContain(`Dialog count: ${calls}`);
    } finally {
      await proxy.stop();
      await uas.stop();
      sngrep.kill('SIGTERM');
      const killer = setTimeout(() => sngrep.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(killer);
    }
    // The pcap sngrep wrote holds the calls: each of SIPp's INVITEs, forwarded by sipctl (its Via).
    const bytes = readFileSync(pcap).toString('latin1');
    expect((bytes.match(/INVITE sip:/g) ?? []).length).toBeGreaterThanOrEqual(6); // received + forwarded, per call
    expect(bytes).toContain('Via: SIP/2.0/UDP 127.0.0.1:' + proxy.ports.udp);
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);
});
