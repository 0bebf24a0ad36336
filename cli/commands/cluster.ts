/**
 * `sipctl cluster ...` — the nodes sharing one PostgreSQL database (README "Running several
 * nodes"): which are alive, and whether each holds the latest version of every table.
 *
 * Exit codes: 0 done; 1 failure (database unreachable, no such node); 2 bad input, or a
 * SQLite database (there is no cluster on a file one node uses).
 */
import type { Command } from 'commander';
import { clusterStatus, forgetNode, type ClusterStatus, type NodeStatus } from '../../src/cluster/registry.js';
import { SipctlError } from '../../src/errors.js';
import { DB_HELP, withClusterStore, type DbOption, type JsonOption } from '../common.js';
import { plural, printJson, printLine, printTable, type CellValue } from '../output.js';

/** `2026-11-26 16:36:05Z` from an ISO time (UTC, as the proxy logs times). */
export function timeText(iso: string | null): string {
  if (iso === null) return '-';
  return iso.replace('T', ' ').replace(/\.[0-9]+Z$/, 'Z');
}

function ageText(s: number): string {
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 360) / 10} h ago`;
}

function stateText(n: NodeStatus): string {
  if (n.state === 'stopped') return `stopped ${timeText(n.stopped)}`;
  if (n.state === 'stale') return `STALE (no heartbeat for ${Math.round(n.heartbeatAgeS)} s)`;
  return 'up';
}

/** `7 current`, `5 BEHIND (latest 7)`, `- (none)`. */
function tableCell(n: NodeStatus, table: string, latest: number | undefined): string {
  const t = n.tables.find((x) => x.table === table);
  if (t === undefined || t.version === null) return `- (latest ${latest ?? '-'})`;
  return t.current ? `v${t.version} current` : `v${t.version} BEHIND (latest v${latest ?? '-'})`;
}

function printStatus(s: ClusterStatus): void {
  if (s.nodes.length === 0) {
    printLine('no node has registered on this database (nodes register when `sipctl serve` starts on it)');
  } else {
    const latest = new Map(s.tables.map((t) => [t.table, t.version]));
    const tables = s.tables.map((t) => t.table);
    printTable(
      ['node', 'state', 'listeners', 'sipctl', 'started', 'heartbeat', ...tables],
      s.nodes.map((n): CellValue[] => [
        n.name,
        stateText(n),
        n.listeners.join(' '),
        n.version,
        timeText(n.started),
        ageText(n.heartbeatAgeS),
        ...tables.map((t) => tableCell(n, t, latest.get(t))),
      ]),
    );
  }
  printLine(`tables: ${s.tables.map((t) => `${t.table} v${t.version} (changed ${timeText(t.changed)})`).join(', ')}`);
  const up = s.nodes.filter((n) => n.state === 'up');
  const current = up.filter((n) => n.tables.every((t) => t.current));
  const stale = s.nodes.filter((n) => n.state === 'stale').length;
  printLine(
    `${plural(up.length, 'node', 'nodes')} up, ${current.length} of them current` +
      (stale > 0 ? `; ${plural(stale, 'node', 'nodes')} STALE` : ''),
  );
}

async function statusCommand(opts: DbOption & JsonOption): Promise<void> {
  const status = await withClusterStore(opts, 'cluster status', (store) => clusterStatus(store.sql));
  if (opts.json) {
    printJson(status);
    return;
  }
  printStatus(status);
}

async function forgetCommand(name: string, opts: DbOption & JsonOption): Promise<void> {
  const gone = await withClusterStore(opts, 'cluster forget', (store) => forgetNode(store.sql, name));
  if (!gone) throw new SipctlError('E_CLUSTER_NO_NODE', `no node is named ${JSON.stringify(name)}; nothing removed (see 'sipctl cluster status')`);
  if (opts.json) {
    printJson({ forgotten: name });
    return;
  }
  printLine(`forgot node ${name} (a node still running registers again at its next heartbeat)`);
}

export function registerCluster(program: Command): void {
  const cluster = program
    .command('cluster')
    .description('the nodes sharing one PostgreSQL database: status, forget');

  cluster
    .command('status')
    .description('list the nodes: alive, stale or stopped, and whether each holds the latest version of every table')
    .option('--json', 'print {at, tables: [{table, version, changed}], nodes: [{name, state, listeners, ..., tables: [{table, version, loaded, current}]}]}')
    .option('--db <url>', DB_HELP)
    .action(statusCommand);

  cluster
    .command('forget')
    .description("remove a node that is gone for good from the list (a stopped or stale node's row stays until then)")
    .argument('<node>', 'the node name, as cluster status shows it')
    .option('--json', 'print {forgotten}')
    .option('--db <url>', DB_HELP)
    .action(forgetCommand);
}
