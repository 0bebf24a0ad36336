/**
 * `sipctl serve`, assembled: the store is migrated, the address table and the dispatcher
 * sets are loaded into RAM, the transports bind, the control socket opens, probing starts.
 * Returns a handle whose close() stops everything in the reverse order.
 *
 * This is the only place that knows every part; the parts know only their interfaces.
 */
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { CdrWriter, DialogTracker, dialogControlHandlers } from '../dialog/index.js';
import { AddressTableHolder } from '../acl/load.js';
import { HepMirror } from '../capture/index.js';
import type { ProxyConfig } from '../config/schema.js';
import { startControlServer, type ControlServer } from '../control/index.js';
import {
  DispatcherHolder,
  Prober,
  isProbeBranch,
  parseAlgorithm,
  parseDestinationUri,
  SipResolver,
  SentRateSampler,
  dispatcherControlHandlers,
  systemClock,
  type Algorithm,
  type Destination,
} from '../dispatcher/index.js';
import { SipctlError, usageError } from '../errors.js';
import { FloodGuard, floodControlHandlers } from '../flood/index.js';
import { Logger } from '../log/logger.js';
import { Observability, ReloadLog } from '../metrics/observer.js';
import { ProxyCore } from '../proxy/core.js';
import { sameAddress } from '../proxy/identity.js';
import type { Dispatch } from '../proxy/services.js';
import { createDefaultRoute } from '../route/default.js';
import { loadRoute } from '../route/load.js';
import type { StateChange } from '../dispatcher/types.js';
import type { Route } from '../route/api.js';
import { openStore } from '../store/index.js';
// cluster/node.js, not the cluster index: the index re-exports the PostgreSQL link (and driver).
import { createNode, NODE_STORE_OPTIONS } from '../cluster/node.js';
import { createTransport, formatListenSpec, parseListenSpec } from '../transport/index.js';
import type { Inbound, Target, Transport } from '../transport/types.js';

export interface RunningProxy {
  readonly config: ProxyConfig;
  readonly core: ProxyCore;
  readonly transport: Transport;
  readonly logger: Logger;
  /** Flood control; undefined with `flood.enabled: false`. */
  readonly flood: FloodGuard | undefined;
  /** "udp:127.0.0.1:5060", ... as bound. */
  readonly listeners: string[];
  /** Status, readiness, metrics; later layers register their counters here (setTransactionSource). */
  readonly observability: Observability;
  close(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  /** A routing script to use instead of the default route. */
  route?: (deps: { config: ProxyConfig; logger: Logger }) => Route;
}

export async function startProxy(config: ProxyConfig, opts: StartOptions = {}): Promise<RunningProxy> {
  const logger = opts.logger ?? new Logger({ level: config.log.level });
  const listenSpecs = config.listen.map((l) => parseListenSpec(l));
  const wildcard = listenSpecs.find((l) => l.address === '0.0.0.0' || l.address === '::');
  if (wildcard !== undefined && config.advertise === undefined) {
    throw usageError(
      'E_CONFIG_NEEDS_ADVERTISE',
      `listening on ${formatListenSpec(wildcard)} needs --advertise ADDRESS[:PORT]: the address peers reach this proxy at, written into Via and Record-Route`,
    );
  }
  const rules = config.dispatcher.rules.map((r) => ({ ...r, parsed: parseAlgorithm(r.algorithm) }));

  // ---- the store: migrated on open so a fresh machine just works
  const store = await openStore(config.db, NODE_STORE_OPTIONS);
  const closers: Array<() => unknown> = [() => store.close()];
  // The tables' versions and reloads; on PostgreSQL, the link to the other nodes (src/cluster/).
  const node = createNode({ store, config, logger });
  closers.push(() => node.close());
  // When the tables were loaded and how long it took (status, /metrics, /readyz).
  const reloads = new ReloadLog();
  try {
    // ---- the address table
    const acl = new AddressTableHolder();
    // Read in this thread: nothing is routed yet, and a worker would only add its start-up.
    const aclReport = await reloads.track('address', () => acl.reload(config.db, { inThread: true }));
    logger.info('address table loaded', { entries: aclReport.total, groups: aclReport.groups.length, ms: aclReport.ms });
    node.tables.address.seed(aclReport.version);
    if (aclReport.total === 0) {
      logger.warn('the address table is empty: every request will get 401 until you add entries and reload (sipctl address add ...; sipctl address reload)');
    }

    // ---- the dispatcher
    const resolver = new SipResolver();
    // The route's events (Kamailio's event_route[dispatcher:dst-down|dst-up]); set once the core exists.
    let routeEvent: (c: StateChange) => void = () => undefined;
    const dispatcher = new DispatcherHolder({
      resolver,
      onStateChange: (c) => {
        logger.info('destination state changed', { set: c.setid, uri: c.uri, from: c.from, to: c.to, reason: c.reason });
        routeEvent(c);
      },
      log: (line) => logger.info(line),
    });
    closers.push(() => dispatcher.close());
    const dsVersion = await store.versions.get('dispatcher'); // read before the rows: see NodeTables
    const dsReport = await reloads.track('dispatcher', async () => dispatcher.reload(await store.dispatcher.list()));
    node.tables.dispatcher.seed(dsVersion);
    logger.info('dispatcher sets loaded', { destinations: dsReport.total, sets: dsReport.sets.length, ms: dsReport.ms });

    // ---- the --forward next hop: resolved now and when its DNS answer expires
    let forwardTarget: Target | undefined;
    let forwardTimer: NodeJS.Timeout | undefined;
    if (config.forward !== undefined) {
      const uri = parseDestinationUri(config.forward);
      const resolveForward = async (): Promise<number> => {
        const r = await resolver.resolve(uri.parsed, uri.explicitTransport);
        const first = r.targets[0];
        if (first === undefined) throw new SipctlError('E_FORWARD_RESOLVE', `--forward ${config.forward}: no address found`);
        forwardTarget = first;
        return r.ttlSeconds ?? config.dispatcher.dnsRefreshS;
      };
      try {
        const ttl = await resolveForward();
        if (isIP(uri.parsed.host) === 0 && Number.isFinite(ttl)) {
          const again = (seconds: number): void => {
            forwardTimer = setTimeout(() => {
              resolveForward().then(again, (err: unknown) => {
                logger.warn('re-resolving the --forward target failed; keeping the previous address', { error: String(err) });
                again(30);
              });
            }, Math.max(1, seconds) * 1000);
            forwardTimer.unref();
          };
          again(ttl);
        }
      } catch (err) {
        if (err instanceof SipctlError) throw err;
        throw usageError('E_FORWARD_RESOLVE', `--forward ${config.forward}: ${(err as Error).message}`);
      }
      closers.push(() => clearTimeout(forwardTimer));
    }

    // ---- the core and its route
    const algorithms = new Map<string | number, Algorithm>();
    for (const r of rules) algorithms.set(r.algorithm, r.parsed);
    let prober: Prober | undefined;
    const dispatch: Dispatch = {
      select(setid, algorithm, key) {
        let alg = algorithms.get(algorithm);
        if (alg === undefined) {
          alg = parseAlgorithm(algorithm);
          algorithms.set(algorithm, alg);
        }
        const d = dispatcher.current.select(setid, alg, key);
        return d === null ? null : { uri: d.uri, targets: d.targets, setid, handle: d };
      },
      // Transaction mode: failover (ds_next_dst) and marking (ds_mark_dst). Handles are
      // Destination objects; a reload keeps the objects of destinations still in their set.
      next(setid, tried) {
        const d = dispatcher.current.next(setid, tried as Destination[]);
        return d === null ? null : { uri: d.uri, targets: d.targets, setid, handle: d };
      },
      countFailover: (handle) => dispatcher.current.countFailover(handle as Destination),
      markTimeout: (handle) => {
        const d = handle as Destination;
        dispatcher.current.markTimeout(d, config.dispatcher.probeSets[String(d.setid)]?.failures ?? config.dispatcher.probe.failures);
      },
      markAnswered: (handle) => dispatcher.current.markAnswered(handle as Destination),
      describe: (handle) => (handle as Destination).uri,
      callCounter: (handle) => (handle as Destination).stats.calls,
      // Kamailio's ds_is_from_list: address and port (port 0: any, for TCP peers).
      isNextHop: (address, port) => dispatcher.isNextHop(address, port),
      handleProbeResponse: (branch, status) => isProbeBranch(branch) && prober !== undefined && prober.handleResponse(branch, status),
    };
    let route = opts.route?.({ config, logger });
    let routeInfo: { file: string; version: number } | undefined;
    if (route === undefined && config.route.file !== undefined) {
      const loaded = await loadRoute(config.route.file);
      route = loaded.route;
      routeInfo = { file: loaded.file, version: loaded.version };
      logger.info('route loaded', { file: loaded.file, ms: Math.round(loaded.ms) });
    }
    route ??= createDefaultRoute({ config, logger, forwardTarget: config.forward === undefined ? undefined : () => forwardTarget });
    const core = new ProxyCore({
      config,
      route,
      acl: { match: (address, port, groups) => acl.current.match(address, port, groups) },
      dispatch,
      logger,
    });
    core.setForwardTarget(() => forwardTarget);
    routeEvent = (c) => {
      const events = core.route.events;
      if (events === undefined) return;
      const up = c.to === 'active' && c.from !== 'active';
      const down = c.from === 'active' && c.to !== 'active';
      const hook = up ? events.destinationUp : down ? events.destinationDown : undefined;
      if (hook === undefined) return;
      try {
        hook.call(events, { setid: c.setid, uri: c.uri, from: c.from, to: c.to, reason: c.reason });
      } catch (err) {
        logger.error('a route event hook threw', { event: up ? 'destinationUp' : 'destinationDown', uri: c.uri, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      }
    };

    // ---- dialogs and CDRs (dialog.enabled; off: the core has no dialog hook at all)
    let dialogs: DialogTracker | undefined;
    let cdrWriter: CdrWriter | undefined;
    if (config.dialog.enabled) {
      if (config.cdr.enabled) {
        const firstPort = /:([0-9]+)$/.exec(config.listen[0] ?? '')?.[1] ?? '5060';
        cdrWriter = new CdrWriter({
          write: (fn) => store.write((t) => fn(t.cdr)),
          prune: (before) => store.cdr.prune(before),
          node: config.cluster.node ?? `${hostname()}:${firstPort}`,
          flushMs: config.cdr.flushMs,
          keepDays: config.cdr.keepDays,
          maxQueue: config.cdr.maxQueue,
          logger,
        });
        const writer = cdrWriter;
        // Closers run in reverse: this one runs before the store's, so queued rows are written.
        closers.push(() => writer.close());
      }
      const writer = cdrWriter;
      dialogs = new DialogTracker({
        config: config.dialog,
        clock: systemClock,
        onEnd: writer === undefined ? undefined : (r) => writer.add(r),
        counterOf: (pick) => (pick.handle === undefined ? undefined : dispatch.callCounter?.(pick.handle)),
        send: (target, bytes) => core.transport.send(target, bytes),
        via: (target) => {
          const l = core.transport.listenerFor(target) ?? core.transport.listeners[0]!;
          const pub = core.publicAddress(l);
          return `SIP/2.0/${l.protocol === 'tcp' ? 'TCP' : 'UDP'} ${pub.host}:${pub.port}`;
        },
        isOwnUri: (uri) => core.local.isLocalUri(uri),
        cancelInvite: (invite) => core.stateful.cancelInvite(invite),
      });
      core.dialogs = dialogs;
      const tracker = dialogs;
      // Closers run in reverse: this one runs before the CDR writer's close, so the rows of
      // the calls still up (ended_by 'shutdown') are in its last flush.
      closers.push(() => tracker.shutdown());
      logger.info('dialog tracking on', {
        max: config.dialog.max,
        timeoutS: config.dialog.timeoutS,
        keepaliveS: config.dialog.keepaliveS,
        cdr: config.cdr.enabled,
        flushMs: config.cdr.flushMs,
      });
    }

    // ---- SIP capture (HEP): off unless capture.hep is set; when off, nothing is in the path
    let capture: HepMirror | undefined;
    let deliver: (inbound: Inbound) => void = core.onInbound;
    if (config.capture.hep !== undefined) {
      const mirror = await HepMirror.open({ collector: config.capture.hep, captureId: config.capture.id });
      capture = mirror;
      closers.push(() => mirror.close());
      const onInbound = core.onInbound;
      // After flood control (below): a flood is not amplified onto the collector.
      deliver = (inbound) => {
        mirror.received(inbound);
        onInbound(inbound);
      };
      logger.info('SIP capture on', { collector: config.capture.hep, id: config.capture.id });
    }

    // ---- flood control: every framed message passes it before anything parses it
    let flood: FloodGuard | undefined;
    let onMessage: (inbound: Inbound) => void = deliver;
    if (config.flood.enabled) {
      const exemptGroups = config.flood.exemptGroups;
      const guard = new FloodGuard({
        limits: config.flood,
        // Asked only when a source goes over its budget (once per window), never per message.
        // Next hops by address, any port: a PBX answering at a high call rate must never be
        // blocked, nor its TCP connections from ephemeral ports.
        isExempt: (address, port) =>
          dispatcher.isNextHop(address, 0) ||
          (forwardTarget !== undefined && sameAddress(forwardTarget.address, address)) ||
          (exemptGroups.length > 0 && acl.current.match(address, port, exemptGroups) !== null),
        log: logger,
      });
      flood = guard;
      const onInbound = deliver;
      onMessage = (inbound) => {
        if (guard.allows(inbound.sourceAddress, inbound.sourcePort)) onInbound(inbound);
      };
      // Ends expired blocks (so the end is logged even when the source went quiet) and
      // forgets idle sources.
      const sweeper = setInterval(() => guard.sweep(), 1000);
      sweeper.unref();
      closers.push(() => clearInterval(sweeper));
    }
    const floodGuard = flood;

    // ---- the transports
    const transport = await createTransport({
      listen: listenSpecs,
      onMessage,
      onSent: capture?.sent,
      onError: (err, ctx) => {
        const peer = ctx.remoteAddress === undefined ? undefined : `${ctx.remoteAddress}:${ctx.remotePort}`;
        // A TCP next hop we cannot reach: the transactions waiting on it fail over now (§17.1.4).
        if (ctx.protocol === 'tcp' && (ctx.operation === 'connect' || ctx.operation === 'send') && ctx.remoteAddress !== undefined) {
          core.stateful.nextHopFailed(ctx.remoteAddress, ctx.remotePort ?? 0);
        }
        // Refusals at accept are what an operator looks for when a TCP peer cannot get in:
        // logged like a refused request (rate-limited, per kind), not hidden in debug.
        if (err.code === 'E_TRANSPORT_TCP_NOT_ADMITTED') {
          logger.limited('info', 'tcp.not-admitted', 'closed a TCP connection from an address not admitted (acl.tcpAccept)', { peer });
        } else if (err.code === 'E_TRANSPORT_TCP_SOURCE_LIMIT' || err.code === 'E_TRANSPORT_TCP_LIMIT') {
          logger.limited('warn', `tcp.${err.code === 'E_TRANSPORT_TCP_LIMIT' ? 'limit' : 'source-limit'}`, 'TCP connection refused', {
            peer,
            error: err.message,
          });
        } else {
          logger.limited('debug', `transport.${ctx.operation}`, 'transport error', {
            op: ctx.operation,
            proto: ctx.protocol,
            peer,
            error: err.message,
          });
        }
      },
      tcpIdleTimeoutMs: config.tcp.idleTimeoutS * 1000,
      tcpConnectTimeoutMs: config.tcp.connectTimeoutMs,
      tcpMessageTimeoutMs: config.tcp.messageTimeoutS * 1000,
      maxTcpConnections: config.tcp.maxConnections,
      maxTcpOutboundConnections: config.tcp.maxOutboundConnections,
      maxTcpConnectionsPerSource: config.tcp.maxConnectionsPerSource,
      // acl.tcpAccept: admitted — a TCP peer whose requests the source check would refuse
      // is closed at accept, before it costs a connection slot (the same check, with the
      // peer's address and port, that the route applies to each request).
      admitConnection:
        config.acl.tcpAccept === 'admitted' ? (address, port) => core.sourceAllowed(address, port, 'tcp') : undefined,
    });
    closers.push(() => transport.close());
    core.attach(transport);
    const listeners = transport.listeners.map((l) => formatListenSpec(l));

    // ---- health probing
    prober = new Prober(dispatcher, {
      io: {
        send: (target, bytes) => transport.send(target, bytes),
        localVia: (target) => {
          const l = transport.listenerFor(target);
          const listener = l ?? transport.listeners[0]!;
          const pub = core.publicAddress(listener);
          return { transport: listener.protocol === 'tcp' ? 'TCP' : 'UDP', host: pub.host.replace(/^\[|\]$/g, ''), port: pub.port };
        },
        now: systemClock.now,
        setTimeout: systemClock.setTimeout,
        clearTimeout: systemClock.clearTimeout,
      },
      config: config.dispatcher.probe,
      sets: Object.fromEntries(Object.entries(config.dispatcher.probeSets).map(([k, v]) => [Number(k), v])),
    });
    prober.start();
    const runningProber = prober;
    closers.push(() => runningProber.stop());

    // ---- what an operator sees: status, readiness, metrics (read at request time)
    const sentRate = new SentRateSampler(dispatcher);
    const observability = new Observability({
      mode: config.forward === undefined ? 'dispatcher' : 'forward',
      relay: config.mode,
      listeners,
      configuredListeners: config.listen.length,
      core,
      transportStats: () => transport.stats(),
      floodStats: () => floodGuard?.stats(),
      addressTable: () => acl.current,
      dispatcher,
      ruleSets: config.forward === undefined ? [...new Set(rules.map((r) => r.set))] : [],
      sentRate,
      isProbed: (setid) => runningProber.isProbed(setid),
      capture: capture === undefined ? undefined : { collector: config.capture.hep!, stats: () => capture!.stats() },
      reloads,
    });
    if (dialogs !== undefined) {
      const tracker = dialogs;
      const writer = cdrWriter;
      observability.dialogSource = () => ({
        active: tracker.size,
        trying: tracker.counts.trying,
        early: tracker.counts.early,
        confirmed: tracker.counts.confirmed,
        keepalivesSent: tracker.stats.keepalivesSent,
        created: tracker.stats.created,
        ended: tracker.stats.ended,
        cdrWritten: writer?.stats.written ?? 0,
        cdrDropped: writer?.stats.dropped ?? 0,
        cdrQueued: writer?.pending ?? 0,
      });
    }
    observability.start();
    closers.push(() => observability.stop());
    // Transactions (mode: transaction, or routes that relay statefully): counted from the layer.
    const txLayer = core.stateful.layer;
    observability.setTransactionSource(() => ({
      inUse: core.stateful.live,
      created: txLayer.stats.serverCreated + txLayer.stats.clientCreated,
      timedOut: txLayer.stats.timeouts + txLayer.stats.frTimeouts,
    }));

    // ---- the control socket
    const dsHandlers = dispatcherControlHandlers(dispatcher, () => store.dispatcher.list(), {
      isProbed: (setid) => runningProber.isProbed(setid),
      sentLastMinute: (d) => sentRate.sentLastMinute(d),
    });
    const control: ControlServer = await startControlServer(
      config.control,
      node.wrap({
        'address.reload': async () => {
          const report = await reloads.track('address', () => acl.reload(config.db));
          // A source in an exempt group now may be blocked: lift that at once.
          floodGuard?.recheckExemptions();
          return report;
        },
        'address.dump': () => {
          const t = acl.current;
          return { groups: t.groupCounts(), total: t.size, entries: t.entries() };
        },
        'address.test': (args) => {
          const ip = String(args.ip ?? '');
          const port = args.port === undefined ? 0 : Number(args.port);
          const group = args.group === undefined || args.group === null ? null : [Number(args.group)];
          return { match: acl.current.match(ip, port, group) };
        },
        ...dsHandlers,
        'dispatcher.reload': async (args) => {
          const summary = await reloads.track('dispatcher', () => dsHandlers['dispatcher.reload'](args));
          floodGuard?.recheckExemptions();
          return summary;
        },
        ...floodControlHandlers(floodGuard),
        ...dialogControlHandlers(dialogs),
        status: () => observability.status(),
        // `sipctl route reload`: the new module is loaded beside the old one and swapped in by
        // one assignment; a module that fails keeps the old one (the error goes back to the CLI).
        'route.reload': async () => {
          const file = routeInfo?.file ?? config.route.file;
          if (file === undefined) {
            throw new SipctlError('E_ROUTE_NONE', 'this proxy runs the default route; start it with --route FILE (or route: FILE in the config) to reload a route of your own');
          }
          let loaded;
          try {
            loaded = await loadRoute(file);
          } catch (err) {
            const e = err instanceof SipctlError ? err : new SipctlError('E_ROUTE_LOAD', String(err));
            logger.warn('route reload failed; the route loaded before stays', { file, error: e.message });
            throw new SipctlError(e.code, `${e.message}\n(the proxy keeps the route it had${routeInfo === undefined ? '' : `, version ${routeInfo.version}`})`);
          }
          core.route = loaded.route;
          routeInfo = { file: loaded.file, version: loaded.version };
          logger.info('route reloaded', { file: loaded.file, version: loaded.version, ms: Math.round(loaded.ms) });
          return { file: loaded.file, version: loaded.version, ms: loaded.ms };
        },
      }),
      { onHandlerError: (cmd, err) => logger.error('control command failed', { cmd, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }) },
    );
    closers.push(() => control.close());

    // ---- the cluster (PostgreSQL): LISTEN for table changes, register, heartbeat
    await node.start(listeners);
    closers.push(() => node.close());
    // ---- Prometheus /metrics, /healthz, /readyz (off unless metrics.listen is set)
    if (config.metrics.listen !== undefined) {
      // Loaded only when asked for: prom-client costs start-up time a proxy without metrics need not pay.
      const { createRegistry, startMetricsServer } = await import('../metrics/index.js');
      const server = await startMetricsServer(config.metrics.listen, observability, createRegistry(observability));
      observability.proxy.metricsListen = server.listen;
      closers.push(() => server.close());
      logger.info('metrics served', { listen: server.listen, paths: '/metrics /healthz /readyz' });
    }

    let closing: Promise<void> | undefined;
    return {
      config,
      core,
      transport,
      logger,
      flood: floodGuard,
      listeners,
      observability,
      close: () =>
        (closing ??= (async () => {
          for (const c of closers.reverse()) {
            try {
              await c();
            } catch {
              // keep closing the rest
            }
          }
          logger.flushSync();
        })()),
    };
  } catch (err) {
    for (const c of closers.reverse()) {
      try {
        await c();
      } catch {
        // keep closing the rest
      }
    }
    throw err;
  }
}
