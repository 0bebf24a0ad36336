/**
 * The costliest requests one datagram can carry (up to 64 KB), for `make bench-micro`'s
 * "worst crafted request" rows: each shape stresses one thing the proxy reads — Vias that
 * name us (the loop check), Route sets, long values the proxy hashes or copies, many header
 * fields, many parameters, folding — and is sent through the real proxy core from a source
 * that is admitted and from one that is not. The goal (issue 8): each at most 20× a typical
 * INVITE through the same core.
 */
import { syntheticCall, syntheticCore, type RecordingTransport } from './synthetic-call.js';
import type { ProxyCore } from '../../src/proxy/core.js';
import type { Inbound, Listener } from '../../src/transport/types.js';

/** The proxy core's listener in syntheticCore(). */
const LISTENER: Listener = { id: 0, protocol: 'udp', address: '127.0.0.1', port: 5060, family: 4 };
/** Bytes to fill: a little under the largest IPv4 UDP payload (65,507). */
const BUDGET = 64_000;

function fill(line: string, budget = BUDGET - 600, max = 980): string[] {
  const out: string[] = [];
  let n = 0;
  for (;;) {
    const next = line.replace('#', out.length.toString(36));
    if (n + next.length + 2 >= budget || out.length >= max) break;
    out.push(next);
    n += next.length + 2;
  }
  return out;
}

function request(port: number, opts: { method?: string; uri?: string; extra?: string[]; callId?: string; toTag?: string; from?: string }): string {
  const method = opts.method ?? 'INVITE';
  return [
    `${method} ${opts.uri ?? `sip:bob@127.0.0.1:${port}`} SIP/2.0`,
    'Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK-crafted-1;rport',
    ...(opts.extra ?? []),
    opts.from ?? 'From: <sip:alice@example.com>;tag=f1',
    `To: <sip:bob@example.com>${opts.toTag ?? ''}`,
    `Call-ID: ${opts.callId ?? 'crafted-1@example.com'}`,
    `CSeq: 1 ${method}`,
    'Max-Forwards: 70',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/** Every crafted shape, by name, for a proxy on 127.0.0.1:port. */
export function craftedRequests(port = 5060): Record<string, Buffer> {
  const req = (opts: Parameters<typeof request>[1]): string => request(port, opts);
  const shapes: Record<string, string> = {
    'Vias naming us, one per line': req({ extra: fill(`v: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bKsc.#`) }),
    'Vias naming us, one field': req({ extra: [`Via: ${fill(`SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK#`, BUDGET - 600, 100_000).join(',')}`] }),
    'Route fields naming us': req({ extra: fill(`Route: <sip:127.0.0.1:${port};lr>`) }),
    'foreign Route fields': req({ extra: fill('Route: <sip:10.9.9.#:5060;lr>') }),
    'one Route field, many values': req({ extra: [`Route: ${fill(`<sip:127.0.0.1:${port};lr>`, BUDGET - 600, 100_000).join(',')}`] }),
    'in-dialog, Route fields naming us': req({ method: 'BYE', toTag: ';tag=t1', extra: fill(`Route: <sip:127.0.0.1:${port};lr>`) }),
    'long Call-ID': req({ callId: 'c'.repeat(BUDGET - 600) }),
    'long From tag': req({ from: `From: <sip:alice@example.com>;tag=${'t'.repeat(BUDGET - 600)}` }),
    'Proxy-Require fields': req({ extra: fill('Proxy-Require: x#') }),
    'unknown header fields': req({ extra: fill('X-#: y') }),
    'Via parameters': req({ extra: [`Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKp;${fill('p#=1', BUDGET - 600, 100_000).join(';')}`] }),
    'Request-URI parameters': req({ uri: `sip:bob@127.0.0.1:${port};${fill('p#=1', BUDGET - 600, 100_000).join(';')}` }),
    'folded header lines': req({ extra: [`Subject: s\r\n${fill(' w', BUDGET - 600, 100_000).join('\r\n')}`] }),
    'Contact values (REGISTER)': req({ method: 'REGISTER', extra: fill('Contact: <sip:u#@10.0.0.1:5060>;expires=60') }),
  };
  const out: Record<string, Buffer> = {};
  for (const [name, text] of Object.entries(shapes)) {
    const b = Buffer.from(text, 'latin1');
    if (b.length > 65_507) throw new Error(`crafted shape '${name}' is ${b.length} bytes: larger than a datagram`);
    out[name] = b;
  }
  return out;
}

/** CPU µs per call of fn (process.cpuUsage), after a warm-up. */
function cpuMicros(fn: () => void, runMs: number): number {
  for (let i = 0; i < 50; i++) fn();
  let n = 0;
  const c0 = process.cpuUsage();
  let used = 0;
  while (used < runMs * 1000) {
    for (let i = 0; i < 20; i++) fn();
    n += 20;
    const c = process.cpuUsage(c0);
    used = c.user + c.system;
  }
  return used / n;
}

export interface CraftedResult {
  typicalUs: number;
  rows: Array<{ shape: string; bytes: number; admittedUs: number; unadmittedUs: number }>;
}

/**
 * Each shape through a warmed-up proxy core, from 127.0.0.1 (admitted) and from 10.1.1.1
 * (not), beside the typical INVITE (SIPp's, the first message of the synthetic call).
 */
export function benchCrafted(runMs = 300): CraftedResult {
  const { core, transport } = syntheticCore();
  for (let n = 0; n < 2000; n++) for (const m of syntheticCall(transport, n)) core.onInbound(m);
  const typical = syntheticCall(transport, 1_000_000).next().value as Inbound;
  const inbound = (bytes: Buffer, sourceAddress: string): Inbound => ({ bytes, protocol: 'udp', sourceAddress, sourcePort: 5062, listener: LISTENER });
  const measureTypical = (): number => cpuMicros(() => core.onInbound(typical), runMs);
  let typicalUs = measureTypical();
  const rows: CraftedResult['rows'] = [];
  for (const [shape, bytes] of Object.entries(craftedRequests())) {
    const admittedUs = cpuMicros(() => core.onInbound(inbound(bytes, '127.0.0.1')), runMs);
    const unadmittedUs = cpuMicros(() => core.onInbound(inbound(bytes, '10.1.1.1')), runMs);
    rows.push({ shape, bytes: bytes.length, admittedUs, unadmittedUs });
  }
  // The typical figure again at the end, and the lower of the two (noise only ever adds).
  typicalUs = Math.min(typicalUs, measureTypical());
  checkAnswered(core, transport);
  return { typicalUs, rows };
}

function checkAnswered(core: ProxyCore, transport: RecordingTransport): void {
  if (transport.sent === 0 || core.stats.requestsIn === 0) throw new Error('the core handled nothing: the benchmark is broken');
}
