/**
 * Findings 4 and 11 of the hardening issue: what an initial request's own Route header does.
 * - An admitted caller cannot use the proxy as an open relay: a Route that does not name us
 *   is removed from an initial request, which goes to the dispatcher (`initialRoutes:
 *   dispatch`, the default); `initialRoutes: follow` restores RFC 3261 §16.6 step 7.
 * - A phone that uses the proxy as its outbound proxy sends `Route: <sip:PROXY;lr>` (§8.1.2):
 *   after our own Route is removed nothing is left, and the request is dispatched like any
 *   other — and a PBX (a next hop) sending toward the phone with that Route reaches the
 *   phone's Contact. Over UDP and over TCP.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { byCallId, startLab, type Lab } from '../helpers/lab.js';
import { TcpClient, UdpPeer, unique } from '../helpers/sip-peer.js';

describe('initialRoutes: dispatch (the default) — no open relay (finding 4)', () => {
  let lab: Lab;
  let victim: UdpPeer;
  beforeAll(async () => {
    lab = await startLab();
    victim = await UdpPeer.open();
  });
  afterAll(async () => {
    await lab?.close();
    await victim?.close();
  });

  it('removes a foreign Route from an initial INVITE and dispatches it', async () => {
    const { text, callId } = lab.request({ extra: [`Route: <sip:127.0.0.1:${victim.port};lr>`] });
    lab.caller.send(text, lab.port);
    const got = await lab.atPbx(byCallId(callId));
    expect(got.msg.header('route')).toBeUndefined();
    expect(await victim.nothing(byCallId(callId), 300)).toBe(true);
  });

  it('also after our own Route, and for a MESSAGE', async () => {
    const { text, callId } = lab.request({
      method: 'MESSAGE',
      extra: [`Route: <sip:127.0.0.1:${lab.port};lr>, <sip:127.0.0.1:${victim.port};lr>`],
    });
    lab.caller.send(text, lab.port);
    const got = await lab.atPbx(byCallId(callId));
    expect(got.msg.header('route')).toBeUndefined();
    expect(await victim.nothing(byCallId(callId), 300)).toBe(true);
  });

  it('still lets an in-dialog request follow its route set', async () => {
    const { text, callId } = lab.request({ method: 'BYE', toTag: 'x1', uri: `sip:callee@127.0.0.1:${victim.port}`, extra: [`Route: <sip:127.0.0.1:${lab.port};lr>`] });
    lab.caller.send(text, lab.port);
    expect((await victim.next(byCallId(callId))).msg.method).toBe('BYE');
  });
});

describe('initialRoutes: follow — RFC 3261 §16.6 step 7, for trusted deployments', () => {
  let lab: Lab;
  let target: UdpPeer;
  let dir: string;
  beforeAll(async () => {
    target = await UdpPeer.open();
    dir = mkdtempSync(join(tmpdir(), 'sipctl-follow-'));
    writeFileSync(join(dir, 'follow.yaml'), 'initialRoutes: follow\n');
    lab = await startLab({ args: ['--config', join(dir, 'follow.yaml')] });
  });
  afterAll(async () => {
    await lab?.close();
    await target?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends an initial request along its own route set', async () => {
    const { text, callId } = lab.request({ extra: [`Route: <sip:127.0.0.1:${target.port};lr>`] });
    lab.caller.send(text, lab.port);
    expect((await target.next(byCallId(callId))).msg.method).toBe('INVITE');
    expect(await lab.pbx1.nothing(byCallId(callId), 200)).toBe(true);
  });

  it('refuses any other value with one line and exit 2', async () => {
    writeFileSync(join(dir, 'bad.yaml'), 'initialRoutes: sometimes\n');
    const r = await runCli(['serve', '--db', join(dir, 'db'), '--control', join(dir, 'sock'), '--listen', 'udp:127.0.0.1:0', '--config', join(dir, 'bad.yaml')], { timeoutMs: 10_000 });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^sipctl: config initialRoutes: expected dispatch or follow/)]);
  });
});

describe('a phone using the proxy as its outbound proxy (finding 11), over UDP', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab();
  });
  afterAll(async () => {
    await lab?.close();
  });

  for (const method of ['REGISTER', 'INVITE']) {
    for (const [label, uri] of [
      ['the proxy', () => `sip:127.0.0.1:${lab.port}`],
      ['a domain name', () => 'sip:bob@pbx.example.invalid'],
    ] as const) {
      it(`${method} to ${label} with Route: <sip:PROXY;lr> reaches the dispatcher's PBX`, async () => {
        const { text, callId } = lab.request({ method, uri: uri(), extra: [`Route: <sip:127.0.0.1:${lab.port};lr>`] });
        lab.caller.send(text, lab.port);
        const got = await lab.atPbx(byCallId(callId));
        expect(got.msg.method).toBe(method);
        expect(got.msg.header('route')).toBeUndefined();
      });
    }
  }

  it('an INVITE from the PBX with that Route reaches the phone’s Contact', async () => {
    const callId = unique('pbx-');
    const invite = [
      `INVITE sip:phone@127.0.0.1:${lab.caller.port} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${lab.pbx1.port};branch=${unique('z9hG4bK')};rport`,
      `Route: <sip:127.0.0.1:${lab.port};lr>`,
      `From: <sip:pbx@127.0.0.1>;tag=${unique('p')}`,
      `To: <sip:phone@127.0.0.1>`,
      `Call-ID: ${callId}`,
      'CSeq: 1 INVITE',
      `Contact: <sip:pbx@127.0.0.1:${lab.pbx1.port}>`,
      'Max-Forwards: 70',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    lab.pbx1.send(invite, lab.port);
    const got = await lab.caller.next(byCallId(callId));
    expect(got.msg.method).toBe('INVITE');
    expect(got.msg.requestUriText).toBe(`sip:phone@127.0.0.1:${lab.caller.port}`);
    expect(await lab.pbx2.nothing(byCallId(callId), 200)).toBe(true);
  });
});

describe('a phone using the proxy as its outbound proxy (finding 11), over TCP', () => {
  let lab: Lab;
  let phone: TcpClient;
  beforeAll(async () => {
    // The phone has an address of its own: over TCP a next hop is known by its address alone
    // (it connects from any port), and the PBXs are on 127.0.0.1.
    lab = await startLab({ tcp: true, setup: [['address', 'add', '1', '127.0.0.3', '32']] });
    phone = await TcpClient.open(lab.tcpPort!, '127.0.0.1', '127.0.0.3');
  });
  afterAll(async () => {
    phone?.close();
    await lab?.close();
  });

  function fromPhone(method: string): { text: string; callId: string } {
    const callId = unique('tcp-');
    const text = [
      `${method} sip:bob@pbx.example.invalid;transport=tcp SIP/2.0`,
      `Via: SIP/2.0/TCP 127.0.0.3:${phone.localPort};branch=${unique('z9hG4bK')};rport`,
      `Route: <sip:127.0.0.1:${lab.tcpPort};transport=tcp;lr>`,
      `From: <sip:phone@127.0.0.1>;tag=${unique('t')}`,
      `To: <sip:bob@pbx.example.invalid>`,
      `Call-ID: ${callId}`,
      `CSeq: 1 ${method}`,
      `Contact: <sip:phone@127.0.0.3:${phone.localPort};transport=tcp>`,
      'Max-Forwards: 70',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    return { text, callId };
  }

  for (const method of ['REGISTER', 'INVITE']) {
    it(`${method} with Route: <sip:PROXY;transport=tcp;lr> reaches the dispatcher's PBX`, async () => {
      const { text, callId } = fromPhone(method);
      phone.send(text);
      const got = await lab.atPbx(byCallId(callId));
      expect(got.msg.method).toBe(method);
    });
  }

  it('an INVITE from the PBX with that Route reaches the phone on its own connection', async () => {
    const callId = unique('pbx-');
    const invite = [
      `INVITE sip:phone@127.0.0.3:${phone.localPort};transport=tcp SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${lab.pbx1.port};branch=${unique('z9hG4bK')};rport`,
      `Route: <sip:127.0.0.1:${lab.tcpPort};transport=tcp;lr>`,
      `From: <sip:pbx@127.0.0.1>;tag=${unique('p')}`,
      `To: <sip:phone@127.0.0.1>`,
      `Call-ID: ${callId}`,
      'CSeq: 1 INVITE',
      `Contact: <sip:pbx@127.0.0.1:${lab.pbx1.port}>`,
      'Max-Forwards: 70',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    lab.pbx1.send(invite, lab.port);
    const got = await phone.next(byCallId(callId));
    expect(got.msg.method).toBe('INVITE');
  });
});
