/**
 * IPv6 end to end: a caller on [::1], the proxy on udp:[::1], a PBX on [::1]. Via sent-by,
 * Record-Route and received carry IPv6 references (RFC 5118), and the response returns.
 */
import { createSocket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { responseTo, sipRequest, UdpPeer, unique } from '../helpers/sip-peer.js';

async function hasIPv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket('udp6');
    s.once('error', () => resolve(false));
    s.bind(0, '::1', () => s.close(() => resolve(true)));
  });
}

const v6 = await hasIPv6Loopback();
if (!v6) console.warn('skipping the IPv6 end-to-end test: this machine has no ::1');

describe.skipIf(!v6)('IPv6', () => {
  let proxy: ProxyProcess;
  let uac: UdpPeer;
  let pbx: UdpPeer;

  beforeAll(async () => {
    uac = await UdpPeer.open('::1');
    pbx = await UdpPeer.open('::1');
    proxy = await startProxyProcess({
      setup: [['address', 'add', '1', '::1']],
      args: ['--listen', 'udp:[::1]:0', '--forward', `sip:[::1]:${pbx.port}`],
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    await uac?.close();
    await pbx?.close();
  });

  it('forwards an INVITE and routes its response back', async () => {
    const port = proxy.ports.udp!;
    const callId = unique('v6-');
    uac.send(sipRequest({ uri: `sip:service@[::1]:${port}`, via: { host: '[::1]', port: uac.port, rport: true }, callId }), port, '::1');
    const got = await pbx.next((r) => r.msg.header('call-id') === callId);
    expect(got.msg.topVia!.host).toBe('::1');
    expect(got.msg.topVia!.port).toBe(port);
    expect(got.msg.header('record-route')).toBe(`<sip:[::1]:${port};transport=udp;lr>`);
    expect(got.msg.vias[1]!.received).toBe('::1');
    expect(got.msg.vias[1]!.rport).toBe(uac.port);
    pbx.send(responseTo(got.msg, 200, 'OK'), port, '::1');
    const ok = await uac.next((r) => r.msg.header('call-id') === callId);
    expect(ok.msg.status).toBe(200);
  });
});
