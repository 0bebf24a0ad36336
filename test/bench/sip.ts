/**
 * SIP hot-path micro-benchmarks: what one message costs in JavaScript, with no sockets.
 *
 * - parse: parseMessage + the accessors a proxy reads;
 * - parse + edit + serialize: a typical INVITE (Via, received/rport, Max-Forwards,
 *   Record-Route) and a 200 OK with SDP (remove the top Via);
 * - through the proxy core: every message of one call (INVITE, 180, 200, ACK, BYE, 200)
 *   handled by the real ProxyCore with the default route, an address table and a
 *   dispatcher pick, sending into a transport that only records (test/bench/synthetic-call.ts).
 */
import { syntheticCall, syntheticCore } from './synthetic-call.js';
import { parseMessage } from '../../src/sip/parse.js';
import type { Inbound } from '../../src/transport/types.js';

const CRLF = (s: string): Buffer => Buffer.from(s.replace(/^\n/, '').replace(/\n/g, '\r\n'), 'latin1');

const SDP = 'v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';

/** What SIPp's uac.xml sends (the bench scenario). */
export const INVITE = CRLF(`
INVITE sip:bench@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5101;branch=z9hG4bK-21003-1-0
From: "bench" <sip:caller1@127.0.0.1:5101>;tag=21003c1
To: <sip:bench@127.0.0.1:5060>
Call-ID: 1-21003@127.0.0.1
CSeq: 1 INVITE
Contact: <sip:caller@127.0.0.1:5101;transport=UDP>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: ${SDP.length}

${SDP}`);

function ok200(vias: string[], rr: string): Buffer {
  return CRLF(`
SIP/2.0 200 OK
${vias.map((v) => `Via: ${v}`).join('\n')}
Record-Route: ${rr}
From: "bench" <sip:caller1@127.0.0.1:5101>;tag=21003c1
To: <sip:bench@127.0.0.1:5060>;tag=21010s1
Call-ID: 1-21003@127.0.0.1
CSeq: 1 INVITE
Contact: <sip:pbx@127.0.0.1:5070;transport=UDP>
Content-Type: application/sdp
Content-Length: ${SDP.length}

${SDP}`);
}

/**
 * Operations per second of CPU time (process.cpuUsage, not the wall clock): on a shared,
 * busy machine the wall clock counts the time other processes had the core.
 */
function rate(label: string, runMs: number, fn: () => void, per = 1): { label: string; perSecond: number; usPerOp: number } {
  // BENCH_ONLY=regex runs just the matching measurements (for profiling one path).
  const only = process.env.BENCH_ONLY;
  if (only !== undefined && !new RegExp(only).test(label)) return { label, perSecond: 0, usPerOp: 0 };
  for (let i = 0; i < 20_000; i++) fn(); // warm up: let the JIT settle
  let n = 0;
  const c0 = process.cpuUsage();
  let used = 0;
  while (used < runMs * 1000) {
    for (let i = 0; i < 1000; i++) fn();
    n += 1000;
    const c = process.cpuUsage(c0);
    used = c.user + c.system;
  }
  const seconds = used / 1e6;
  return { label, perSecond: (n * per) / seconds, usPerOp: (seconds * 1e6) / (n * per) };
}

export function benchSip(runMs = 1000): Array<{ label: string; perSecond: number; usPerOp: number }> {
  const results = [];
  results.push(
    rate('INVITE: parse + read what a proxy reads', runMs, () => {
      const m = parseMessage(INVITE);
      void m.topVia;
      void m.callId;
      void m.cseq;
      void m.from.tag;
      void m.to.tag;
      void m.maxForwards;
      void m.uri.host;
    }),
  );
  results.push(
    rate('INVITE: parse + edit + serialize', runMs, () => {
      const m = parseMessage(INVITE);
      const top = m.topVia!;
      m.insertAt(top.end, ';received=127.0.0.1');
      m.setHeader('max-forwards', String(m.maxForwards! - 1));
      m.insertHeaderBefore('record-route', 'Record-Route', '<sip:127.0.0.1:5060;transport=udp;lr>');
      m.insertHeaderBefore('via', 'Via', 'SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsc.0123456789abcd');
      m.serialize();
    }),
  );
  const resp = ok200(['SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsc.0123456789abcd', 'SIP/2.0/UDP 127.0.0.1:5101;branch=z9hG4bK-21003-1-0;received=127.0.0.1'], '<sip:127.0.0.1:5060;transport=udp;lr>');
  results.push(
    rate('200 OK with SDP: parse + remove top Via + serialize', runMs, () => {
      const m = parseMessage(resp);
      void m.vias;
      m.removeTopVia();
      m.serialize();
    }),
  );

  // ---- the whole call through the proxy core (test/bench/synthetic-call.ts)
  const { core, transport } = syntheticCore();
  const call: Inbound[] = [];
  for (const inbound of syntheticCall(transport, 1)) {
    core.onInbound(inbound);
    call.push(inbound);
  }
  const labels = [
    'core: INVITE (ACL, dispatch, RR, Via)',
    'core: 180 Ringing',
    'core: 200 OK with SDP',
    'core: ACK (loose route)',
    'core: BYE (loose route)',
    'core: 200 OK for BYE',
  ];
  const before = transport.sent;
  call.forEach((inbound, i) => results.push(rate(labels[i]!, runMs / 2, () => core.onInbound(inbound))));
  results.push(rate('core: one whole call (6 messages), per message', runMs, () => {
    for (const m of call) core.onInbound(m);
  }, 6));
  if (transport.sent === before && process.env.BENCH_ONLY === undefined) throw new Error('the core sent nothing: the benchmark is broken');
  if (core.stats.replied > 0 || core.stats.dropped > 0) {
    throw new Error(`the core replied ${core.stats.replied} / dropped ${core.stats.dropped} messages: the benchmark is broken`);
  }
  return results;
}
