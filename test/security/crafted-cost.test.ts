/**
 * Finding 1 of the hardening issue: what a crafted request costs the proxy. A request from a
 * source that is not admitted is refused before any per-Via, per-Route or per-URI work; the
 * loop check costs O(message size) for everyone. Checked on the real proxy: the order of the
 * checks (a replayed request that would be a loop is refused as unadmitted, not answered 482),
 * and the proxy's own CPU time (from /proc) for a hundred ~60 KB datagrams of ~900 Vias that
 * name the proxy — the shape that cost ~12 ms each before. The bound is 25× looser than what
 * the proxy needs now, so a slow machine cannot make it fail; the old cost could not pass it.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { byCallId, startLab, type Lab } from '../helpers/lab.js';
import { UdpPeer, unique, type Received } from '../helpers/sip-peer.js';

let lab: Lab;
let dir: string;
beforeAll(async () => {
  // Flood control off: this test is about what one crafted request costs the core, and it
  // sends more of them from one stranger than flood control lets through.
  dir = mkdtempSync(join(tmpdir(), 'sipctl-crafted-'));
  writeFileSync(join(dir, 'noflood.yaml'), 'flood:\n  enabled: false\n');
  lab = await startLab({ args: ['--config', join(dir, 'noflood.yaml')] });
});
afterAll(async () => {
  await lab?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The proxy process's CPU time so far, in ms (utime + stime from /proc/PID/stat, 100 ticks/s). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** ~60 KB: ~900 compact Via lines that name the proxy's port, each with its own branch. */
function viaBomb(from: UdpPeer, port: number, callId: string): string {
  const vias: string[] = [];
  for (let i = 0; i < 900; i++) vias.push(`v: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bKsc.${i.toString(36).padStart(12, 'x')}`);
  return [
    `INVITE sip:service@127.0.0.1:${port} SIP/2.0`,
    `Via: SIP/2.0/UDP ${from.address}:${from.port};branch=${unique('z9hG4bK')};rport`,
    ...vias,
    `From: <sip:a@${from.address}>;tag=${unique('f')}`,
    `To: <sip:service@127.0.0.1:${port}>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 INVITE',
    'Max-Forwards: 70',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

async function costPerRequest(from: UdpPeer, expectStatus: number): Promise<number> {
  const pid = lab.proxy.child.pid!;
  const before = cpuMs(pid);
  for (let i = 0; i < 100; i++) {
    const callId = unique('bomb-');
    from.send(viaBomb(from, lab.port, callId), lab.port);
    const r = await from.next((x: Received) => byCallId(callId)(x), 5000);
    expect(r.msg.status).toBe(expectStatus);
  }
  return (cpuMs(pid) - before) / 100;
}

describe('a crafted request costs O(its size) (finding 1)', () => {
  it('refuses an unadmitted sender before the loop check', async () => {
    const { text, callId } = lab.request();
    lab.caller.send(text, lab.port);
    const got = await lab.atPbx(byCallId(callId));
    // Replayed from a stranger, the forwarded request carries our Via with the right branch:
    // it would be a loop, but the stranger is refused first.
    lab.stranger.send(got.raw, lab.port);
    const r = await lab.stranger.next(byCallId(callId));
    expect(r.msg.status).toBe(401);
  });

  it('answers ~60 KB of Vias naming the proxy from a stranger with 401, cheaply', async () => {
    const ms = await costPerRequest(lab.stranger, 401);
    expect(ms).toBeLessThan(3);
  });

  it('answers the same from an admitted caller with 482 (more than 8 of our Vias), cheaply', async () => {
    const ms = await costPerRequest(lab.caller, 482);
    expect(ms).toBeLessThan(3);
  });

  it('refuses values past the parser bounds: 414 for a long Request-URI, 400 naming the value otherwise', async () => {
    const longUri = lab.request({ uri: `sip:${'u'.repeat(5000)}@127.0.0.1:${lab.port}` });
    lab.caller.send(longUri.text, lab.port);
    expect((await lab.caller.next(byCallId(longUri.callId))).msg.status).toBe(414);
    const { text, callId } = lab.request({ extra: [`Route: ${Array.from({ length: 600 }, (_, i) => `<sip:10.0.0.${i % 250}:5060;lr>`).join(',')}`] });
    lab.caller.send(text, lab.port);
    const r = await lab.caller.next(byCallId(callId));
    expect(r.msg.status).toBe(400);
    expect(r.msg.reason).toMatch(/more than 512 values/);
  });
});

