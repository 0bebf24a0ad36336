/**
 * A node's link to the shared PostgreSQL database: the LISTEN connection that hears about
 * every committed change to `address` and `dispatcher` (and about cluster commands), the
 * node's row in the registry with its heartbeat, and what happens when the database goes away.
 *
 *  - A notice `table T V` (sent by the tables' triggers at commit, whoever wrote: sipctl or
 *    plain SQL) asks T's reloader for version V; notices close together make one reload
 *    (node-tables.ts).
 *  - A notice `command ID` runs cluster command ID through this node's control socket and
 *    answers in the database (commands.ts).
 *  - Every `heartbeatS` the node refreshes its heartbeat and compares the versions it holds
 *    with the database's; a table found behind (a notice lost, a reload that failed) is reloaded.
 *  - The database unreachable (the LISTEN connection drops, or a heartbeat fails): the node
 *    logs it once, keeps forwarding with the tables it holds — the proxy never reads the
 *    database per message — and tries again after 0.5 s, 1 s, 2 s, ... up to `retryMaxS`. Back,
 *    it logs once more, registers again and reloads every table, since notices sent
 *    meanwhile were lost. `status` on the control socket says the store is down and since when.
 */
import { hostname } from 'node:os';
import pg from 'pg';
import { controlRequest } from '../control/index.js';
import { SipctlError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import {
  isConnectionError,
  isLoadedTable,
  LOADED_TABLES,
  messageOf,
  NOTIFY_CHANNEL,
  type PostgresStore,
} from '../store/index.js';
import { pgClientConfig } from '../store/postgres.js';
import { answerCommand, CLUSTER_COMMANDS, readCommand } from './commands.js';
import type { NodeTables, ReloadResult } from './node-tables.js';
import { beat, markStopped, recordLoaded, registerNode, tableVersions, type NodeRegistration } from './registry.js';

export interface ClusterLinkOptions {
  store: PostgresStore;
  tables: NodeTables;
  node: NodeRegistration;
  /** This node's control socket: cluster commands run through it, like a local sipctl's. */
  controlPath: string;
  /** Longest wait between reconnection attempts, s. */
  retryMaxS: number;
  logger: Logger;
}

const FIRST_RETRY_MS = 500;
/** How long a graceful stop waits to mark the node stopped in a database that may be gone. */
const STOP_WRITE_MS = 1000;

/** `table address 7`, `command 12`: anything else on the channel is ignored. */
function parseNotice(payload: string | undefined): { kind: 'table'; table: string; version: number } | { kind: 'command'; id: number } | null {
  const m = /^(table) ([a-z_]+) ([0-9]{1,15})$|^(command) ([0-9]{1,15})$/.exec(payload ?? '');
  if (m === null) return null;
  if (m[1] === 'table') return { kind: 'table', table: m[2]!, version: Number(m[3]) };
  return { kind: 'command', id: Number(m[5]) };
}

export class ClusterLink {
  private client: pg.Client | null = null;
  private up = false;
  private closed = false;
  private registered = false;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private beatTimer: NodeJS.Timeout | null = null;
  private downSince = 0;
  private connecting: Promise<void> | null = null;

  constructor(private readonly opts: ClusterLinkOptions) {
    opts.tables.store.node = opts.node.name;
    // An idle pooled connection the server drops is reported here; the LISTEN connection and
    // the heartbeat are what decide that the database is gone.
    opts.store.onPoolError((err) => opts.logger.debug('store: a pooled connection failed', { error: messageOf(err) }));
  }

  /** Connect, LISTEN, register. When the database is unreachable now, keep trying in the background. */
  async start(): Promise<void> {
    await this.connect();
    if (!this.up) this.scheduleRetry();
    this.beatTimer = setInterval(() => void this.heartbeat(), this.opts.node.heartbeatS * 1000);
    this.beatTimer.unref();
  }

  /** A reload finished: tell the registry which version this node holds now. */
  loaded(table: string, result: ReloadResult): void {
    if (!this.up || typeof result.version !== 'number') return;
    recordLoaded(this.opts.store.sql, this.opts.node.name, table, result.version).catch((err: unknown) => this.failed(err, 'recording a loaded version'));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    if (this.beatTimer !== null) clearInterval(this.beatTimer);
    await this.connecting?.catch(() => undefined);
    this.dropClient();
    if (this.up) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        markStopped(this.opts.store.sql, this.opts.node.name).catch(() => undefined),
        new Promise((resolve) => {
          timer = setTimeout(resolve, STOP_WRITE_MS);
        }),
      ]);
      clearTimeout(timer);
    }
  }

  // ---- connection ------------------------------------------------------------------------

  private connect(): Promise<void> {
    this.connecting ??= this.tryConnect().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  private async tryConnect(): Promise<void> {
    const { store, node, logger, tables } = this.opts;
    const client = new pg.Client(pgClientConfig(store.url, { applicationName: `sipctl listen ${node.name}`.slice(0, 63) }));
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, new Error('the LISTEN connection closed')));
    client.on('notification', (msg) => {
      if (msg.channel === NOTIFY_CHANNEL) this.notice(msg.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
      if (this.closed) {
        await client.end().catch(() => undefined);
        return;
      }
      this.client = client;
      const clash = await registerNode(store.sql, node, !this.registered);
      if (clash !== null) {
        logger.warn('another live node has this node name; give each node its own (cluster.node)', {
          node: node.name,
          other: `${clash.host} pid ${clash.pid}`,
        });
      }
      const wasDown = this.registered;
      this.registered = true;
      this.up = true;
      this.attempt = 0;
      tables.store.state = 'up';
      tables.store.downSince = null;
      tables.store.lastError = null;
      if (wasDown) {
        logger.info('store reachable again; reloading every table (changes made meanwhile were not announced)', {
          store: store.location,
          downS: Math.round((Date.now() - this.downSince) / 100) / 10,
        });
        for (const t of LOADED_TABLES) tables.reloader(t).changed(null, 'store reachable again');
      } else {
        logger.info('cluster: listening for table changes', { node: node.name, store: store.location });
      }
      await this.reportLoaded();
      // Changes committed between the start's initial load and the LISTEN: caught here.
      await this.reconcile('caught up at start');
    } catch (err) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
      if (this.client === client) this.client = null;
      this.markDown(err);
    }
  }

  private dropClient(): void {
    const client = this.client;
    this.client = null;
    if (client === null) return;
    client.removeAllListeners('end');
    client.removeAllListeners('notification');
    client.end().catch(() => undefined);
  }

  /** The LISTEN connection failed or closed. */
  private lost(client: pg.Client, err: unknown): void {
    if (client !== this.client || this.closed) return;
    this.dropClient();
    this.markDown(err);
    this.scheduleRetry();
  }

  /** Something failed talking to the database: if it was the connection, the store is down. */
  private failed(err: unknown, doing: string): void {
    if (this.closed) return;
    if (isConnectionError(err)) {
      this.dropClient();
      this.markDown(err);
      this.scheduleRetry();
    } else {
      this.opts.logger.warn(`cluster: ${doing} failed`, { error: messageOf(err) });
    }
  }

  private markDown(err: unknown): void {
    const { tables, logger, store } = this.opts;
    const message = messageOf(err);
    tables.store.lastError = message;
    if (!this.up && this.downSince !== 0) return; // already down: said once
    this.up = false;
    this.downSince = Date.now();
    tables.store.state = 'down';
    tables.store.downSince = new Date(this.downSince).toISOString();
    // Logged once per outage; the retries that fail say nothing (debug only).
    logger.warn('store unreachable; forwarding goes on with the tables held, retrying', { store: store.location, error: message });
  }

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer !== null || this.up) return;
    const delay = Math.min(this.opts.retryMaxS * 1000, FIRST_RETRY_MS * 2 ** this.attempt);
    this.attempt++;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.connect().then(() => {
        if (!this.up) {
          this.opts.logger.debug('store still unreachable', { error: this.opts.tables.store.lastError ?? '' });
          this.scheduleRetry();
        }
      });
    }, delay);
    this.retryTimer.unref();
  }

  // ---- what the database says ------------------------------------------------------------

  private notice(payload: string | undefined): void {
    const n = parseNotice(payload);
    if (n === null) return;
    if (n.kind === 'table') {
      if (isLoadedTable(n.table)) this.opts.tables.reloader(n.table).changed(n.version, `changed to version ${n.version}`);
      return;
    }
    void this.runCommand(n.id);
  }

  private async runCommand(id: number): Promise<void> {
    const { store, node, controlPath, logger } = this.opts;
    let outcome: { ok: boolean; result: unknown };
    let command: string | undefined;
    try {
      const c = await readCommand(store.sql, id);
      if (c === null) return; // deleted meanwhile
      command = c.command;
      if (!CLUSTER_COMMANDS.includes(c.command)) {
        outcome = { ok: false, result: { code: 'E_CLUSTER_COMMAND', message: `${c.command} is not a command nodes run for the cluster` } };
      } else {
        try {
          outcome = { ok: true, result: await controlRequest(controlPath, c.command, c.args, { timeoutMs: 10_000 }) };
        } catch (err) {
          outcome = {
            ok: false,
            result: err instanceof SipctlError ? { code: err.code, message: err.message } : { code: 'E_CLUSTER_COMMAND', message: messageOf(err) },
          };
        }
      }
      logger.info('cluster command', { id, command, ok: outcome.ok });
      await answerCommand(store.sql, id, node.name, outcome.ok, outcome.result);
    } catch (err) {
      this.failed(err, `cluster command ${id}${command === undefined ? '' : ` (${command})`}`);
    }
  }

  // ---- heartbeat and reconciliation --------------------------------------------------------

  private async heartbeat(): Promise<void> {
    if (!this.up || this.closed) return;
    const { store, node } = this.opts;
    try {
      if (!(await beat(store.sql, node.name))) {
        await registerNode(store.sql, node, false); // forgotten by hand while alive: back in
        await this.reportLoaded();
      }
      await this.reconcile('found behind');
    } catch (err) {
      this.failed(err, 'heartbeat');
    }
  }

  /**
   * Reload a table whose version in the database differs from the one held and that is not
   * being reloaded already. A table whose last reload failed (a bad row) is retried no more
   * often than every `retryMaxS`, and only the first failure of a kind is logged (onFailed).
   */
  private async reconcile(why: string): Promise<void> {
    const versions = await tableVersions(this.opts.store.sql);
    for (const table of LOADED_TABLES) {
      const r = this.opts.tables.reloader(table);
      const v = versions.get(table);
      if (v === undefined || r.busy || r.version === v) continue;
      if (r.lastError !== null && Date.now() - r.lastAttempt < this.opts.retryMaxS * 1000) continue;
      // A lower version than held means the database was replaced (a restore): reload too.
      r.changed(r.version !== null && v < r.version ? null : v, why);
    }
  }

  /** Tell the registry what this node holds (after registering). */
  private async reportLoaded(): Promise<void> {
    for (const table of LOADED_TABLES) {
      const v = this.opts.tables.reloader(table).version;
      if (v !== null) await recordLoaded(this.opts.store.sql, this.opts.node.name, table, v);
    }
  }
}

/** The name a node registers under when `cluster.node` is not set: host name and first SIP port. */
export function defaultNodeName(listeners: readonly string[]): string {
  const port = /:([0-9]+)$/.exec(listeners[0] ?? '')?.[1] ?? '0';
  return `${hostname()}:${port}`;
}
