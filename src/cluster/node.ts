/**
 * What `sipctl serve` needs from this folder, in one piece: the node's tables and their
 * versions (node-tables.ts) for either store, and on PostgreSQL the link that keeps them in
 * step with the other nodes (link.ts).
 */
import { hostname } from 'node:os';
import type { ProxyConfig } from '../config/schema.js';
import type { ControlHandlers } from '../control/protocol.js';
import type { Logger } from '../log/logger.js';
import { messageOf, type OpenStoreOptions, type PostgresStore, type Store } from '../store/index.js';
import type { ClusterLink } from './link.js';
import { NodeTables } from './node-tables.js';
import { sipctlVersion } from './version.js';

/**
 * How a node opens its store: a few pooled connections (dispatcher reloads, heartbeats,
 * cluster commands), and no query allowed to hang past 10 s when the database stops answering.
 */
export const NODE_STORE_OPTIONS: OpenStoreOptions = { poolSize: 4, queryTimeoutMs: 10_000, applicationName: 'sipctl serve' };

export interface Node {
  readonly tables: NodeTables;
  /** The control handlers, with reloads tracked and `store` added to `status`. */
  wrap(handlers: ControlHandlers): ControlHandlers;
  /** Join the cluster (PostgreSQL): LISTEN, register, heartbeat. Call once the listeners are bound. */
  start(listeners: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

export function createNode(deps: { store: Store; config: ProxyConfig; logger: Logger }): Node {
  const { store, config, logger } = deps;
  let link: ClusterLink | null = null;
  // Only the first failure of a run of failures is logged at warn: a table retried after a bad
  // row, or every reload during an outage, must not fill the log.
  const lastFailure = new Map<string, string>();
  const tables = new NodeTables({
    kind: store.kind,
    location: store.location,
    delayMs: config.cluster.reloadDelayMs,
    dispatcherVersion: () => store.versions.get('dispatcher'),
    events: {
      onLoaded: (table, result, why) => {
        lastFailure.delete(table);
        logger.info(`${table} table reloaded`, {
          version: typeof result.version === 'number' ? result.version : undefined,
          entries: typeof result.total === 'number' ? result.total : undefined,
          ms: typeof result.ms === 'number' ? result.ms : undefined,
          why,
        });
        link?.loaded(table, result);
      },
      onFailed: (table, err, why) => {
        const message = messageOf(err);
        if (lastFailure.get(table) === message) return;
        lastFailure.set(table, message);
        logger.warn(`${table} table reload failed; keeping the table held`, { error: message, why });
      },
    },
  });
  return {
    tables,
    wrap: (handlers) => tables.wrap(handlers),
    start: async (listeners) => {
      if (store.kind !== 'postgres') return;
      // Loaded only here: the PostgreSQL driver costs a SQLite node ~15 MB of RSS for nothing.
      const { ClusterLink, defaultNodeName } = await import('./link.js');
      const name = config.cluster.node ?? defaultNodeName(listeners);
      link = new ClusterLink({
        store: store as PostgresStore,
        tables,
        node: { name, host: hostname(), pid: process.pid, listeners, version: sipctlVersion(), heartbeatS: config.cluster.heartbeatS },
        controlPath: config.control,
        retryMaxS: config.cluster.retryMaxS,
        logger,
      });
      await link.start();
    },
    close: async () => {
      tables.close();
      await link?.close();
    },
  };
}
