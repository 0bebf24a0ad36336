/**
 * Transaction mode across transports (issue 9): SIPp calls TCP in / UDP out and UDP in /
 * TCP out, and non-INVITE transactions over TCP with failover. Over TCP the proxy does not
 * retransmit (RFC 3261 §17.1.1.2, §17.1.2.2: Timers A and E only on unreliable transports).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { byCallId } from '../helpers/lab.js';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { responseTo, TcpClient, TcpServerPeer, unique } from '../helpers/sip-peer.js';
import { freePort, RUN_SIPP, runUac, startUas, type Uas } from '../helpers/sipp.js';

let dir: string;
let config: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sipctl-txtcp-'));
  config = join(dir, 'tx.yaml');
  writeFileSync(config, 'mode: transaction\ntransaction:\n  frTimerMs: 2000\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!RUN_SIPP)('transaction mode with SIPp across transports', () => {
  let proxy: ProxyProcess | undefined;
  let uas: Uas | undefined;
  afterEach(async () => {
    await proxy?.stop();
    await uas?.stop();
    proxy = uas = undefined;
  });

  it('TCP in, UDP out: 100 calls, 0 failed', async () => {
    const port = await freePort();
    uas = await startUas(port, 'u1');
    proxy = await startProxyProcess({
      args: ['--config', config],
      setup: [['address', 'add', '1', '127.0.0.1', '32'], ['dispatcher', 'add', '1', `sip:127.0.0.1:${port}`]],
    });
    const r = await runUac({ proxyPort: proxy.ports.tcp!, calls: 100, rate: 25, transport: 't1' });
    expect(r.failed, r.errors).toBe(0);
    expect(r.successful).toBe(100);
  });

  it('UDP in, TCP out: 100 calls, 0 failed', async () => {
    const port = await freePort();
    uas = await startUas(port, 't1');
    proxy = await startProxyProcess({
      args: ['--config', config],
      setup: [['address', 'add', '1', '127.0.0.1', '32'], ['dispatcher', 'add', '1', `sip:127.0.0.1:${port};transport=tcp`]],
    });
    const r = await runUac({ proxyPort: proxy.ports.udp!, calls: 100, rate: 25 });
    expect(r.failed, r.errors).toBe(0);
    expect(r.successful).toBe(100);
  });
});

describe('non-INVITE transactions over TCP, with failover', () => {
  let proxy: ProxyProcess;
  let a: TcpServerPeer;
  let b: TcpServerPeer;
  let phone: TcpClient;
  beforeAll(async () => {
    a = await TcpServerPeer.open();
    b = await TcpServerPeer.open();
    proxy = await startProxyProcess({
      args: ['--config', config],
      setup: [
        ['address', 'add', '1', '127.0.0.0', '8', '0'],
        ['dispatcher', 'add', '1', `sip:127.0.0.1:${a.port};transport=tcp`],
        ['dispatcher', 'add', '1', `sip:127.0.0.1:${b.port};transport=tcp`],
      ],
    });
    phone = await TcpClient.open(proxy.ports.tcp!, '127.0.0.1', '127.0.0.3');
  });
  afterAll(async () => {
    phone?.close();
    await proxy?.stop();
    await Promise.all([a?.close(), b?.close()]);
  });

  for (const method of ['REGISTER', 'OPTIONS', 'MESSAGE']) {
    it(`${method}: the first PBX answers 500, the second 200; no retransmission over TCP`, async () => {
      const callId = unique('tcp-');
      phone.send(
        [
          `${method} sip:service@example.com SIP/2.0`, // not addressed to the proxy itself (an OPTIONS to it is answered here)
          `Via: SIP/2.0/TCP 127.0.0.3:${phone.localPort};branch=${unique('z9hG4bK')};rport`,
          `From: <sip:phone@127.0.0.3>;tag=${unique('t')}`,
          'To: <sip:service@127.0.0.1>',
          `Call-ID: ${callId}`,
          `CSeq: 1 ${method}`,
          `Contact: <sip:phone@127.0.0.3:${phone.localPort};transport=tcp>`,
          'Max-Forwards: 70',
          'Content-Length: 0',
          '',
          '',
        ].join('\r\n'),
      );
      const first = await Promise.any([a.next(byCallId(callId)).then((r) => ({ r, p: a, o: b })), b.next(byCallId(callId)).then((r) => ({ r, p: b, o: a }))]);
      a.cancelWaits();
      b.cancelWaits();
      first.r.socket!.write(responseTo(first.r.msg, 500, 'Server Internal Error'));
      const second = await first.o.next(byCallId(callId));
      second.socket!.write(responseTo(second.msg, 200, 'OK'));
      const r = await phone.next(byCallId(callId));
      expect(r.msg.status).toBe(200);
      // Over TCP nothing is sent twice (no Timer E).
      expect(await first.p.nothing(byCallId(callId), 1200)).toBe(true);
      expect(await first.o.nothing(byCallId(callId), 10)).toBe(true);
    });
  }
});
