/**
 * `--cluster` on a command that acts on the running proxy (`dispatcher set-state`,
 * `flood unblock`): instead of this host's control socket, every node registered on the
 * shared PostgreSQL database runs it (src/cluster/commands.ts), and each node's outcome is
 * printed on a line of its own — `NODE: what it said` — or, with --json, as
 * `{..., nodes: [{node, ok, result | error}]}`. Exit 1 when any live node failed or did not
 * answer within --timeout.
 */
import { runOnCluster, type ClusterCommandReport } from '../src/cluster/commands.js';
import { usageError } from '../src/errors.js';
import { withClusterStore, type DbOption, type JsonOption } from './common.js';
import { printJson, printLine } from './output.js';

export interface ClusterOption extends DbOption {
  cluster?: boolean;
  timeout?: string;
}

export const CLUSTER_HELP = 'run on every node sharing the PostgreSQL database (--db), not just this host’s proxy';
export const TIMEOUT_HELP = 'with --cluster: seconds to wait for every node to answer (default 5)';
export const CLUSTER_DB_HELP = 'with --cluster: the shared PostgreSQL database (default: $SIPCTL_DB); otherwise ignored';

function parseTimeout(value: string | undefined): number {
  if (value === undefined) return 5_000;
  const s = Number(value.trim());
  if (!/^[0-9]+(\.[0-9]+)?$/.test(value.trim()) || s <= 0 || s > 600) {
    throw usageError('E_CLI_BAD_TIMEOUT', `--timeout ${JSON.stringify(value)} is not a number of seconds from 0 to 600`);
  }
  return Math.round(s * 1000);
}

/**
 * Run `command` on every node and print the outcome. `describe` turns one node's result into
 * the text the local command would print; `head` is the JSON document's other keys.
 */
export async function runClusterCommand(
  opts: ClusterOption & JsonOption,
  what: string,
  command: string,
  args: Record<string, unknown>,
  head: Record<string, unknown>,
  describe: (result: Record<string, unknown>) => string,
): Promise<ClusterCommandReport> {
  const timeoutMs = parseTimeout(opts.timeout);
  const report = await withClusterStore(opts, `${what} --cluster`, (store) => runOnCluster(store.sql, command, args, { timeoutMs }));
  const failed = report.answers.some((a) => !a.ok) || report.missing.length > 0;
  if (failed) process.exitCode = 1;
  const errorText = (r: unknown): string =>
    typeof r === 'object' && r !== null && typeof (r as { message?: unknown }).message === 'string' ? (r as { message: string }).message : JSON.stringify(r);
  if (opts.json) {
    printJson({
      ...head,
      nodes: [
        ...report.answers.map((a) => (a.ok ? { node: a.node, ok: true, result: a.result } : { node: a.node, ok: false, error: a.result })),
        ...report.missing.map((node) => ({ node, ok: false, error: { code: 'E_CLUSTER_NO_ANSWER', message: `no answer within ${timeoutMs / 1000} s` } })),
      ],
    });
    return report;
  }
  for (const a of report.answers) {
    printLine(`${a.node}: ${a.ok ? describe((a.result ?? {}) as Record<string, unknown>) : `FAILED: ${errorText(a.result)}`}`);
  }
  for (const node of report.missing) printLine(`${node}: no answer within ${timeoutMs / 1000} s`);
  return report;
}
