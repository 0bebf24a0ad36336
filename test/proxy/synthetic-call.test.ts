import { describe, expect, it } from 'vitest';
import { parseMessage } from '../../src/sip/parse.js';
import { syntheticCall, syntheticCore } from '../bench/synthetic-call.js';

// The micro-benchmarks (make bench-micro, bench-route, bench-tx) measure these calls: they
// must take the real paths, or the figures describe something else.
describe('synthetic calls for the micro-benchmarks', () => {
  it('carries every message of its synthetic calls through a real proxy core', () => {
    const { core, transport } = syntheticCore();
    for (let n = 0; n < 50; n++) for (const inbound of syntheticCall(transport, n)) core.onInbound(inbound);
    expect(transport.sent).toBe(300);
    expect(core.stats.forwarded + core.stats.responsesForwarded).toBe(300);
  });

  it('takes the real paths: Record-Route and our Via on the INVITE, loose routing for ACK and BYE', () => {
    const { core, transport } = syntheticCore();
    const seen: string[] = [];
    for (const inbound of syntheticCall(transport, 7)) {
      core.onInbound(inbound);
      const out = parseMessage(transport.last);
      seen.push(out.isRequest ? `${out.method} vias=${out.vias.length} rr=${out.header('record-route') !== undefined} route=${out.header('route') !== undefined}` : `${out.status} vias=${out.vias.length}`);
    }
    expect(seen).toEqual([
      'INVITE vias=2 rr=true route=false',
      '180 vias=1',
      '200 vias=1',
      'ACK vias=2 rr=false route=false',
      'BYE vias=2 rr=false route=false',
      '200 vias=1',
    ]);
    expect(core.stats.replied).toBe(0);
    expect(core.pairing.size).toBe(0); // the 200 to the INVITE cleared its pairing entry
  });
});
