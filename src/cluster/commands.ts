/**
 * Commands for every node at once (`sipctl dispatcher set-state ... --cluster`,
 * `sipctl flood unblock ... --cluster`): what a person would otherwise run on each node's
 * control socket in turn.
 *
 * The CLI inserts the command into `cluster_command` and NOTIFYs `command ID` in the same
 * transaction; every node LISTENing (link.ts) reads it, runs it through its own control
 * socket — the very handler the local command uses — and writes its answer to
 * `cluster_command_result`. The CLI waits for an answer from every node whose heartbeat is
 * fresh, up to a timeout, and reports each.
 *
 * Only the commands below may be run this way: a row in the table is not a way to run
 * anything else on the nodes.
 */
import { SipctlError } from '../errors.js';
import { NOTIFY_CHANNEL, type Sql } from '../store/index.js';
import { STALE_AFTER_BEATS } from './registry.js';

/** Control commands a node runs when asked through the database. */
export const CLUSTER_COMMANDS: readonly string[] = ['dispatcher.setState', 'flood.unblock'];

/** Commands older than this are deleted when the next one is issued. */
const KEEP_COMMANDS = "INTERVAL '1 day'";

export interface NodeAnswer {
  node: string;
  ok: boolean;
  /** The control handler's result (ok) or error {code, message} (not ok). */
  result: unknown;
}

export interface ClusterCommandReport {
  id: number;
  /** Every node that was alive when the command was issued, in name order. */
  answers: NodeAnswer[];
  /** Nodes that did not answer in time. */
  missing: string[];
}

export interface IssueOptions {
  timeoutMs: number;
  /** How often the answers are polled (default 50 ms). */
  pollMs?: number;
}

/** Issue `command` to every live node and wait for their answers. */
export async function runOnCluster(sql: Sql, command: string, args: Record<string, unknown>, opts: IssueOptions): Promise<ClusterCommandReport> {
  if (!CLUSTER_COMMANDS.includes(command)) {
    throw new SipctlError('E_CLUSTER_COMMAND', `${command} cannot be run on the cluster (only ${CLUSTER_COMMANDS.join(', ')})`);
  }
  const { id, nodes } = await sql.transaction(async (tx) => {
    const live = await tx.all<{ name: string }>(
      `SELECT name FROM node
        WHERE stopped IS NULL AND heartbeat > CURRENT_TIMESTAMP - heartbeat_s * ${STALE_AFTER_BEATS} * INTERVAL '1 second'
        ORDER BY name`,
    );
    if (live.length === 0) {
      throw new SipctlError(
        'E_CLUSTER_NO_NODES',
        "no node is running on this database (none has a fresh heartbeat; see 'sipctl cluster status'); nothing was sent",
      );
    }
    await tx.run(`DELETE FROM cluster_command WHERE issued < CURRENT_TIMESTAMP - ${KEEP_COMMANDS}`);
    const row = await tx.get<{ id: number }>('INSERT INTO cluster_command (command, args) VALUES (?, ?) RETURNING id', [
      command,
      JSON.stringify(args),
    ]);
    const commandId = Number(row!.id);
    // Delivered at commit, with the row visible to whoever reads it then.
    await tx.get(`SELECT pg_notify('${NOTIFY_CHANNEL}', ?)`, [`command ${commandId}`]);
    return { id: commandId, nodes: live.map((r) => r.name) };
  });

  const deadline = Date.now() + opts.timeoutMs;
  const answers = new Map<string, NodeAnswer>();
  // Bounded by the deadline; one query per poll.
  for (;;) {
    const rows = await sql.all<{ node: string; ok: number | boolean; result: string }>(
      'SELECT node, ok, result FROM cluster_command_result WHERE command_id = ?',
      [id],
    );
    for (const r of rows) {
      let result: unknown;
      try {
        result = JSON.parse(r.result);
      } catch {
        result = { code: 'E_CLUSTER_BAD_ANSWER', message: `node ${r.node} answered something that is not JSON` };
      }
      answers.set(r.node, { node: r.node, ok: Boolean(Number(r.ok)), result });
    }
    if (nodes.every((n) => answers.has(n)) || Date.now() >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, opts.pollMs ?? 50));
  }
  const names = [...new Set([...nodes, ...answers.keys()])].sort();
  return {
    id,
    answers: names.filter((n) => answers.has(n)).map((n) => answers.get(n)!),
    missing: nodes.filter((n) => !answers.has(n)),
  };
}

/** A node's side: the command row, if it is one a node may run. */
export async function readCommand(sql: Sql, id: number): Promise<{ command: string; args: Record<string, unknown> } | null> {
  const row = await sql.get<{ command: string; args: string }>('SELECT command, args FROM cluster_command WHERE id = ?', [id]);
  if (row === undefined) return null;
  let args: unknown;
  try {
    args = JSON.parse(row.args);
  } catch {
    args = null;
  }
  return { command: row.command, args: typeof args === 'object' && args !== null && !Array.isArray(args) ? (args as Record<string, unknown>) : {} };
}

/** A node's answer to command `id`. */
export async function answerCommand(sql: Sql, id: number, node: string, ok: boolean, result: unknown): Promise<void> {
  await sql.run(
    `INSERT INTO cluster_command_result (command_id, node, ok, result) VALUES (?, ?, ?, ?)
       ON CONFLICT (command_id, node) DO NOTHING`,
    [id, node, ok ? 1 : 0, JSON.stringify(result ?? null)],
  );
}
