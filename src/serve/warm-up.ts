/**
 * JIT warm-up: before the proxy binds its sockets, a throwaway proxy core carries a few
 * thousand synthetic calls (INVITE, 180, 200, ACK, BYE, 200, the messages of SIPp's
 * `uac.xml`) into a transport that only records. V8 then has the hot path compiled and
 * optimized when the first real call arrives, instead of spending the first seconds of
 * traffic compiling it (measured: a 2-second burst of calls costs three times the CPU per
 * call of the steady state). It takes about 0.2 s of CPU at start and touches nothing the
 * real proxy uses: its own core, address table, pairing map, counters.
 */
import { AddressTable } from '../acl/table.js';
import { defaultConfig } from '../config/schema.js';
import { Logger } from '../log/logger.js';
import { ProxyCore } from '../proxy/core.js';
import { createDefaultRoute } from '../route/default.js';
import { parseMessage } from '../sip/parse.js';
import type { Inbound, Listener, Target, Transport, TransportStats } from '../transport/types.js';

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
export function warmUpCore(): { core: ProxyCore; transport: RecordingTransport } {
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

/** Run `calls` synthetic calls through a throwaway core; returns the CPU it took. */
export function warmUp(calls = 3000): { calls: number; messages: number; cpuMs: number } {
  const before = process.cpuUsage();
  const { core, transport } = warmUpCore();
  for (let n = 0; n < calls; n++) for (const inbound of syntheticCall(transport, n)) core.onInbound(inbound);
  const used = process.cpuUsage(before);
  if (core.stats.forwarded + core.stats.responsesForwarded !== calls * 6) {
    // Not fatal — the proxy works without a warm JIT — but it means the route changed.
    throw new Error(`warm-up forwarded ${core.stats.forwarded + core.stats.responsesForwarded} of ${calls * 6} messages`);
  }
  return { calls, messages: transport.sent, cpuMs: (used.user + used.system) / 1000 };
}
