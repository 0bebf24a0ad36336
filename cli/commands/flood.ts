/**
 * `sipctl flood ...` — flood control in the running proxy (Kamailio's pike, whose
 * `pike.top` RPC lists the hot addresses): which sources are blocked or close to their
 * limit, and lifting a block by hand. Both talk to the proxy over its control socket.
 *
 * Exit codes: 0 done; 1 failure (proxy unreachable, the address was not blocked);
 * 2 bad input (an address that is not one).
 */
import { CLUSTER_DB_HELP, CLUSTER_HELP, runClusterCommand, TIMEOUT_HELP, type ClusterOption } from '../cluster-run.js';
import type { Command } from 'commander';
import { resolveControlPath } from '../../src/config/paths.js';
import { requestFloodList, requestFloodUnblock, type FloodListResult, type FloodSourceView } from '../../src/control/index.js';
import { parseSourceAddress } from '../../src/flood/address.js';
import { plural, printJson, printLine, printTable, type CellValue } from '../output.js';
import { CONTROL_HELP, type ControlOption, type JsonOption } from '../common.js';

/** `2026-11-26 16:36:05Z` (UTC, as the proxy logs times) from an ISO time. */
function timeText(iso: string | null): string {
  if (iso === null) return '-';
  return iso.replace('T', ' ').replace(/\.[0-9]+Z$/, 'Z');
}

function limitText(r: FloodListResult): string {
  return `${plural(r.maxRequests, 'message', 'messages')} per ${r.windowS} s, blocks last ${r.blockS} s`;
}

function sourceCells(s: FloodSourceView): CellValue[] {
  return [s.address, s.state, s.count, timeText(s.blockedSince), timeText(s.blockedUntil), s.dropped];
}

async function listCommand(opts: ControlOption & JsonOption): Promise<void> {
  const result = await requestFloodList(resolveControlPath(opts.control));
  if (opts.json) {
    printJson(result);
    return;
  }
  if (!result.enabled) {
    printLine('flood control is off in this proxy (flood.enabled: false)');
    return;
  }
  if (result.sources.length === 0) {
    printLine(`no source is blocked or near its limit (${limitText(result)}); ${plural(result.tracked, 'source', 'sources')} tracked`);
    return;
  }
  printTable(['address', 'state', 'count', 'blocked since', 'blocked until', 'dropped'], result.sources.map(sourceCells), {
    align: ['left', 'left', 'right', 'left', 'left', 'right'],
  });
  if (result.omitted > 0) printLine(`… ${plural(result.omitted, 'more source', 'more sources')} not shown (--json prints the same list)`);
  printLine(
    `${plural(result.blocked, 'source', 'sources')} blocked, ${result.tracked.toLocaleString('en-US')} of ` +
      `${result.maxTracked.toLocaleString('en-US')} tracked (limit: ${limitText(result)})`,
  );
}

async function unblockCommand(ip: string, opts: ControlOption & JsonOption & ClusterOption): Promise<void> {
  // Checked before the proxy is asked: a typo is a usage error (exit 2), not "not blocked".
  const address = parseSourceAddress(ip);
  if (opts.cluster) {
    // Every node's own flood table: each answers {unblocked, ...} as its control socket would.
    const report = await runClusterCommand(opts, 'flood unblock', 'flood.unblock', { ip: address }, { address }, (r) =>
      r.unblocked === true ? `unblocked ${address}` : `${address} is not blocked; nothing changed`,
    );
    // As without --cluster: exit 1 when no node had it blocked.
    if (!report.answers.some((a) => a.ok && (a.result as { unblocked?: unknown } | undefined)?.unblocked === true)) process.exitCode = 1;
    return;
  }
  const result = await requestFloodUnblock(resolveControlPath(opts.control), address);
  if (!result.unblocked) process.exitCode = 1;
  if (opts.json) {
    printJson(result);
    return;
  }
  printLine(
    result.unblocked
      ? `unblocked ${result.address} (blocked since ${timeText(result.blockedSince)}, ${plural(result.dropped, 'message', 'messages')} dropped)`
      : `${result.address} is not blocked; nothing changed (see 'sipctl flood list')`,
  );
}

export function registerFlood(program: Command): void {
  const flood = program.command('flood').description("flood control in the running proxy (Kamailio's pike): list, unblock");

  flood
    .command('list')
    .description('blocked sources and sources near their limit, in the running proxy')
    .option('--json', 'print {enabled, maxRequests, windowS, blockS, tracked, maxTracked, blocked, sources: [...], omitted}')
    .option('--control <path>', CONTROL_HELP)
    .action(listCommand);

  flood
    .command('unblock')
    .description('lift the block on a source address now (exit 1 when it was not blocked)')
    .argument('<ip>', 'the blocked source address, IPv4 or IPv6')
    .option('--json', 'print {address, unblocked, dropped, blockedSince} ({address, nodes: [{node, ok, result}]} with --cluster)')
    .option('--cluster', CLUSTER_HELP)
    .option('--timeout <s>', TIMEOUT_HELP)
    .option('--control <path>', CONTROL_HELP)
    .option('--db <path|url>', CLUSTER_DB_HELP)
    .action(unblockCommand);
}
