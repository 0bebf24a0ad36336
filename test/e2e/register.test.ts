/**
 * REGISTER through the proxy: config rules pick the set and algorithm by method (REGISTER by
 * hash-to, so a user's registrations always reach the same PBX), and Path (RFC 3327) puts the
 * proxy on the way back to the user.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { sipRequest, UdpPeer, unique, type Received } from '../helpers/sip-peer.js';

let dir: string;
let proxy: ProxyProcess;
let ua: UdpPeer;
let pbx1: UdpPeer;
let pbx2: UdpPeer;

function register(user: string, extra: string[] = []): { text: string; callId: string } {
  const callId = unique('reg-');
  const text = [
    `REGISTER sip:127.0.0.1:${proxy.ports.udp} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${ua.port};branch=${unique('z9hG4bK')};rport`,
    `From: <sip:${user}@example.com>;tag=${unique('t')}`,
    `To: <sip:${user}@example.com>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 REGISTER',
    `Contact: <sip:${user}@127.0.0.1:${ua.port}>`,
    'Expires: 3600',
    'Max-Forwards: 70',
    ...extra,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  return { text, callId };
}

async function which(callId: string): Promise<{ pbx: UdpPeer; got: Received }> {
  const pred = (r: Received) => r.msg.header('call-id') === callId;
  try {
    return await Promise.any([pbx1.next(pred, 2000).then((got) => ({ pbx: pbx1, got })), pbx2.next(pred, 2000).then((got) => ({ pbx: pbx2, got }))]);
  } finally {
    pbx1.cancelWaits();
    pbx2.cancelWaits();
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sipctl-reg-'));
  ua = await UdpPeer.open();
  pbx1 = await UdpPeer.open();
  pbx2 = await UdpPeer.open();
  const cfg = join(dir, 'reg.yaml');
  writeFileSync(
    cfg,
    [
      'dispatcher:',
      '  path: true',
      '  rules:',
      '    - { methods: [REGISTER], set: 1, algorithm: hash-to }',
      '    - { set: 1, algorithm: round-robin }',
      '',
    ].join('\n'),
  );
  proxy = await startProxyProcess({
    args: ['--listen', 'udp:127.0.0.1:0', '--config', cfg],
    setup: [
      ['address', 'add', '1', '127.0.0.1', '32'],
      ['dispatcher', 'add', '1', `sip:127.0.0.1:${pbx1.port}`],
      ['dispatcher', 'add', '1', `sip:127.0.0.1:${pbx2.port}`],
    ],
  });
});

afterAll(async () => {
  await proxy?.stop();
  await Promise.all([ua?.close(), pbx1?.close(), pbx2?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('REGISTER', () => {
  it('sends every registration of a user to the same PBX (hash-to), and users spread over both', async () => {
    const seen = new Map<string, Set<UdpPeer>>();
    for (let u = 0; u < 16; u++) {
      for (let k = 0; k < 3; k++) {
        const { text, callId } = register(`user${u}`, ['Supported: path']);
        ua.send(text, proxy.ports.udp!);
        const { pbx } = await which(callId);
        const set = seen.get(`user${u}`) ?? new Set();
        set.add(pbx);
        seen.set(`user${u}`, set);
      }
    }
    for (const s of seen.values()) expect(s.size).toBe(1);
    const onFirst = [...seen.values()].filter((s) => s.has(pbx1)).length;
    expect(onFirst).toBeGreaterThan(0);
    expect(onFirst).toBeLessThan(16);
  });

  it('adds Path and Require: path when the UA supports path (RFC 3327 §5.1), not a Record-Route', async () => {
    const { text, callId } = register('alice', ['Supported: path']);
    ua.send(text, proxy.ports.udp!);
    const { got } = await which(callId);
    expect(got.msg.header('path')).toBe(`<sip:127.0.0.1:${proxy.ports.udp};transport=udp;lr>`);
    expect(got.msg.headerValues('require')).toContain('path');
    expect(got.msg.header('record-route')).toBeUndefined();
  });

  it('answers 421 Extension Required when the UA does not support path', async () => {
    const { text, callId } = register('bob');
    ua.send(text, proxy.ports.udp!);
    const r = await ua.next((x) => x.msg.header('call-id') === callId);
    expect(r.msg.status).toBe(421);
    expect(r.msg.header('require')).toBe('path');
  });

  it('routes a request from the PBX to the user through the Path (loose routing)', async () => {
    const callId = unique('to-user-');
    pbx1.send(
      sipRequest({
        uri: `sip:alice@127.0.0.1:${ua.port}`,
        via: { host: '127.0.0.1', port: pbx1.port },
        to: '<sip:alice@example.com>',
        callId,
        headers: [`Route: <sip:127.0.0.1:${proxy.ports.udp};transport=udp;lr>`],
      }),
      proxy.ports.udp!,
    );
    // The PBX is admitted as one of our next hops; the INVITE reaches the user's contact.
    const got = await ua.next((x) => x.msg.header('call-id') === callId);
    expect(got.msg.method).toBe('INVITE');
    expect(got.msg.header('route')).toBeUndefined();
  });
});
