/**
 * The usual test bench for the proxy on the wire: a real `sipctl serve` on UDP (and TCP when
 * asked), a caller on 127.0.0.1 admitted by the address table (group 1), two PBXs in
 * dispatcher set 1, and a stranger on 127.0.0.2 that no entry admits (loopback has all of
 * 127/8). Every socket is real; every wait is bounded.
 */
import { startProxyProcess, type ProxyProcess } from './proxy.js';
import { UdpPeer, unique, type Received } from './sip-peer.js';

export interface Lab {
  proxy: ProxyProcess;
  /** The proxy's UDP port (and TCP port when tcp was asked for). */
  port: number;
  tcpPort: number | undefined;
  caller: UdpPeer;
  pbx1: UdpPeer;
  pbx2: UdpPeer;
  stranger: UdpPeer;
  /** A request from `from` (default: the caller) as a UA writes it. */
  request(opts?: LabRequest): { text: string; callId: string };
  /** The next message either PBX receives that matches. */
  atPbx(pred: (r: Received) => boolean, timeoutMs?: number): Promise<Received & { pbx: UdpPeer }>;
  close(): Promise<void>;
}

export interface LabRequest {
  method?: string;
  uri?: string;
  from?: UdpPeer;
  callId?: string;
  branch?: string;
  toTag?: string;
  /** Extra Via parameters on the sender's Via, e.g. ';rport;received=192.0.2.1'. */
  viaParams?: string;
  /** The sender's Via host:port as written (default: its real address and port). */
  sentBy?: string;
  extra?: readonly string[];
}

export async function startLab(opts: { args?: readonly string[]; tcp?: boolean; setup?: ReadonlyArray<readonly string[]> } = {}): Promise<Lab> {
  const caller = await UdpPeer.open();
  const pbx1 = await UdpPeer.open();
  const pbx2 = await UdpPeer.open();
  const stranger = await UdpPeer.open('127.0.0.2');
  const proxy = await startProxyProcess({
    args: ['--listen', 'udp:127.0.0.1:0', ...(opts.tcp ? ['--listen', 'tcp:127.0.0.1:0'] : []), ...(opts.args ?? [])],
    setup: [
      ['address', 'add', '1', '127.0.0.1', '32'],
      ['dispatcher', 'add', '1', `sip:127.0.0.1:${pbx1.port}`],
      ['dispatcher', 'add', '1', `sip:127.0.0.1:${pbx2.port}`],
      ...(opts.setup ?? []),
    ],
  });
  const port = proxy.ports.udp!;
  const lab: Lab = {
    proxy,
    port,
    tcpPort: proxy.ports.tcp,
    caller,
    pbx1,
    pbx2,
    stranger,
    request(r = {}) {
      const from = r.from ?? caller;
      const method = r.method ?? 'INVITE';
      const callId = r.callId ?? unique('call-');
      const text = [
        `${method} ${r.uri ?? `sip:service@127.0.0.1:${port}`} SIP/2.0`,
        `Via: SIP/2.0/UDP ${r.sentBy ?? `${from.address}:${from.port}`};branch=${r.branch ?? unique('z9hG4bK')}${r.viaParams ?? ''}`,
        `From: "Caller" <sip:caller@${from.address}:${from.port}>;tag=${unique('f')}`,
        `To: <sip:service@127.0.0.1:${port}>${r.toTag ? `;tag=${r.toTag}` : ''}`,
        `Call-ID: ${callId}`,
        `CSeq: 1 ${method}`,
        `Contact: <sip:caller@${from.address}:${from.port}>`,
        'Max-Forwards: 70',
        ...(r.extra ?? []),
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
      return { text, callId };
    },
    async atPbx(pred, timeoutMs = 3000) {
      try {
        return await Promise.any([
          pbx1.next(pred, timeoutMs).then((r) => ({ ...r, pbx: pbx1 })),
          pbx2.next(pred, timeoutMs).then((r) => ({ ...r, pbx: pbx2 })),
        ]);
      } finally {
        pbx1.cancelWaits();
        pbx2.cancelWaits();
      }
    },
    async close() {
      await proxy.stop();
      await Promise.all([caller.close(), pbx1.close(), pbx2.close(), stranger.close()]);
    },
  };
  return lab;
}

export const byCallId = (id: string) => (r: Received): boolean => r.msg.header('call-id') === id;
