/**
 * The Prometheus exposition (prom-client). Every sipctl metric is a `collect` callback that
 * reads a plain counter when /metrics is scraped: the per-message path only increments
 * numbers (src/proxy/counters.ts, the transport's and flood control's stats, a destination's
 * requestsSent) and never looks up a label or allocates for a metric.
 *
 * Conventions (https://prometheus.io/docs/practices/naming/): the `sipctl_` prefix, `_total`
 * on counters, seconds and bytes as units, labels of bounded cardinality only — method (15
 * values), class, code (at most 600), reason, protocol, set and destination (rows of the
 * dispatcher table), group (address-table groups) — never a Call-ID, a user or a source
 * address. Process metrics are prom-client's defaults, under their standard names
 * (process_*, nodejs_*), which dashboards already know.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { DROP_REASON_NAMES, METHOD_NAMES } from '../proxy/counters.js';
import type { Observability } from './observer.js';

type Labels = Record<string, string>;
type Emit = (labels: Labels | undefined, value: number) => void;

function counter(registry: Registry, name: string, help: string, labelNames: readonly string[], read: (emit: Emit) => void): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      read((labels, value) => (labels === undefined ? this.inc(value) : this.inc(labels, value)));
    },
  });
}

function gauge(registry: Registry, name: string, help: string, labelNames: readonly string[], read: (emit: Emit) => void): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      read((labels, value) => (labels === undefined ? this.set(value) : this.set(labels, value)));
    },
  });
}

export interface RegistryOptions {
  /** prom-client's process metrics (CPU, memory, heap, GC, event-loop lag). Default true. */
  processMetrics?: boolean;
}

/** A registry with every sipctl metric (and the process metrics) reading `obs`. */
export function createRegistry(obs: Observability, opts: RegistryOptions = {}): Registry {
  const registry = new Registry();
  if (opts.processMetrics !== false) {
    collectDefaultMetrics({ register: registry });
    // Gauges named like counters (promtool rejects a `_total` gauge); the same numbers are in
    // nodejs_active_handles / _requests / _resources, by type.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      registry.removeSingleMetric(name);
    }
  }
  const p = obs.proxy;
  const core = p.core;
  const c = core.counters;

  gauge(registry, 'sipctl_info', 'sipctl version and mode (forward or dispatcher); always 1', ['version', 'mode'], (emit) =>
    emit({ version: obs.version, mode: p.mode }, 1),
  );

  // ---- SIP messages
  counter(registry, 'sipctl_requests_received_total', 'SIP requests received (after flood control), by method', ['method'], (emit) => {
    for (let i = 0; i < METHOD_NAMES.length; i++) emit({ method: METHOD_NAMES[i]! }, c.requestsByMethod[i]!);
  });
  counter(registry, 'sipctl_calls_total', 'initial INVITEs (no To tag) received and valid: calls offered, retransmissions included', [], (emit) =>
    emit(undefined, c.initialInvites),
  );
  counter(registry, 'sipctl_requests_forwarded_total', 'requests forwarded to a next hop', [], (emit) => emit(undefined, core.stats.forwarded));
  counter(registry, 'sipctl_responses_received_total', 'SIP responses received (after flood control)', [], (emit) =>
    emit(undefined, core.stats.responsesIn),
  );
  counter(registry, 'sipctl_responses_relayed_total', 'responses relayed upstream, by class (1xx ... 6xx)', ['class'], (emit) => {
    for (let k = 1; k <= 6; k++) emit({ class: `${k}xx` }, c.responsesByClass[k]!);
  });
  counter(registry, 'sipctl_local_replies_total', 'replies the proxy generated itself (stateless), by status code', ['code'], (emit) => {
    const codes = c.repliesByCode;
    for (let code = 100; code < 700; code++) if (codes[code]! > 0) emit({ code: String(code) }, codes[code]!);
  });
  counter(registry, 'sipctl_requests_refused_total', 'requests refused because their source is not in the address table (nor a next hop)', [], (emit) =>
    emit(undefined, obs.requestsRefused()),
  );
  counter(
    registry,
    'sipctl_messages_dropped_total',
    'messages neither relayed nor answered, by reason (parse, not_admitted, no_via, foreign_via, ack, route, unroutable, flood)',
    ['reason'],
    (emit) => {
      for (let i = 0; i < DROP_REASON_NAMES.length; i++) emit({ reason: DROP_REASON_NAMES[i]! }, c.drops[i]!);
      emit({ reason: 'flood' }, p.floodStats()?.dropped ?? 0);
    },
  );
  counter(registry, 'sipctl_route_errors_total', 'exceptions in the routing script or the core (answered 500, logged)', [], (emit) =>
    emit(undefined, core.stats.routeErrors),
  );
  gauge(registry, 'sipctl_pairing_entries', 'INVITEs remembered for their CANCEL and non-2xx ACK (bounded by pairing.maxEntries)', [], (emit) =>
    emit(undefined, core.pairing.size),
  );

  // ---- transports
  counter(registry, 'sipctl_transport_messages_received_total', 'SIP messages received by the transports, by protocol', ['protocol'], (emit) => {
    const t = p.transportStats();
    emit({ protocol: 'udp' }, t.udpDatagramsIn - t.udpProbesDropped);
    emit({ protocol: 'tcp' }, t.tcpMessagesIn);
  });
  counter(registry, 'sipctl_transport_messages_sent_total', 'SIP messages sent, by protocol', ['protocol'], (emit) => {
    const t = p.transportStats();
    emit({ protocol: 'udp' }, t.udpDatagramsOut);
    emit({ protocol: 'tcp' }, t.tcpMessagesOut);
  });
  counter(registry, 'sipctl_transport_received_bytes_total', 'bytes received, by protocol', ['protocol'], (emit) => {
    const t = p.transportStats();
    emit({ protocol: 'udp' }, t.udpBytesIn);
    emit({ protocol: 'tcp' }, t.tcpBytesIn);
  });
  counter(registry, 'sipctl_transport_sent_bytes_total', 'bytes sent, by protocol', ['protocol'], (emit) => {
    const t = p.transportStats();
    emit({ protocol: 'udp' }, t.udpBytesOut);
    emit({ protocol: 'tcp' }, t.tcpBytesOut);
  });
  counter(registry, 'sipctl_transport_send_errors_total', 'messages that could not be sent (no listener, refused datagram, failed connect, full queue)', [], (emit) =>
    emit(undefined, p.transportStats().sendErrors),
  );
  counter(registry, 'sipctl_udp_keepalives_total', 'datagrams too short to be SIP (NAT keep-alives), dropped', [], (emit) =>
    emit(undefined, p.transportStats().udpProbesDropped),
  );
  gauge(registry, 'sipctl_tcp_connections', 'TCP connections open, by direction (in: accepted, out: opened by the proxy)', ['direction'], (emit) => {
    const t = p.transportStats();
    emit({ direction: 'in' }, t.tcpConnectionsInbound);
    emit({ direction: 'out' }, t.tcpConnectionsOutbound);
  });
  counter(registry, 'sipctl_tcp_connections_opened_total', 'TCP connections established, by direction', ['direction'], (emit) => {
    const t = p.transportStats();
    emit({ direction: 'in' }, t.tcpConnectionsAccepted);
    emit({ direction: 'out' }, t.tcpConnectionsOpened);
  });
  counter(
    registry,
    'sipctl_tcp_connections_refused_total',
    'TCP connections refused, by reason (not_admitted, per_source, limit)',
    ['reason'],
    (emit) => {
      const t = p.transportStats();
      emit({ reason: 'not_admitted' }, t.tcpConnectionsNotAdmitted);
      emit({ reason: 'per_source' }, t.tcpConnectionsPerSourceRefused);
      emit({ reason: 'limit' }, t.tcpConnectionsRefused);
    },
  );
  counter(
    registry,
    'sipctl_tcp_connections_closed_total',
    'TCP connections closed by the proxy, by reason (idle, message_timeout, queue_full, framing)',
    ['reason'],
    (emit) => {
      const t = p.transportStats();
      emit({ reason: 'idle' }, t.tcpConnectionsIdleClosed);
      emit({ reason: 'message_timeout' }, t.tcpMessageTimeouts);
      emit({ reason: 'queue_full' }, t.tcpQueueOverflows);
      emit({ reason: 'framing' }, t.tcpFramingErrors);
    },
  );
  counter(registry, 'sipctl_tcp_connect_failures_total', 'outbound TCP connections that failed', [], (emit) =>
    emit(undefined, p.transportStats().tcpConnectFailures),
  );

  // ---- flood control
  gauge(registry, 'sipctl_flood_blocked_sources', 'source addresses blocked by flood control now', [], (emit) =>
    emit(undefined, p.floodStats()?.blocked ?? 0),
  );
  gauge(registry, 'sipctl_flood_tracked_sources', 'source addresses flood control tracks now (bounded by flood.maxTracked)', [], (emit) =>
    emit(undefined, p.floodStats()?.tracked ?? 0),
  );
  counter(registry, 'sipctl_flood_blocks_total', 'blocks started by flood control', [], (emit) => emit(undefined, p.floodStats()?.blocks ?? 0));

  // ---- dispatcher
  const each = (emit: Emit, value: (d: ReturnType<Observability['destinations']>[number]) => number | undefined): void => {
    for (const d of obs.destinations()) {
      const v = value(d);
      if (v !== undefined) emit({ set: String(d.setid), destination: d.uri }, v);
    }
  };
  const dl = ['set', 'destination'];
  gauge(registry, 'sipctl_dispatcher_destination_up', 'destination state: 1 active (picked), 0 inactive, probing or disabled', dl, (emit) =>
    each(emit, (d) => (d.state === 'active' ? 1 : 0)),
  );
  counter(registry, 'sipctl_dispatcher_destination_requests_total', 'requests sent to the destination by the dispatcher', dl, (emit) =>
    each(emit, (d) => d.stats.requestsSent),
  );
  gauge(registry, 'sipctl_dispatcher_destination_probe_rtt_seconds', 'round-trip time of the last answered OPTIONS probe', dl, (emit) =>
    each(emit, (d) => (d.stats.lastProbe?.latencyMs === undefined ? undefined : d.stats.lastProbe.latencyMs / 1000)),
  );
  gauge(
    registry,
    'sipctl_dispatcher_destination_probe_rtt_avg_seconds',
    'moving average of the probe round-trip time (each answer moves it 1/8 of the way, as RFC 6298 smooths RTT)',
    dl,
    (emit) => each(emit, (d) => (d.stats.probeLatencyAvgMs === undefined ? undefined : d.stats.probeLatencyAvgMs / 1000)),
  );
  counter(registry, 'sipctl_dispatcher_destination_probe_failures_total', 'OPTIONS probes that timed out or got a code not in okCodes', dl, (emit) =>
    each(emit, (d) => d.stats.probeFailures),
  );
  counter(
    registry,
    'sipctl_dispatcher_destination_failovers_total',
    'requests moved from the destination to another one of its set (0 while the proxy is stateless)',
    dl,
    (emit) => each(emit, (d) => d.stats.failovers),
  );
  gauge(registry, 'sipctl_dispatcher_destination_active_calls', 'calls (dialogs) on the destination now; 0 unless dialog.enabled', dl, (emit) =>
    each(emit, (d) => d.stats.calls.active),
  );
  gauge(registry, 'sipctl_dispatcher_set_destinations', 'destinations in the set', ['set'], (emit) => {
    for (const s of obs.setSummaries()) emit({ set: String(s.setid) }, s.destinations);
  });
  gauge(registry, 'sipctl_dispatcher_set_active_destinations', 'active destinations in the set (0: its requests get the no-destination answer)', ['set'], (emit) => {
    for (const s of obs.setSummaries()) emit({ set: String(s.setid) }, s.active);
  });

  // ---- tables and their reloads
  gauge(registry, 'sipctl_address_table_entries', 'address-table entries loaded, by group', ['group'], (emit) => {
    for (const g of p.addressTable().groupCounts()) emit({ group: String(g.grp) }, g.count);
  });
  for (const which of ['address_table', 'dispatcher'] as const) {
    const key = which === 'address_table' ? 'address' : 'dispatcher';
    const what = which === 'address_table' ? 'address table' : 'dispatcher sets';
    gauge(registry, `sipctl_${which}_last_reload_timestamp_seconds`, `when the ${what} were last loaded successfully (Unix time)`, [], (emit) =>
      emit(undefined, (p.reloads[key]?.lastSuccessAt ?? 0) / 1000),
    );
    gauge(registry, `sipctl_${which}_last_reload_duration_seconds`, `how long the last successful load of the ${what} took`, [], (emit) =>
      emit(undefined, (p.reloads[key]?.ms ?? 0) / 1000),
    );
    counter(registry, `sipctl_${which}_reload_failures_total`, `reloads of the ${what} that failed (the previous one was kept)`, [], (emit) =>
      emit(undefined, p.reloads[key]?.failures ?? 0),
    );
  }

  // ---- SIP capture (only when it is on)
  if (p.capture !== undefined) {
    const capture = p.capture;
    counter(registry, 'sipctl_capture_messages_total', 'messages mirrored to the HEP collector, by result (sent, dropped)', ['result'], (emit) => {
      const s = capture.stats();
      emit({ result: 'sent' }, s.sent);
      emit({ result: 'dropped' }, s.dropped);
    });
  }

  // ---- dialogs and CDRs (dialog.enabled)
  if (obs.dialogSource !== undefined) {
    const dialogs = obs.dialogSource;
    gauge(registry, 'sipctl_dialogs', 'calls (dialogs) tracked now', [], (emit) => emit(undefined, dialogs().active));
    counter(registry, 'sipctl_dialogs_created_total', 'calls (dialogs) created by an initial INVITE', [], (emit) => emit(undefined, dialogs().created));
    counter(registry, 'sipctl_dialogs_ended_total', 'calls ended, by who or what ended them', ['by'], (emit) => {
      for (const [by, n] of Object.entries(dialogs().ended)) emit({ by }, n);
    });
    counter(registry, 'sipctl_dialog_keepalives_total', 'in-dialog keepalive OPTIONS sent (dialog.keepaliveS)', [], (emit) => emit(undefined, dialogs().keepalivesSent));
    counter(registry, 'sipctl_cdr_written_total', 'call records written to the cdr table', [], (emit) => emit(undefined, dialogs().cdrWritten));
    counter(registry, 'sipctl_cdr_dropped_total', 'call records dropped (queue full, cdr.maxQueue)', [], (emit) => emit(undefined, dialogs().cdrDropped));
  }

  // ---- transactions: registered by the transaction layer (Observability.setTransactionSource)
  let transactionsRegistered = false;
  obs.onTransactionSource(() => {
    if (transactionsRegistered) return;
    transactionsRegistered = true;
    gauge(registry, 'sipctl_transactions', 'SIP transactions in use (server and client)', [], (emit) => emit(undefined, obs.transactions()?.inUse ?? 0));
    counter(registry, 'sipctl_transactions_created_total', 'SIP transactions created', [], (emit) => emit(undefined, obs.transactions()?.created ?? 0));
    counter(registry, 'sipctl_transactions_timed_out_total', 'SIP transaction branches ended by a timer (fr_timer, Timer B or F)', [], (emit) =>
      emit(undefined, obs.transactions()?.timedOut ?? 0),
    );
  });

  return registry;
}
