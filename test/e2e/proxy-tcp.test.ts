/**
 * TCP through the real proxy: requests arriving on a stream leave on UDP (two Record-Route
 * entries, §16.6 step 4) and their responses come back on the same connection (§18.2.2);
 * requests forwarded to a TCP next hop use one reused connection; keep-alive pings get pongs.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { responseTo, sipRequest, TcpClient, TcpServerPeer, UdpPeer, unique, type Received } from '../helpers/sip-peer.js';

const byCallId = (id: string) => (r: Received) => r.msg.header('call-id') === id;

function request(opts: { transport: 'TCP' | 'UDP'; localPort: number; proxyPort: number; callId: string }): string {
  return sipRequest({
    uri: `sip:service@127.0.0.1:${opts.proxyPort}`,
    via: { transport: opts.transport, host: '127.0.0.1', port: opts.localPort },
    callId: opts.callId,
    headers: [`Contact: <sip:caller@127.0.0.1:${opts.localPort};transport=${opts.transport.toLowerCase()}>`],
  });
}

describe('a caller on TCP, a PBX on UDP', () => {
  let proxy: ProxyProcess;
  let pbx: UdpPeer;

  beforeAll(async () => {
    pbx = await UdpPeer.open();
    proxy = await startProxyProcess({
      setup: [['address', 'add', '1', '127.0.0.1', '32']],
      args: ['--forward', `sip:127.0.0.1:${pbx.port}`],
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    await pbx?.close();
  });

  it('record-routes twice, and the response returns on the caller’s connection', async () => {
    const client = await TcpClient.open(proxy.ports.tcp!);
    try {
      const callId = unique('tcp-');
      client.send(request({ transport: 'TCP', localPort: client.localPort, proxyPort: proxy.ports.tcp!, callId }));
      const got = await pbx.next(byCallId(callId));
      expect(got.msg.topVia!.transport).toBe('UDP');
      expect(got.msg.topVia!.port).toBe(proxy.ports.udp);
      expect(got.msg.headerValues('record-route')).toEqual([
        `<sip:127.0.0.1:${proxy.ports.udp};transport=udp;lr;r2=on>`,
        `<sip:127.0.0.1:${proxy.ports.tcp};transport=tcp;lr;r2=on>`,
      ]);
      pbx.send(responseTo(got.msg, 200, 'OK'), proxy.ports.udp!);
      const ok = await client.next(byCallId(callId));
      expect(ok.msg.status).toBe(200);
      expect(ok.msg.vias).toHaveLength(1);
      expect(ok.msg.topVia!.transport).toBe('TCP');
    } finally {
      client.close();
    }
  });

  it('answers a CRLF keep-alive ping with a pong (RFC 5626 §3.5.1)', async () => {
    const sock = connect(proxy.ports.tcp!, '127.0.0.1');
    try {
      const pong = await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no pong')), 2000);
        sock.on('data', (d) => {
          clearTimeout(t);
          resolve(d.toString('latin1'));
        });
        sock.on('connect', () => sock.write('\r\n\r\n'));
      });
      expect(pong).toBe('\r\n');
    } finally {
      sock.destroy();
    }
  });
});

describe('a caller on UDP, a PBX on TCP', () => {
  let proxy: ProxyProcess;
  let pbx: TcpServerPeer;
  let uac: UdpPeer;

  beforeAll(async () => {
    pbx = await TcpServerPeer.open();
    uac = await UdpPeer.open();
    proxy = await startProxyProcess({
      setup: [['address', 'add', '1', '127.0.0.1', '32']],
      args: ['--forward', `sip:127.0.0.1:${pbx.port};transport=tcp`],
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    await pbx?.close();
    await uac?.close();
  });

  it('forwards over one reused TCP connection and routes the PBX’s responses back over UDP', async () => {
    const ids = [unique('to-tcp-'), unique('to-tcp-')];
    for (const callId of ids) {
      uac.send(request({ transport: 'UDP', localPort: uac.port, proxyPort: proxy.ports.udp!, callId }), proxy.ports.udp!);
      const got = await pbx.next(byCallId(callId));
      expect(got.msg.topVia!.transport).toBe('TCP');
      expect(got.msg.contentLength).toBe(0);
      got.socket!.write(responseTo(got.msg, 180, 'Ringing'));
      const ringing = await uac.next(byCallId(callId));
      expect(ringing.msg.status).toBe(180);
      expect(ringing.msg.topVia!.port).toBe(uac.port);
    }
    expect(pbx.sockets).toHaveLength(1);
  });
});
