/**
 * Synthetic calls for the micro-benchmarks: a proxy core with the default route, an address
 * table admitting 127.0.0.1 and one PBX, carrying the messages of SIPp's `uac.xml` (INVITE,
 * 180, 200, ACK, BYE, 200) into a transport that only records, with no sockets.
 *
 * (Until 2026-11-29 `serve` ran 3,000 of these calls at start to have V8 optimize the hot
 * path before the first real call. It had grown to 0.8-1.5 s of CPU per start, more than the
 * first seconds of real traffic spend compiling, and it delayed listening past SIPp's start
 * in `make bench`; README "Performance" has the measurements.)
 */
import { AddressTable } from '../../src/acl/table.js';
import { defaultConfig } from '../../src/config/schema.js';
import { Logger } from '../../src/log/logger.js';
import { ProxyCore } from '../../src/proxy/core.js';
import { createDefaultRoute } from '../../src/route/default.js';
import { parseMessage } from '../../src/sip/parse.js';
import type { Inbound, Listener, Target, Transport, TransportStats } from '../../src/transport/types.js';

const LISTENER: Listener = { id: 0, protocol: 'udp', address: '127.0.0.1', port: 5060, family: 4 };
const UAC_PORT = 5101;
const PBX: Target = { protocol: 'udp', address: '127.0.0.1', port: 5070 };

/** A transport that keeps the last message "sent" and counts them. */
export class RecordingTransport implements Transport {
  readonly listeners = [LISTENER];
  sent = 0;
  last: Buffer = Buffer.alloc(0);
  send(_target: Target, bytes: Buffer): void {
    this.sent++;
    this.last = bytes;
  }
  listenerFor(): Listener {
    return LISTENER;
  }
  stats(): TransportStats {
    throw new Error('not a real transport');
  }
  async close(): Promise<void> {}
}

const SDP =
  'v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';

const lines = (...l: string[]): string => l.join('\r\n');

/** A throwaway core with the default route, an address table admitting 127.0.0.1, one PBX. */
export function syntheticCore(): { core: ProxyCore; transport: RecordingTransport } {
  const config = defaultConfig();
  const logger = new Logger({ level: 'error' });
  const acl = AddressTable.build([{ id: 1, grp: 1, ip_addr: '127.0.0.1', mask: 32, port: 0, tag: null }]);
  const core = new ProxyCore({
    config,
    route: createDefaultRoute({ config, logger }),
    acl: { match: (address, port, groups) => acl.match(address, port, groups) },
    dispatch: {
      select: () => ({ uri: 'sip:127.0.0.1:5070', targets: [PBX] }),
      isNextHop: () => false,
      handleProbeResponse: () => false,
    },
    logger,
  });
  const transport = new RecordingTransport();
  core.attach(transport);
  return { core, transport };
}

/**
 * The six messages of call number `n`, as they reach the proxy: each response is built from
 * what the proxy actually forwarded (its Via, its Record-Route, read from `transport`), so
 * every message takes the path a real one takes. Hand each message to the core before
 * asking for the next.
 */
export function* syntheticCall(transport: RecordingTransport, n: number): Generator<Inbound> {
  const from = (text: string, port: number): Inbound => ({
    bytes: Buffer.from(text, 'latin1'),
    protocol: 'udp',
    sourceAddress: '127.0.0.1',
    sourcePort: port,
    listener: LISTENER,
  });
  const tags = `From: "warm" <sip:caller${n}@127.0.0.1:${UAC_PORT}>;tag=${n}c`;
  const callId = `Call-ID: ${n}-warm@127.0.0.1`;
  yield from(
    lines(
      'INVITE sip:service@127.0.0.1:5060 SIP/2.0',
      `Via: SIP/2.0/UDP 127.0.0.1:${UAC_PORT};branch=z9hG4bK-w-${n}-0`,
      tags,
      'To: <sip:service@127.0.0.1:5060>',
      callId,
      'CSeq: 1 INVITE',
      `Contact: <sip:caller@127.0.0.1:${UAC_PORT};transport=UDP>`,
      'Max-Forwards: 70',
      'Content-Type: application/sdp',
      `Content-Length: ${SDP.length}`,
      '',
      SDP,
    ),
    UAC_PORT,
  );
  const invite = parseMessage(transport.last);
  const vias = invite.headerFields('via').map((v) => `Via: ${v}`);
  const rr = invite.header('record-route') ?? '<sip:127.0.0.1:5060;lr>';
  const to = `To: <sip:service@127.0.0.1:5060>;tag=${n}s`;
  const contact = 'Contact: <sip:pbx@127.0.0.1:5070;transport=UDP>';
  for (const [status, body] of [['180 Ringing', ''], ['200 OK', SDP]] as const) {
    yield from(
      lines(
        `SIP/2.0 ${status}`,
        ...vias,
        `Record-Route: ${rr}`,
        tags,
        to,
        callId,
        'CSeq: 1 INVITE',
        contact,
        ...(body ? ['Content-Type: application/sdp'] : []),
        `Content-Length: ${body.length}`,
        '',
        body,
      ),
      PBX.port,
    );
  }
  for (const [method, seq] of [['ACK', 1], ['BYE', 2]] as const) {
    yield from(
      lines(
        `${method} sip:pbx@127.0.0.1:5070;transport=UDP SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${UAC_PORT};branch=z9hG4bK-w-${n}-${seq}`,
        `Route: ${rr}`,
        tags,
        to,
        callId,
        `CSeq: ${seq} ${method}`,
        'Max-Forwards: 70',
        'Content-Length: 0',
        '',
        '',
      ),
      UAC_PORT,
    );
  }
  const bye = parseMessage(transport.last);
  yield from(
    lines('SIP/2.0 200 OK', ...bye.headerFields('via').map((v) => `Via: ${v}`), tags, to, callId, 'CSeq: 2 BYE', 'Content-Length: 0', '', ''),
    PBX.port,
  );
}
