/**
 * Real calls: SIPp's uac.xml (INVITE / 180 / 200 / ACK / BYE / 200 through a record-routing
 * proxy) → sipctl → SIPp's uas.xml, over UDP and over TCP. 0 failed calls.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { freePort, RUN_SIPP, runUac, startUas, type Uas } from '../helpers/sipp.js';

describe.skipIf(!RUN_SIPP)('SIPp calls through sipctl', () => {
  let proxy: ProxyProcess | undefined;
  let uas: Uas | undefined;

  afterEach(async () => {
    await proxy?.stop();
    await uas?.stop();
    proxy = undefined;
    uas = undefined;
  });

  it('carries 200 calls over UDP with 0 failed', async () => {
    const uasPort = await freePort();
    uas = await startUas(uasPort, 'u1');
    proxy = await startProxyProcess({
      setup: [['address', 'add', '1', '127.0.0.1', '32']],
      args: ['--listen', 'udp:127.0.0.1:0', '--forward', `sip:127.0.0.1:${uasPort}`],
    });
    const r = await runUac({ proxyPort: proxy.ports.udp!, calls: 200, rate: 100 });
    expect(r.failed).toBe(0);
    expect(r.successful).toBe(200);
    expect(r.code).toBe(0);
  });

  it('carries 200 calls over TCP with 0 failed', async () => {
    const uasPort = await freePort();
    uas = await startUas(uasPort, 't1');
    proxy = await startProxyProcess({
      setup: [['address', 'add', '1', '127.0.0.1', '32']],
      args: ['--listen', 'tcp:127.0.0.1:0', '--forward', `sip:127.0.0.1:${uasPort};transport=tcp`],
    });
    const r = await runUac({ proxyPort: proxy.ports.tcp!, calls: 200, rate: 100, transport: 't1' });
    expect(r.failed).toBe(0);
    expect(r.successful).toBe(200);
    expect(r.code).toBe(0);
  });
});
