/**
 * Every option of `sipctl serve`, its default, and its validation. The config file (YAML,
 * see README "Configuration") has exactly these keys; a flag overrides the file; an unknown
 * key or a bad value is one clear line naming the key, and exit 2.
 */
import { usageError } from '../errors.js';
import type { LogFormat, LogLevel } from '../log/logger.js';
import { DEFAULT_CONTROL_PATH, DEFAULT_DB_PATH } from './paths.js';
import type { ProbeConfig } from '../dispatcher/probe.js';
import { checkPostgresUrl, isPostgresUrl } from '../store/location.js';

/** Health-probe options (`dispatcher.probe`, `dispatcher.probeSets`): the prober's own type. */
export type { ProbeConfig } from '../dispatcher/probe.js';

export interface DispatchRule {
  /** Methods this rule applies to (upper case); absent = every method. */
  methods?: string[];
  set: number;
  algorithm: string;
}

export interface ProxyConfig {
  listen: string[];
  /** Other host names / addresses (optionally :port) that mean this proxy. */
  aliases: string[];
  /**
   * The address (and optionally port) peers reach this proxy at, written into Via,
   * Record-Route and Path instead of a listener's own address (Kamailio's `advertise`).
   * Needed when listening on 0.0.0.0 / [::] or behind NAT.
   */
  advertise: string | undefined;
  db: string;
  control: string;
  /** One next hop for every initial request (the simplest stateless proxy); overrides the dispatcher. */
  forward: string | undefined;
  /** Record-Route initial INVITE / SUBSCRIBE / REFER (RFC 3261 §16.6 step 4). */
  recordRoute: boolean;
  log: { level: LogLevel; format: LogFormat };
  acl: {
    /** Groups whose entries admit a request; 'any' = every group. */
    groups: number[] | 'any';
    rejectCode: number;
    rejectReason: string;
    /** Admit requests from our own next hops (the --forward target, dispatcher destinations). */
    admitNextHops: boolean;
    /**
     * The core refuses a request from a source that is not admitted before anything else
     * (before validation, the loop check and the route); false leaves the decision to the route.
     */
    checkRequests: boolean;
    /** Responses are taken only from admitted sources (groups or next hops); others are dropped. */
    checkResponses: boolean;
    /**
     * Which TCP peers may connect: 'admitted' (a connection whose source address and port
     * would not pass the source check — admitting groups, next hops — is closed at accept)
     * or 'any' (every peer; its requests are still checked one by one).
     */
    tcpAccept: 'admitted' | 'any';
  };
  /**
   * What an initial request's own Route header (one that does not name us) does, from a
   * source that is not one of our next hops: 'dispatch' removes it and the request goes to
   * the dispatcher or --forward target like any other (no open relay); 'follow' sends the
   * request along it (RFC 3261 §16.6 step 7), for trusted deployments.
   */
  initialRoutes: 'dispatch' | 'follow';
  dispatcher: {
    /** First rule whose methods match picks the set and algorithm. */
    rules: DispatchRule[];
    noDestinationCode: number;
    noDestinationReason: string;
    /**
     * Path (RFC 3327) on forwarded REGISTERs: false (none); true (RFC 3327 §5.1: when the UA
     * says `Supported: path`, add Path and `Require: path`, else answer 421); 'always' (add
     * Path whatever the UA supports, like Kamailio's add_path()).
     */
    path: boolean | 'always';
    probe: ProbeConfig;
    /** Per-set probe overrides, keyed by set id. */
    probeSets: Record<string, Partial<ProbeConfig>>;
    /** Re-resolve destination host names at least this often when DNS gave no TTL, s. */
    dnsRefreshS: number;
    /**
     * Failover in transaction mode (Kamailio's failure_route + ds_next_dst): an initial
     * request whose branch ends with one of these codes (or times out: 408) goes to the next
     * destination of its set, up to `attempts` destinations in all.
     */
    failover: FailoverConfig;
  };
  tcp: {
    idleTimeoutS: number;
    connectTimeoutMs: number;
    /** A message must arrive whole within this long of its first byte (and an accepted connection's first one, of the accept). */
    messageTimeoutS: number;
    /** Inbound (accepted) connections. */
    maxConnections: number;
    /** Outbound connections: a budget of their own that inbound connections cannot use up. */
    maxOutboundConnections: number;
    /** Inbound connections from one source address. */
    maxConnectionsPerSource: number;
  };
  /**
   * stateless: every request is forwarded as it comes (RFC 3261 §16.11), the default;
   * transaction: requests are relayed through RFC 3261 transactions (Kamailio's t_relay),
   * with retransmissions, timers, CANCEL and failover. A route can choose per request.
   */
  mode: 'stateless' | 'transaction';
  /** The transaction layer's timers and bounds (README "Transactions and failover"). */
  transaction: TransactionConfig;
  /** The CANCEL / non-2xx-ACK pairing map's bounds. */
  pairing: { maxEntries: number; ttlMs: number };
  /** Several nodes on one PostgreSQL database (README "Running several nodes"). */
  cluster: ClusterConfig;
  /** Flood control per source address (Kamailio's pike); see src/flood/guard.ts. */
  flood: FloodConfig;
  /** Prometheus /metrics, /healthz, /readyz on HOST:PORT (src/metrics/); off when undefined. */
  metrics: { listen: string | undefined };
  /** HEPv3 mirroring of every SIP message to a collector (src/capture/); off when hep is undefined. */
  capture: { hep: string | undefined; id: number };
  /** A routing script of the user's own (README "Writing routes"). */
  route: RouteConfig;
  /** Dialog tracking (src/dialog/, README "Dialogs and CDRs"); off by default. */
  dialog: DialogSettings;
  /** Call detail records, written while dialogs are tracked. */
  cdr: CdrSettings;
}

export interface DialogSettings {
  enabled: boolean;
  /** A confirmed dialog ends (BYE to both ends) this long after its last refresh (Kamailio's default_timeout). */
  timeoutS: number;
  /** Most calls tracked at once; a new INVITE beyond gets 503. */
  max: number;
  /** An early dialog that never completes ends after this long (Timer C, RFC 3261 §16.8). */
  timerCS: number;
  /** In-dialog OPTIONS to both ends of every confirmed call this often, seconds; 0: off (Kamailio's ka_timer). */
  keepaliveS: number;
  /** Keepalives in a row an end may leave unanswered before its call is ended (Kamailio's ka_failed_limit). */
  keepaliveFailures: number;
}

export interface CdrSettings {
  /** Write a `cdr` row per call while dialogs are tracked. */
  enabled: boolean;
  /** Rows are written in one transaction per this interval: what a crash can lose. */
  flushMs: number;
  /** Rows older than this are deleted in the background; 0 keeps them forever. */
  keepDays: number;
  /** Rows waiting for the next flush, at most; beyond, rows are dropped and counted. */
  maxQueue: number;
}

export interface FloodConfig {
  enabled: boolean;
  /** Messages a source may send within one window; one more blocks it. */
  maxRequests: number;
  windowS: number;
  /** How long a block lasts. */
  blockS: number;
  /** Address-table groups whose sources are never blocked (next hops never are either). */
  exemptGroups: number[];
  /** The most sources tracked at once. */
  maxTracked: number;
}

export function defaultConfig(): ProxyConfig {
  return {
    listen: ['udp:127.0.0.1:5060', 'tcp:127.0.0.1:5060'],
    aliases: [],
    advertise: undefined,
    db: DEFAULT_DB_PATH,
    control: DEFAULT_CONTROL_PATH,
    forward: undefined,
    recordRoute: true,
    log: { level: 'info', format: 'text' },
    acl: {
      groups: 'any',
      rejectCode: 401,
      rejectReason: 'Address not authorised',
      admitNextHops: true,
      checkRequests: true,
      checkResponses: true,
      tcpAccept: 'admitted',
    },
    initialRoutes: 'dispatch',
    dispatcher: {
      rules: [{ set: 1, algorithm: 'round-robin' }],
      noDestinationCode: 503,
      noDestinationReason: 'No destination available',
      path: false,
      probe: { interval: 0, failures: 3, successes: 1, okCodes: [200], t1Ms: 500, timeoutMs: 32_000 },
      probeSets: {},
      dnsRefreshS: 300,
      failover: { on: [{ from: 408, to: 408 }, { from: 500, to: 599 }], attempts: 3 },
    },
    tcp: {
      idleTimeoutS: 120,
      connectTimeoutMs: 5_000,
      messageTimeoutS: 10,
      maxConnections: 4096,
      maxOutboundConnections: 1024,
      maxConnectionsPerSource: 32,
    },
    mode: 'stateless',
    transaction: { t1Ms: 500, t2Ms: 4_000, t4Ms: 5_000, frTimerMs: 30_000, frInvTimerMs: 120_000, maxTransactions: 100_000, retryAfterS: 5 },
    pairing: { maxEntries: 200_000, ttlMs: 32_000 },
    // Why these numbers: README "Flood control".
    flood: { enabled: true, maxRequests: 100, windowS: 2, blockS: 120, exemptGroups: [], maxTracked: 100_000 },
    cluster: { node: undefined, heartbeatS: 5, reloadDelayMs: 50, retryMaxS: 10 },
    metrics: { listen: undefined },
    capture: { hep: undefined, id: 2001 },
    route: { file: undefined, slowMs: 50, asyncTimeoutMs: 5_000 },
    dialog: { enabled: false, timeoutS: 43_200, max: 100_000, timerCS: 180, keepaliveS: 0, keepaliveFailures: 2 },
    cdr: { enabled: true, flushMs: 1000, keepDays: 90, maxQueue: 100_000 },
  };
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function bad(key: string, message: string): never {
  throw usageError('E_CONFIG_BAD_VALUE', `config ${key}: ${message}`);
}

function checkKeys(obj: Obj, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) {
      throw usageError('E_CONFIG_UNKNOWN_KEY', `config ${where}${k}: unknown option (known: ${allowed.join(', ')})`);
    }
  }
}

function int(v: unknown, key: string, min: number, max: number): number {
  const n = typeof v === 'string' && /^-?[0-9]+$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    bad(key, `expected a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return n;
}

function num(v: unknown, key: string, min: number, max: number): number {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < min || n > max) {
    bad(key, `expected a number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return n;
}

function bool(v: unknown, key: string): boolean {
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'yes' || v === 'on') return true;
  if (v === 'false' || v === 'no' || v === 'off') return false;
  return bad(key, `expected true or false, got ${JSON.stringify(v)}`);
}

function str(v: unknown, key: string): string {
  if (typeof v !== 'string' || v.length === 0) bad(key, `expected a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

function strList(v: unknown, key: string): string[] {
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list)) bad(key, `expected a list of strings, got ${JSON.stringify(v)}`);
  return list.map((x, i) => str(x, `${key}[${i}]`));
}

const LEVELS = ['error', 'warn', 'info', 'debug'];

function probe(v: unknown, key: string, base: ProbeConfig, partial: boolean): Partial<ProbeConfig> {
  if (!isObj(v)) bad(key, 'expected a mapping');
  checkKeys(v, ['interval', 'failures', 'successes', 'okCodes', 't1Ms', 'timeoutMs'], `${key}.`);
  const out: Partial<ProbeConfig> = partial ? {} : { ...base };
  if (v.interval !== undefined) out.interval = num(v.interval, `${key}.interval`, 0, 86_400);
  if (v.failures !== undefined) out.failures = int(v.failures, `${key}.failures`, 1, 1000);
  if (v.successes !== undefined) out.successes = int(v.successes, `${key}.successes`, 1, 1000);
  if (v.okCodes !== undefined) {
    if (!Array.isArray(v.okCodes) || v.okCodes.length === 0) bad(`${key}.okCodes`, 'expected a list of response codes');
    out.okCodes = v.okCodes.map((c, i) => int(c, `${key}.okCodes[${i}]`, 100, 699));
  }
  if (v.t1Ms !== undefined) out.t1Ms = int(v.t1Ms, `${key}.t1Ms`, 10, 60_000);
  if (v.timeoutMs !== undefined) out.timeoutMs = int(v.timeoutMs, `${key}.timeoutMs`, 10, 600_000);
  else if (v.t1Ms !== undefined && !partial) out.timeoutMs = 64 * out.t1Ms!;
  return out;
}

/** Merges a parsed config file (or flag overrides) over `base`, validating every key. */
export function applyConfig(base: ProxyConfig, input: unknown, where = ''): ProxyConfig {
  if (input === undefined || input === null) return base;
  if (!isObj(input)) throw usageError('E_CONFIG_BAD_FILE', `config${where ? ' ' + where : ''}: expected a mapping of options at the top level`);
  checkKeys(
    input,
    ['listen', 'aliases', 'advertise', 'db', 'control', 'forward', 'recordRoute', 'initialRoutes', 'log', 'acl', 'dispatcher', 'tcp', 'mode', 'transaction', 'pairing', 'flood', 'cluster', 'metrics', 'capture', 'route', 'dialog', 'cdr'],
    '',
  );
  const c: ProxyConfig = structuredClone(base);
  if (input.listen !== undefined) {
    c.listen = strList(input.listen, 'listen');
    if (c.listen.length === 0) bad('listen', 'at least one listen address is needed');
  }
  if (input.aliases !== undefined) c.aliases = strList(input.aliases, 'aliases');
  if (input.advertise !== undefined) {
    c.advertise = input.advertise === null ? undefined : str(input.advertise, 'advertise');
    if (c.advertise !== undefined && !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$/.test(c.advertise)) {
      bad('advertise', `expected HOST or HOST:PORT (IPv6 in brackets), got ${JSON.stringify(c.advertise)}`);
    }
  }
  if (input.db !== undefined) {
    c.db = str(input.db, 'db');
    if (isPostgresUrl(c.db)) checkPostgresUrl(c.db, 'config db:');
  }
  if (input.control !== undefined) c.control = str(input.control, 'control');
  if (input.forward !== undefined) c.forward = input.forward === null ? undefined : str(input.forward, 'forward');
  if (input.recordRoute !== undefined) c.recordRoute = bool(input.recordRoute, 'recordRoute');
  if (input.initialRoutes !== undefined) {
    if (input.initialRoutes !== 'dispatch' && input.initialRoutes !== 'follow') {
      bad('initialRoutes', `expected dispatch or follow, got ${JSON.stringify(input.initialRoutes)}`);
    }
    c.initialRoutes = input.initialRoutes;
  }
  if (input.log !== undefined) {
    if (!isObj(input.log)) bad('log', 'expected a mapping');
    checkKeys(input.log, ['level', 'format'], 'log.');
    if (input.log.level !== undefined) {
      if (!LEVELS.includes(String(input.log.level))) bad('log.level', `expected one of ${LEVELS.join(', ')}`);
      c.log.level = input.log.level as LogLevel;
    }
    if (input.log.format !== undefined) {
      if (input.log.format !== 'text' && input.log.format !== 'json') bad('log.format', `expected text or json, got ${JSON.stringify(input.log.format)}`);
      c.log.format = input.log.format;
    }
  }
  if (input.acl !== undefined) {
    const a = input.acl;
    if (!isObj(a)) bad('acl', 'expected a mapping');
    checkKeys(a, ['groups', 'rejectCode', 'rejectReason', 'admitNextHops', 'checkRequests', 'checkResponses', 'tcpAccept'], 'acl.');
    if (a.groups !== undefined) {
      if (a.groups === 'any') c.acl.groups = 'any';
      else {
        const list = Array.isArray(a.groups) ? a.groups : typeof a.groups === 'string' ? a.groups.split(',') : [a.groups];
        if (list.length === 0) bad('acl.groups', "expected 'any' or a list of group numbers");
        c.acl.groups = list.map((g, i) => int(g, `acl.groups[${i}]`, 0, 2 ** 31 - 1));
      }
    }
    if (a.rejectCode !== undefined) c.acl.rejectCode = int(a.rejectCode, 'acl.rejectCode', 300, 699);
    if (a.rejectReason !== undefined) c.acl.rejectReason = str(a.rejectReason, 'acl.rejectReason');
    if (a.admitNextHops !== undefined) c.acl.admitNextHops = bool(a.admitNextHops, 'acl.admitNextHops');
    if (a.checkRequests !== undefined) c.acl.checkRequests = bool(a.checkRequests, 'acl.checkRequests');
    if (a.checkResponses !== undefined) c.acl.checkResponses = bool(a.checkResponses, 'acl.checkResponses');
    if (a.tcpAccept !== undefined) {
      if (a.tcpAccept !== 'admitted' && a.tcpAccept !== 'any') bad('acl.tcpAccept', `expected admitted or any, got ${JSON.stringify(a.tcpAccept)}`);
      c.acl.tcpAccept = a.tcpAccept;
    }
  }
  if (input.dispatcher !== undefined) {
    const d = input.dispatcher;
    if (!isObj(d)) bad('dispatcher', 'expected a mapping');
    checkKeys(d, ['rules', 'noDestinationCode', 'noDestinationReason', 'path', 'probe', 'probeSets', 'dnsRefreshS', 'failover'], 'dispatcher.');
    if (d.rules !== undefined) {
      if (!Array.isArray(d.rules) || d.rules.length === 0) bad('dispatcher.rules', 'expected a non-empty list of {methods, set, algorithm}');
      c.dispatcher.rules = d.rules.map((r, i) => {
        const key = `dispatcher.rules[${i}]`;
        if (!isObj(r)) bad(key, 'expected a mapping with set and algorithm');
        checkKeys(r, ['methods', 'set', 'algorithm'], `${key}.`);
        const rule: DispatchRule = {
          set: int(r.set ?? 1, `${key}.set`, 0, 2 ** 31 - 1),
          algorithm: r.algorithm === undefined ? 'round-robin' : String(r.algorithm),
        };
        if (r.methods !== undefined) rule.methods = strList(r.methods, `${key}.methods`).map((m) => m.toUpperCase());
        return rule;
      });
    }
    if (d.noDestinationCode !== undefined) c.dispatcher.noDestinationCode = int(d.noDestinationCode, 'dispatcher.noDestinationCode', 300, 699);
    if (d.noDestinationReason !== undefined) c.dispatcher.noDestinationReason = str(d.noDestinationReason, 'dispatcher.noDestinationReason');
    if (d.path !== undefined) c.dispatcher.path = d.path === 'always' ? 'always' : bool(d.path, 'dispatcher.path');
    if (d.probe !== undefined) c.dispatcher.probe = probe(d.probe, 'dispatcher.probe', c.dispatcher.probe, false) as ProbeConfig;
    if (d.probeSets !== undefined) {
      if (!isObj(d.probeSets)) bad('dispatcher.probeSets', 'expected a mapping of set id to probe options');
      for (const [set, p] of Object.entries(d.probeSets)) {
        int(set, `dispatcher.probeSets key`, 0, 2 ** 31 - 1);
        c.dispatcher.probeSets[set] = probe(p, `dispatcher.probeSets.${set}`, c.dispatcher.probe, true);
      }
    }
    if (d.dnsRefreshS !== undefined) c.dispatcher.dnsRefreshS = int(d.dnsRefreshS, 'dispatcher.dnsRefreshS', 1, 86_400);
    if (d.failover !== undefined) c.dispatcher.failover = failoverConfig(d.failover, c.dispatcher.failover);
  }
  if (input.tcp !== undefined) {
    const t = input.tcp;
    if (!isObj(t)) bad('tcp', 'expected a mapping');
    checkKeys(
      t,
      ['idleTimeoutS', 'connectTimeoutMs', 'messageTimeoutS', 'maxConnections', 'maxOutboundConnections', 'maxConnectionsPerSource'],
      'tcp.',
    );
    if (t.idleTimeoutS !== undefined) c.tcp.idleTimeoutS = int(t.idleTimeoutS, 'tcp.idleTimeoutS', 1, 86_400);
    if (t.connectTimeoutMs !== undefined) c.tcp.connectTimeoutMs = int(t.connectTimeoutMs, 'tcp.connectTimeoutMs', 10, 600_000);
    if (t.messageTimeoutS !== undefined) c.tcp.messageTimeoutS = int(t.messageTimeoutS, 'tcp.messageTimeoutS', 1, 3_600);
    if (t.maxConnections !== undefined) c.tcp.maxConnections = int(t.maxConnections, 'tcp.maxConnections', 1, 1_000_000);
    if (t.maxOutboundConnections !== undefined) {
      c.tcp.maxOutboundConnections = int(t.maxOutboundConnections, 'tcp.maxOutboundConnections', 1, 1_000_000);
    }
    if (t.maxConnectionsPerSource !== undefined) {
      c.tcp.maxConnectionsPerSource = int(t.maxConnectionsPerSource, 'tcp.maxConnectionsPerSource', 1, 1_000_000);
    }
  }
  if (input.mode !== undefined) {
    if (input.mode !== 'stateless' && input.mode !== 'transaction') bad('mode', `expected stateless or transaction, got ${JSON.stringify(input.mode)}`);
    c.mode = input.mode;
  }
  if (input.transaction !== undefined) c.transaction = transactionConfig(input.transaction, c.transaction);
  if (input.pairing !== undefined) {
    const p = input.pairing;
    if (!isObj(p)) bad('pairing', 'expected a mapping');
    checkKeys(p, ['maxEntries', 'ttlMs'], 'pairing.');
    if (p.maxEntries !== undefined) c.pairing.maxEntries = int(p.maxEntries, 'pairing.maxEntries', 1, 100_000_000);
    if (p.ttlMs !== undefined) c.pairing.ttlMs = int(p.ttlMs, 'pairing.ttlMs', 100, 3_600_000);
  }
  if (input.flood !== undefined) {
    const f = input.flood;
    if (!isObj(f)) bad('flood', 'expected a mapping');
    checkKeys(f, ['enabled', 'maxRequests', 'windowS', 'blockS', 'exemptGroups', 'maxTracked'], 'flood.');
    if (f.enabled !== undefined) c.flood.enabled = bool(f.enabled, 'flood.enabled');
    if (f.maxRequests !== undefined) c.flood.maxRequests = int(f.maxRequests, 'flood.maxRequests', 1, 100_000_000);
    if (f.windowS !== undefined) c.flood.windowS = num(f.windowS, 'flood.windowS', 0.1, 3600);
    if (f.blockS !== undefined) c.flood.blockS = num(f.blockS, 'flood.blockS', 1, 86_400);
    if (f.maxTracked !== undefined) c.flood.maxTracked = int(f.maxTracked, 'flood.maxTracked', 1, 10_000_000);
    if (f.exemptGroups !== undefined) {
      const g = f.exemptGroups;
      const list = Array.isArray(g) ? g : typeof g === 'string' ? g.split(',').filter((x) => x.trim() !== '') : [g];
      // Address-table groups are unsigned 32-bit numbers (Kamailio's grp column).
      c.flood.exemptGroups = list.map((x, i) => int(x, `flood.exemptGroups[${i}]`, 0, 0xffff_ffff));
    }
  }
  if (input.cluster !== undefined) c.cluster = clusterConfig(input.cluster, c.cluster);
  if (input.route !== undefined) c.route = routeConfig(input.route, c.route);
  applyObservability(c, input);
  if (input.dialog !== undefined) {
    const d = input.dialog;
    if (!isObj(d)) bad('dialog', 'expected a mapping, e.g. { enabled: true }');
    checkKeys(d, ['enabled', 'timeoutS', 'max', 'timerCS', 'keepaliveS', 'keepaliveFailures'], 'dialog.');
    if (d.enabled !== undefined) c.dialog.enabled = bool(d.enabled, 'dialog.enabled');
    if (d.timeoutS !== undefined) c.dialog.timeoutS = int(d.timeoutS, 'dialog.timeoutS', 1, 604_800);
    if (d.max !== undefined) c.dialog.max = int(d.max, 'dialog.max', 1, 10_000_000);
    if (d.timerCS !== undefined) c.dialog.timerCS = int(d.timerCS, 'dialog.timerCS', 1, 3_600);
    if (d.keepaliveS !== undefined) c.dialog.keepaliveS = int(d.keepaliveS, 'dialog.keepaliveS', 0, 86_400);
    if (d.keepaliveFailures !== undefined) c.dialog.keepaliveFailures = int(d.keepaliveFailures, 'dialog.keepaliveFailures', 1, 100);
  }
  if (input.cdr !== undefined) {
    const k = input.cdr;
    if (!isObj(k)) bad('cdr', 'expected a mapping, e.g. { flushMs: 1000, keepDays: 90 }');
    checkKeys(k, ['enabled', 'flushMs', 'keepDays', 'maxQueue'], 'cdr.');
    if (k.enabled !== undefined) c.cdr.enabled = bool(k.enabled, 'cdr.enabled');
    if (k.flushMs !== undefined) c.cdr.flushMs = int(k.flushMs, 'cdr.flushMs', 10, 60_000);
    if (k.keepDays !== undefined) c.cdr.keepDays = int(k.keepDays, 'cdr.keepDays', 0, 36_500);
    if (k.maxQueue !== undefined) c.cdr.maxQueue = int(k.maxQueue, 'cdr.maxQueue', 1, 10_000_000);
  }
  return c;
}

// ---- user routes (src/route/load.ts) -------------------------------------------------------

export interface RouteConfig {
  /** A routing script (.ts, .mts, .js, .mjs) to use instead of the default route; undefined: the default route. */
  file: string | undefined;
  /** A request route that holds the event loop longer than this is logged with its duration, ms. */
  slowMs: number;
  /** An async request route (transaction mode) that has not decided by then: 500, or its asyncTimeout hook, ms. */
  asyncTimeoutMs: number;
}

/** `route: FILE`, or `route: { file, slowMs, asyncTimeoutMs }`. */
function routeConfig(v: unknown, base: RouteConfig): RouteConfig {
  if (v === null) return { ...base, file: undefined };
  if (typeof v === 'string') return { ...base, file: str(v, 'route') };
  if (!isObj(v)) bad('route', 'expected a file name, or a mapping with file, slowMs, asyncTimeoutMs');
  checkKeys(v, ['file', 'slowMs', 'asyncTimeoutMs'], 'route.');
  const c = { ...base };
  if (v.file !== undefined) c.file = v.file === null ? undefined : str(v.file, 'route.file');
  if (c.file !== undefined && !/\.(ts|mts|js|mjs)$/.test(c.file)) bad('route.file', `expected a .ts, .mts, .js or .mjs file, got ${JSON.stringify(c.file)}`);
  if (v.slowMs !== undefined) c.slowMs = num(v.slowMs, 'route.slowMs', 0.1, 60_000);
  if (v.asyncTimeoutMs !== undefined) c.asyncTimeoutMs = int(v.asyncTimeoutMs, 'route.asyncTimeoutMs', 10, 600_000);
  return c;
}

// ---- cluster (src/cluster/) ----------------------------------------------------------------

export interface ClusterConfig {
  /** This node's name in the `node` table; default `<host name>:<first SIP port>`. */
  node: string | undefined;
  /** Seconds between heartbeats; a node three heartbeats late is shown stale. */
  heartbeatS: number;
  /** Change notices within this many ms make one reload. */
  reloadDelayMs: number;
  /** Longest wait between attempts to reach the database again, s. */
  retryMaxS: number;
}

function clusterConfig(v: unknown, base: ClusterConfig): ClusterConfig {
  if (!isObj(v)) bad('cluster', 'expected a mapping');
  checkKeys(v, ['node', 'heartbeatS', 'reloadDelayMs', 'retryMaxS'], 'cluster.');
  const c = { ...base };
  if (v.node !== undefined) {
    c.node = v.node === null ? undefined : str(v.node, 'cluster.node');
    // Shown in tables and sent as part of an application_name: printable, no commas.
    if (c.node !== undefined && !/^[A-Za-z0-9._:@/-]{1,48}$/.test(c.node)) {
      bad('cluster.node', `expected up to 48 letters, digits or . _ : @ / -, got ${JSON.stringify(c.node)}`);
    }
  }
  if (v.heartbeatS !== undefined) c.heartbeatS = int(v.heartbeatS, 'cluster.heartbeatS', 1, 3_600);
  if (v.reloadDelayMs !== undefined) c.reloadDelayMs = int(v.reloadDelayMs, 'cluster.reloadDelayMs', 0, 10_000);
  if (v.retryMaxS !== undefined) c.retryMaxS = int(v.retryMaxS, 'cluster.retryMaxS', 1, 3_600);
  return c;
}

/** `metrics` and `capture` (the observability options; HOST:PORT forms are checked in full where they are used). */
function applyObservability(c: ProxyConfig, input: Obj): void {
  if (input.metrics !== undefined) {
    const m = input.metrics;
    if (!isObj(m)) bad('metrics', 'expected a mapping, e.g. { listen: 127.0.0.1:9090 }');
    checkKeys(m, ['listen'], 'metrics.');
    if (m.listen !== undefined) {
      c.metrics.listen = m.listen === null || m.listen === false || m.listen === 'off' ? undefined : str(m.listen, 'metrics.listen');
      if (c.metrics.listen !== undefined && !/^(\[[0-9a-fA-F:.]+\]|[0-9.]+|localhost):[0-9]{1,5}$/.test(c.metrics.listen)) {
        bad('metrics.listen', `expected IP:PORT, e.g. 127.0.0.1:9090 or [::1]:9090, got ${JSON.stringify(c.metrics.listen)}`);
      }
    }
  }
  if (input.capture !== undefined) {
    const k = input.capture;
    if (!isObj(k)) bad('capture', 'expected a mapping, e.g. { hep: udp:127.0.0.1:9060, id: 2001 }');
    checkKeys(k, ['hep', 'id'], 'capture.');
    if (k.hep !== undefined) {
      c.capture.hep = k.hep === null || k.hep === false || k.hep === 'off' ? undefined : str(k.hep, 'capture.hep');
      if (c.capture.hep !== undefined && !/^(udp|tcp):(\[[0-9a-fA-F:.]+\]|[0-9.]+):[0-9]{1,5}$/.test(c.capture.hep)) {
        bad('capture.hep', `expected udp:IP:PORT or tcp:IP:PORT of a HEP collector, e.g. udp:127.0.0.1:9060, got ${JSON.stringify(c.capture.hep)}`);
      }
    }
    if (k.id !== undefined) c.capture.id = int(k.id, 'capture.id', 0, 0xffff_ffff);
  }
}

// ---- transactions (src/transaction/) and failover -------------------------------------------

export interface TransactionConfig {
  /** RFC 3261 T1, T2, T4 (Table 4), ms. */
  t1Ms: number;
  t2Ms: number;
  t4Ms: number;
  /** Kamailio's fr_timer: no final response on a branch by then is a local 408 (§16.8), ms. */
  frTimerMs: number;
  /** Kamailio's fr_inv_timer: an INVITE branch that has rung (1xx) gets this long for its final, ms. */
  frInvTimerMs: number;
  /** Live transactions at most; beyond it a new request gets 503 with Retry-After. */
  maxTransactions: number;
  /** The Retry-After of that 503, s. */
  retryAfterS: number;
}

export interface StatusRange {
  from: number;
  to: number;
}

export interface FailoverConfig {
  /** Final statuses (408 also stands for a branch that timed out) that move the request on. */
  on: StatusRange[];
  /** Destinations tried in all, the first included (1: no failover). */
  attempts: number;
}

function transactionConfig(v: unknown, base: TransactionConfig): TransactionConfig {
  if (!isObj(v)) bad('transaction', 'expected a mapping');
  checkKeys(v, ['t1Ms', 't2Ms', 't4Ms', 'frTimerMs', 'frInvTimerMs', 'maxTransactions', 'retryAfterS'], 'transaction.');
  const c = { ...base };
  if (v.t1Ms !== undefined) c.t1Ms = int(v.t1Ms, 'transaction.t1Ms', 10, 60_000);
  if (v.t2Ms !== undefined) c.t2Ms = int(v.t2Ms, 'transaction.t2Ms', 10, 600_000);
  if (v.t4Ms !== undefined) c.t4Ms = int(v.t4Ms, 'transaction.t4Ms', 10, 600_000);
  if (c.t2Ms < c.t1Ms) bad('transaction.t2Ms', `must not be below t1Ms (${c.t1Ms}), got ${c.t2Ms}`);
  if (v.frTimerMs !== undefined) c.frTimerMs = int(v.frTimerMs, 'transaction.frTimerMs', 100, 3_600_000);
  if (v.frInvTimerMs !== undefined) c.frInvTimerMs = int(v.frInvTimerMs, 'transaction.frInvTimerMs', 100, 3_600_000);
  if (v.maxTransactions !== undefined) c.maxTransactions = int(v.maxTransactions, 'transaction.maxTransactions', 1, 10_000_000);
  if (v.retryAfterS !== undefined) c.retryAfterS = int(v.retryAfterS, 'transaction.retryAfterS', 0, 86_400);
  return c;
}

function failoverConfig(v: unknown, base: FailoverConfig): FailoverConfig {
  if (!isObj(v)) bad('dispatcher.failover', 'expected a mapping with on and attempts');
  checkKeys(v, ['on', 'attempts'], 'dispatcher.failover.');
  const c = { ...base };
  if (v.on !== undefined) {
    const list = Array.isArray(v.on) ? v.on : [v.on];
    c.on = list.map((x, i) => statusRange(x, `dispatcher.failover.on[${i}]`));
  }
  if (v.attempts !== undefined) c.attempts = int(v.attempts, 'dispatcher.failover.attempts', 1, 12);
  return c;
}

/** 408, "500-599" or "5xx": a final status or a range of them (300–699). */
function statusRange(v: unknown, key: string): StatusRange {
  const text = String(v).trim();
  let m = /^([3-6])xx$/i.exec(text);
  if (m) return { from: Number(m[1]) * 100, to: Number(m[1]) * 100 + 99 };
  m = /^([0-9]{3})(?:\s*-\s*([0-9]{3}))?$/.exec(text);
  if (m) {
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (from >= 300 && to <= 699 && from <= to) return { from, to };
  }
  return bad(key, `expected a final status (300-699), a range like 500-599 or a class like 5xx, got ${JSON.stringify(v)}`);
}
