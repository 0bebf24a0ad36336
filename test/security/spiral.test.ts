/**
 * Findings 10 and 12 of the hardening issue.
 * - Loop detection reflects the Route set (RFC 3261 §16.6 step 8: "including any Route,
 *   Proxy-Require and Proxy-Authorization header fields"): a request that comes back with
 *   only its route set changed is a spiral and is forwarded; one that comes back unchanged
 *   is a loop (482).
 * - With Path, the PBX sends calls back through sipctl and the dialog is record-routed
 *   through it twice; in-dialog ACK and BYE then pass sipctl twice, differing only in their
 *   Route set. The whole flow — caller → sipctl → Kamailio registrar honouring Path →
 *   sipctl → callee — completes with SIPp calls, over UDP and over TCP.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RUN_KAMAILIO, startKamailio, type Kamailio } from '../helpers/kamailio.js';
import { byCallId, startLab, type Lab } from '../helpers/lab.js';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { TcpClient, UdpPeer, unique, type Received } from '../helpers/sip-peer.js';
import { freePort, RUN_SIPP, runUac, startUas, type Uas } from '../helpers/sipp.js';

describe('a request that comes back with another route set is a spiral (finding 10)', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab();
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('is forwarded along its new route set; sent back unchanged it is a loop', async () => {
    const { text, callId } = lab.request();
    lab.caller.send(text, lab.port);
    const first = await lab.atPbx(byCallId(callId));
    const other = first.pbx === lab.pbx1 ? lab.pbx2 : lab.pbx1;
    // The PBX sends the request back through the proxy toward the other PBX, adding only a
    // route set (what a PBX that learnt a Path does).
    const again = first.raw
      .toString('latin1')
      .replace('\r\nVia: ', `\r\nRoute: <sip:127.0.0.1:${lab.port};lr>, <sip:127.0.0.1:${other.port};lr>\r\nVia: `);
    first.pbx.send(again, lab.port);
    const spiral = await other.next(byCallId(callId));
    expect(spiral.msg.vias.length).toBe(3); // ours twice, the caller's once
    // The same request sent back unchanged: a loop.
    first.pbx.send(first.raw, lab.port);
    const looped = await lab.caller.next((r: Received) => byCallId(callId)(r) && r.msg.status === 482);
    expect(looped.msg.reason).toBe('Loop Detected');
  });

  it('also when only Proxy-Authorization changed', async () => {
    const { text, callId } = lab.request();
    lab.caller.send(text, lab.port);
    const first = await lab.atPbx(byCallId(callId));
    const again = first.raw.toString('latin1').replace('\r\nVia: ', '\r\nProxy-Authorization: Digest username="a", realm="b", nonce="c", uri="sip:x", response="d"\r\nVia: ');
    first.pbx.send(again, lab.port);
    const spiral = await lab.atPbx(byCallId(callId));
    expect(spiral.msg.header('proxy-authorization')).toContain('Digest');
  });
});

describe.skipIf(!RUN_SIPP || !RUN_KAMAILIO)('Path: caller → sipctl → Kamailio registrar → sipctl → callee (finding 12)', () => {
  let kamailio: Kamailio | undefined;
  let proxy: ProxyProcess | undefined;
  let uas: Uas | undefined;
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sipctl-path-'));
    writeFileSync(join(dir, 'path.yaml'), 'dispatcher:\n  path: true\n');
  });
  afterEach(async () => {
    await proxy?.stop();
    await uas?.stop();
    await kamailio?.stop();
    proxy = uas = kamailio = undefined;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  for (const transport of ['udp', 'tcp'] as const) {
    it(`20 calls with INVITE, ACK and BYE all completing over ${transport.toUpperCase()}`, async () => {
      const kamPort = await freePort();
      kamailio = await startKamailio('registrar', `udp:127.0.0.1:${kamPort}`);
      // The callee (a SIPp PBX scenario answering calls) on 127.0.0.4, the caller on 127.0.0.3:
      // each its own address, as phones have.
      const uasPort = await freePort();
      uas = await startUas(uasPort, transport === 'tcp' ? 't1' : 'u1', '127.0.0.4');
      proxy = await startProxyProcess({
        args: ['--config', join(dir, 'path.yaml')],
        setup: [
          ['address', 'add', '1', '127.0.0.3', '32'],
          ['address', 'add', '1', '127.0.0.4', '32'],
          ['dispatcher', 'add', '1', `sip:127.0.0.1:${kamPort}`],
        ],
      });
      const proxyPort = transport === 'tcp' ? proxy.ports.tcp! : proxy.ports.udp!;

      // The callee registers through sipctl, which adds its Path (RFC 3327 §5.1).
      const callId = unique('reg-');
      const contact = `<sip:callee@127.0.0.4:${uasPort};transport=${transport}>`;
      const register = (via: string) =>
        [
          `REGISTER sip:127.0.0.1:${proxyPort};transport=${transport} SIP/2.0`,
          `Via: ${via};branch=${unique('z9hG4bK')};rport`,
          `From: <sip:callee@127.0.0.1>;tag=${unique('r')}`,
          `To: <sip:callee@127.0.0.1>`,
          `Call-ID: ${callId}`,
          'CSeq: 1 REGISTER',
          `Contact: ${contact}`,
          'Supported: path',
          'Expires: 600',
          'Max-Forwards: 70',
          'Content-Length: 0',
          '',
          '',
        ].join('\r\n');
      let ok: Received;
      if (transport === 'udp') {
        const reg = await UdpPeer.open('127.0.0.4');
        reg.send(register(`SIP/2.0/UDP 127.0.0.4:${reg.port}`), proxyPort);
        ok = await reg.next((r) => byCallId(callId)(r) && r.msg.status >= 200, 5000);
        await reg.close();
      } else {
        const reg = await TcpClient.open(proxyPort, '127.0.0.1', '127.0.0.4');
        reg.send(register(`SIP/2.0/TCP 127.0.0.4:${reg.localPort}`));
        ok = await reg.next((r) => byCallId(callId)(r) && r.msg.status >= 200, 5000);
        reg.close();
      }
      expect(ok.msg.status, kamailio.log()).toBe(200);
      expect(kamailio.log()).toMatch(new RegExp(`PBX registers sip:callee@127\\.0\\.0\\.1 with Path <sip:127\\.0\\.0\\.1:${proxy.ports.udp};transport=udp;lr>`));

      const r = await runUac({ proxyPort, calls: 20, rate: 10, transport: transport === 'tcp' ? 't1' : 'u1', address: '127.0.0.3', service: 'callee' });
      expect(r.failed, `${r.stderr}\n${proxy.stderr()}`).toBe(0);
      expect(r.successful).toBe(20);
      // SIPp writes its statistics once a second: wait for the callee's last line.
      for (let i = 0; i < 30 && uas.stats().successful < 20; i++) await new Promise((res) => setTimeout(res, 100));
      expect(uas.stats().successful).toBe(20);
      // Every call went through the PBX, and the ACK and BYE took the spiral through sipctl.
      expect(kamailio.log().match(/PBX got INVITE/g)?.length).toBe(20);
      expect(kamailio.log().match(/PBX got BYE/g)?.length).toBe(20);
    });
  }
});
