/**
 * The node registry (`node`, `node_table`) and what `sipctl cluster status` reads from it.
 * Every time is the database's own clock (CURRENT_TIMESTAMP), so nodes whose clocks differ
 * still agree on which heartbeat is stale.
 */
import type { Sql } from '../store/index.js';

export interface NodeRegistration {
  name: string;
  host: string;
  pid: number;
  listeners: readonly string[];
  /** The sipctl version the node runs. */
  version: string;
  heartbeatS: number;
}

/** A heartbeat older than this many intervals marks the node stale. */
export const STALE_AFTER_BEATS = 3;

/**
 * Register (or re-register after an outage) this node. `fresh` — the first registration of
 * this process — also sets `started` and forgets what a previous process of the same name
 * had loaded. Returns the row this replaced when it looked alive and was another process
 * (two nodes configured with one name), for a warning.
 */
export async function registerNode(
  sql: Sql,
  n: NodeRegistration,
  fresh: boolean,
): Promise<{ host: string; pid: number } | null> {
  return sql.transaction(async (tx) => {
    const before = await tx.get<{ host: string; pid: number; alive: boolean | number }>(
      `SELECT host, pid, (stopped IS NULL AND heartbeat > CURRENT_TIMESTAMP - heartbeat_s * ${STALE_AFTER_BEATS} * INTERVAL '1 second') AS alive
         FROM node WHERE name = ? FOR UPDATE`,
      [n.name],
    );
    const listeners = n.listeners.join(',');
    if (before === undefined) {
      await tx.run(
        'INSERT INTO node (name, host, pid, listeners, version, heartbeat_s) VALUES (?, ?, ?, ?, ?, ?)',
        [n.name, n.host, n.pid, listeners, n.version, n.heartbeatS],
      );
    } else {
      await tx.run(
        `UPDATE node SET host = ?, pid = ?, listeners = ?, version = ?, heartbeat_s = ?, heartbeat = CURRENT_TIMESTAMP,
                stopped = NULL${fresh ? ', started = CURRENT_TIMESTAMP' : ''}
          WHERE name = ?`,
        [n.host, n.pid, listeners, n.version, n.heartbeatS, n.name],
      );
      if (fresh) await tx.run('DELETE FROM node_table WHERE node = ?', [n.name]);
    }
    const other = before !== undefined && Boolean(before.alive) && (before.host !== n.host || Number(before.pid) !== n.pid);
    return fresh && other ? { host: before.host, pid: Number(before.pid) } : null;
  });
}

/** Refresh the heartbeat; false when the row is gone (forgotten by hand): register again. */
export async function beat(sql: Sql, name: string): Promise<boolean> {
  return (await sql.run('UPDATE node SET heartbeat = CURRENT_TIMESTAMP, stopped = NULL WHERE name = ?', [name])) > 0;
}

/** The node now holds `version` of `table`. */
export async function recordLoaded(sql: Sql, name: string, table: string, version: number): Promise<void> {
  await sql.run(
    `INSERT INTO node_table (node, table_name, version, loaded) VALUES (?, ?, ?, CURRENT_TIMESTAMP)
       ON CONFLICT (node, table_name) DO UPDATE SET version = excluded.version, loaded = excluded.loaded`,
    [name, table, version],
  );
}

/** A graceful stop: the node is shown as stopped, not stale. */
export async function markStopped(sql: Sql, name: string): Promise<void> {
  await sql.run('UPDATE node SET stopped = CURRENT_TIMESTAMP WHERE name = ?', [name]);
}

/** Remove a node's row (and what it had loaded): `sipctl cluster forget`. */
export async function forgetNode(sql: Sql, name: string): Promise<boolean> {
  return (await sql.run('DELETE FROM node WHERE name = ?', [name])) > 0;
}

/** The version of every tracked table. */
export async function tableVersions(sql: Sql): Promise<Map<string, number>> {
  const rows = await sql.all<{ table_name: string; version: number }>('SELECT table_name, version FROM table_version');
  return new Map(rows.map((r) => [r.table_name, Number(r.version)]));
}

// ---- cluster status ------------------------------------------------------------------------

export type NodeState = 'up' | 'stale' | 'stopped';

export interface NodeTableStatus {
  table: string;
  /** The version the node holds; null when it has not reported one. */
  version: number | null;
  loaded: string | null;
  /** Whether that is the latest version of the table. */
  current: boolean;
}

export interface NodeStatus {
  name: string;
  state: NodeState;
  host: string;
  pid: number;
  listeners: string[];
  version: string;
  started: string;
  heartbeat: string;
  /** Seconds since the last heartbeat, by the database's clock. */
  heartbeatAgeS: number;
  heartbeatS: number;
  stopped: string | null;
  tables: NodeTableStatus[];
}

export interface ClusterStatus {
  /** The database's clock when this was read. */
  at: string;
  tables: { table: string; version: number; changed: string }[];
  nodes: NodeStatus[];
}

function iso(v: unknown): string {
  if (v instanceof Date) return v.toISOString();
  const d = new Date(String(v));
  return Number.isNaN(d.getTime()) ? String(v) : d.toISOString();
}

/** Every node, its state, and which version of each table it holds against the latest. One snapshot. */
export async function clusterStatus(sql: Sql): Promise<ClusterStatus> {
  return sql.transaction(async (tx) => {
    const at = await tx.get<{ now: unknown }>('SELECT CURRENT_TIMESTAMP AS now');
    const versions = await tx.all<{ table_name: string; version: number; changed_at: unknown }>(
      'SELECT table_name, version, changed_at FROM table_version ORDER BY table_name',
    );
    const nodes = await tx.all<{
      name: string;
      host: string;
      pid: number;
      listeners: string;
      version: string;
      started: unknown;
      heartbeat: unknown;
      heartbeat_s: number;
      stopped: unknown;
      age_s: number | string;
    }>(
      `SELECT name, host, pid, listeners, version, started, heartbeat, heartbeat_s, stopped,
              EXTRACT(EPOCH FROM (CURRENT_TIMESTAMP - heartbeat)) AS age_s
         FROM node ORDER BY name`,
    );
    const loaded = await tx.all<{ node: string; table_name: string; version: number; loaded: unknown }>(
      'SELECT node, table_name, version, loaded FROM node_table',
    );
    const latest = new Map(versions.map((v) => [v.table_name, Number(v.version)]));
    return {
      at: iso(at?.now),
      tables: versions.map((v) => ({ table: v.table_name, version: Number(v.version), changed: iso(v.changed_at) })),
      nodes: nodes.map((n): NodeStatus => {
        const ageS = Math.max(0, Math.round(Number(n.age_s) * 10) / 10);
        const state: NodeState = n.stopped !== null ? 'stopped' : ageS > STALE_AFTER_BEATS * Number(n.heartbeat_s) ? 'stale' : 'up';
        return {
          name: n.name,
          state,
          host: n.host,
          pid: Number(n.pid),
          listeners: n.listeners === '' ? [] : n.listeners.split(','),
          version: n.version,
          started: iso(n.started),
          heartbeat: iso(n.heartbeat),
          heartbeatAgeS: ageS,
          heartbeatS: Number(n.heartbeat_s),
          stopped: n.stopped === null ? null : iso(n.stopped),
          tables: [...latest.keys()].map((table) => {
            const l = loaded.find((r) => r.node === n.name && r.table_name === table);
            const version = l === undefined ? null : Number(l.version);
            return { table, version, loaded: l === undefined ? null : iso(l.loaded), current: version === latest.get(table) };
          }),
        };
      }),
    };
  }, 'snapshot');
}
