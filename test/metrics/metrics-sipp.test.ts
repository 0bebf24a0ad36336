/**
 * Metrics against a running proxy: the real `sipctl serve --metrics 127.0.0.1:0`, real SIPp
 * calls through it to a SIPp PBX that answers probes, a stranger that is refused, a datagram
 * that is not SIP; then /metrics is scraped over real HTTP and every value is checked against
 * what was sent, and the exposition is validated by `promtool check metrics`. /healthz and
 * /readyz are checked too, and /readyz turns 503 when the set's only destination goes down.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { sip, UdpPeer, unique } from '../helpers/sip-peer.js';
import { freePort, RUN_SIPP, runUac, startUas, type Uas } from '../helpers/sipp.js';
import { fetchText, parseExposition, promtoolCheck, RUN_PROMTOOL, value, type Samples } from './exposition.js';

const CALLS = 20;
const REFUSED = 3;

let dir: string;
let proxy: ProxyProcess;
let uas: Uas;
let base: string;
let stranger: UdpPeer;
let samples: Samples;
let exposition: string;

/** The metrics address the proxy logged (`metrics served listen=...`). */
async function metricsAddress(p: ProxyProcess): Promise<string> {
  for (let i = 0; i < 30; i++) {
    const m = /metrics served listen=(\S+)/.exec(p.stderr());
    if (m !== null) return `http://${m[1]}`;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the proxy did not say where it serves metrics:\n${p.stderr()}`);
}

describe.skipIf(!RUN_SIPP)('metrics after SIPp calls (the real proxy, scraped over HTTP)', () => {
  beforeAll(async () => {
    if (!RUN_SIPP) console.log('skipped: sipp is not installed (apt-get install -y sip-tester)');
    dir = mkdtempSync(join(tmpdir(), 'sipctl-metrics-'));
    const pbxPort = await freePort();
    uas = await startUas(pbxPort, 'u1', '127.0.0.1', { answerOptions: true });
    writeFileSync(join(dir, 'sipctl.yaml'), 'dispatcher:\n  probe: { interval: 1 }\n');
    proxy = await startProxyProcess({
      dir,
      args: ['--listen', 'udp:127.0.0.1:0', '--metrics', '127.0.0.1:0', '--config', join(dir, 'sipctl.yaml')],
      setup: [
        ['address', 'add', '1', '127.0.0.1', '32'],
        ['dispatcher', 'add', '1', `sip:127.0.0.1:${pbxPort}`],
      ],
    });
    base = await metricsAddress(proxy);
    stranger = await UdpPeer.open('127.0.0.2');
    const port = proxy.ports.udp!;

    const result = await runUac({ proxyPort: port, calls: CALLS, rate: 10 });
    expect(result.successful).toBe(CALLS);
    expect(result.failed).toBe(0);

    // A stranger (127.0.0.2 is not in the address table) is refused with 401, REFUSED times.
    for (let i = 0; i < REFUSED; i++) {
      stranger.send(
        sip(
          [
            `OPTIONS sip:service@127.0.0.1:${port} SIP/2.0`,
            `Via: SIP/2.0/UDP 127.0.0.2:${stranger.port};branch=${unique('z9hG4bK')}`,
            `From: <sip:s@127.0.0.2>;tag=${unique('t')}`,
            'To: <sip:service@127.0.0.1>',
            `Call-ID: ${unique('refused-')}`,
            'CSeq: 1 OPTIONS',
            'Max-Forwards: 70',
            'Content-Length: 0',
            '',
            '',
          ].join('\r\n'),
        ),
        port,
      );
      const reply = await stranger.next((r) => !r.msg.isRequest);
      expect(reply.msg.status).toBe(401);
    }
    // A response from the stranger: dropped unread (not admitted).
    stranger.send(sip(['SIP/2.0 200 OK', 'Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx', 'Call-ID: x', 'CSeq: 1 INVITE', 'Content-Length: 0', '', ''].join('\r\n')), port);
    // Not SIP at all, from an admitted source: dropped as unparsable.
    const admitted = await UdpPeer.open('127.0.0.1');
    admitted.send(Buffer.from('this is not a SIP message, just forty-some bytes of text\r\n'), port);
    await admitted.nothing(() => true, 300);
    await admitted.close();

    // Let a probe round pass, then scrape.
    await new Promise((r) => setTimeout(r, 1500));
    const res = await fetchText(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.contentType).toContain('text/plain');
    exposition = res.text;
    samples = parseExposition(exposition);
  }, 120_000);

  afterAll(async () => {
    await stranger?.close();
    await proxy?.stop();
    await uas?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('counts requests by method, calls, and responses by class as SIPp sent them', () => {
    expect(value(samples, 'sipctl_requests_received_total{method="INVITE"}')).toBe(CALLS);
    expect(value(samples, 'sipctl_requests_received_total{method="ACK"}')).toBe(CALLS);
    expect(value(samples, 'sipctl_requests_received_total{method="BYE"}')).toBe(CALLS);
    expect(value(samples, 'sipctl_requests_received_total{method="OPTIONS"}')).toBe(REFUSED);
    expect(value(samples, 'sipctl_calls_total')).toBe(CALLS);
    // INVITE, ACK and BYE of every call went to the PBX.
    expect(value(samples, 'sipctl_requests_forwarded_total')).toBe(3 * CALLS);
    // uas.xml answers 180 and 200 to the INVITE, 200 to the BYE.
    expect(value(samples, 'sipctl_responses_relayed_total{class="1xx"}')).toBe(CALLS);
    expect(value(samples, 'sipctl_responses_relayed_total{class="2xx"}')).toBe(2 * CALLS);
    expect(value(samples, 'sipctl_responses_relayed_total{class="4xx"}')).toBe(0);
  });

  it('counts refusals, local replies by code and drops by reason', () => {
    expect(value(samples, 'sipctl_requests_refused_total')).toBe(REFUSED);
    expect(value(samples, 'sipctl_local_replies_total{code="401"}')).toBe(REFUSED);
    expect(value(samples, 'sipctl_messages_dropped_total{reason="not_admitted"}')).toBe(1);
    expect(value(samples, 'sipctl_messages_dropped_total{reason="parse"}')).toBe(1);
    expect(value(samples, 'sipctl_messages_dropped_total{reason="flood"}')).toBe(0);
    expect(value(samples, 'sipctl_messages_dropped_total{reason="foreign_via"}')).toBe(0);
  });

  it('reports the destination: up, requests sent, probe round trip, no failures; the set and the address table', () => {
    const d = `{set="1",destination="sip:127.0.0.1:${uas.port}"}`;
    expect(value(samples, `sipctl_dispatcher_destination_up${d}`)).toBe(1);
    // Only initial requests are dispatched; ACK and BYE follow the route set.
    expect(value(samples, `sipctl_dispatcher_destination_requests_total${d}`)).toBe(CALLS);
    const rtt = value(samples, `sipctl_dispatcher_destination_probe_rtt_seconds${d}`);
    expect(rtt).toBeGreaterThanOrEqual(0);
    expect(rtt).toBeLessThan(2);
    expect(value(samples, `sipctl_dispatcher_destination_probe_rtt_avg_seconds${d}`)).toBeGreaterThanOrEqual(0);
    expect(value(samples, `sipctl_dispatcher_destination_probe_failures_total${d}`)).toBe(0);
    expect(value(samples, `sipctl_dispatcher_destination_failovers_total${d}`)).toBe(0);
    expect(value(samples, 'sipctl_dispatcher_set_destinations{set="1"}')).toBe(1);
    expect(value(samples, 'sipctl_dispatcher_set_active_destinations{set="1"}')).toBe(1);
    expect(value(samples, 'sipctl_address_table_entries{group="1"}')).toBe(1);
    expect(value(samples, 'sipctl_address_table_last_reload_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 600);
    expect(value(samples, 'sipctl_address_table_reload_failures_total')).toBe(0);
  });

  it('reports the transport: messages in and out match the calls, refusals and probes', () => {
    // In: 3 requests per call from SIPp + 3 responses per call from the PBX, the refused
    // OPTIONS, the stranger's response, the garbage, and the probes' answers.
    const udpIn = value(samples, 'sipctl_transport_messages_received_total{protocol="udp"}');
    const probes = udpIn - (6 * CALLS + REFUSED + 2);
    expect(probes).toBeGreaterThanOrEqual(1);
    // Out: 6 per call, the 401s, and one OPTIONS per probe (answered, so no retransmission
    // unless a probe was slower than T1).
    const udpOut = value(samples, 'sipctl_transport_messages_sent_total{protocol="udp"}');
    expect(udpOut).toBeGreaterThanOrEqual(6 * CALLS + REFUSED + probes);
    expect(value(samples, 'sipctl_transport_messages_received_total{protocol="tcp"}')).toBe(0);
    expect(value(samples, 'sipctl_transport_received_bytes_total{protocol="udp"}')).toBeGreaterThan(udpIn * 200);
    expect(value(samples, 'sipctl_tcp_connections{direction="in"}')).toBe(0);
  });

  it('has the process metrics, no per-source or per-call labels, and no transactions while stateless', () => {
    expect(value(samples, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(value(samples, 'process_resident_memory_bytes')).toBeGreaterThan(1e6);
    expect([...samples.keys()].some((k) => k.startsWith('nodejs_eventloop_lag_seconds'))).toBe(true);
    expect(value(samples, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(1e6);
    // GC pauses: the histogram is declared (its buckets appear once a GC has been observed).
    expect(exposition).toContain('# TYPE nodejs_gc_duration_seconds histogram');
    expect(exposition).not.toContain('127.0.0.2');
    expect(exposition).not.toMatch(/call_?id/i);
    expect(value(samples, 'sipctl_transactions')).toBe(0);
    expect(value(samples, 'sipctl_transactions_created_total')).toBe(0);
    for (const k of samples.keys()) {
      if (!k.startsWith('sipctl_')) continue;
      const name = k.replace(/\{.*$/, '');
      expect(name, 'sipctl metric names are snake case').toMatch(/^sipctl_[a-z0-9_]+$/);
    }
  });

  it.skipIf(!RUN_PROMTOOL)('passes promtool check metrics', () => {
    const r = promtoolCheck(exposition);
    expect(r.output).toBe('');
    expect(r.code).toBe(0);
  });

  it('serves /healthz and /readyz, and /readyz fails when the set has no active destination', async () => {
    expect((await fetchText(`${base}/healthz`)).status).toBe(200);
    const ready = await fetchText(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.text).toMatch(/^ready\n/);
    expect(ready.text).toContain('set 1: 1 of 1 destinations active');
    expect((await fetchText(`${base}/nothing`)).status).toBe(404);

    // Probes would bring it back: stop them first by stopping the PBX, then take it down.
    await uas.stop();
    const r = await proxy.cli(['dispatcher', 'set-state', 'inactive', '1', 'all']);
    expect(r.code).toBe(0);
    const down = await fetchText(`${base}/readyz`);
    expect(down.status).toBe(503);
    expect(down.text).toMatch(/^not ready\n/);
    expect(down.text).toContain('FAIL set 1: 0 of 1 destinations active');
    const after = parseExposition((await fetchText(`${base}/metrics`)).text);
    expect(value(after, `sipctl_dispatcher_destination_up{set="1",destination="sip:127.0.0.1:${uas.port}"}`)).toBe(0);
    expect(value(after, 'sipctl_dispatcher_set_active_destinations{set="1"}')).toBe(0);
  });
});
