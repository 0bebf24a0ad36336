/**
 * `sipctl status` — the running proxy at a glance, from its control socket: who it is, what
 * it listens on, how much passes (per second over the last 10 s and since start), what it
 * refused and dropped, transactions, dialogs (live calls by state), TCP connections,
 * memory, event-loop lag, tables.
 *
 * Exit codes: 0 done; 1 no proxy on the control socket (or an answer this sipctl cannot read).
 */
import type { Command } from 'commander';
import { resolveControlPath } from '../../src/config/paths.js';
import { CONTROL_COMMANDS, controlRequest } from '../../src/control/index.js';
import { SipctlError } from '../../src/errors.js';
import { plural, printJson, printLine } from '../output.js';
import { CONTROL_HELP, type ControlOption, type JsonOption } from '../common.js';

/** What `status` answers, as far as the CLI reads it (see src/metrics/observer.ts status()). */
export interface StatusView {
  pid: number;
  version: string;
  uptimeS: number;
  startedAt: string;
  listeners: string[];
  mode: string;
  relay: 'stateless' | 'transaction';
  rates: { windowS: number; messagesPerS: { recent: number; sinceStart: number }; callsPerS: { recent: number; sinceStart: number } };
  messages: {
    received: number;
    calls: number;
    forwarded: number;
    responsesRelayed: number;
    localReplies: number;
    refused: number;
    dropped: number;
    dropsByReason: Record<string, number>;
    requestsByMethod: Record<string, number>;
  };
  transactions: { inUse: number; created: number; timedOut: number } | null;
  /** Dialog tracking (dialog.enabled), else null; absent from an older proxy. */
  dialogs?: { active: number; trying: number; early: number; confirmed: number; created: number; cdrWritten: number; cdrQueued: number } | null;
  tcp: { inbound: number; outbound: number };
  eventLoopLagMs: number;
  memory: { rss: number; heapUsed: number; heapTotal: number };
  addressTable: { entries: number; groups: { grp: number; count: number }[]; lastReload: ReloadView | null };
  dispatcher: { sets: { setid: number; destinations: number; active: number }[]; lastReload: ReloadView | null };
  capture: { collector: string; captured: number; sent: number; dropped: number } | null;
  metrics: string | null;
}

interface ReloadView {
  at: string;
  ok: boolean;
  ms: number;
  failures: number;
  error?: string;
}

/** Asks the proxy; an answer without the fields this sipctl prints is refused in one line. */
export async function requestStatusView(path: string): Promise<StatusView> {
  const result = (await controlRequest(path, CONTROL_COMMANDS.status, {})) as Partial<StatusView> | null;
  const ok =
    result !== null &&
    typeof result === 'object' &&
    typeof result.pid === 'number' &&
    typeof result.rates === 'object' &&
    typeof result.messages === 'object' &&
    typeof result.addressTable === 'object' &&
    typeof result.dispatcher === 'object';
  if (!ok) {
    throw new SipctlError(
      'E_CONTROL_BAD_REPLY',
      `the proxy on ${path} answered 'status' without the fields this sipctl prints; is it an older sipctl? (sipctl status --json shows what it sent)`,
    );
  }
  return result as StatusView;
}

/** `1h 02m 03s`, `4m 05s`, `12s`. */
export function durationText(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m ${String(r).padStart(2, '0')}s`;
  if (m > 0) return `${m}m ${String(r).padStart(2, '0')}s`;
  return `${r}s`;
}

export function mb(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** `2026-11-26 16:36:05Z` from an ISO time. */
export function timeText(iso: string): string {
  return iso.replace('T', ' ').replace(/\.[0-9]+Z$/, 'Z');
}

function reloadText(r: ReloadView | null): string {
  if (r === null) return 'never loaded';
  const last = `${r.ok ? 'loaded' : 'last reload FAILED'} ${timeText(r.at)}${r.ok ? ` in ${r.ms} ms` : `: ${r.error ?? '?'}`}`;
  return r.failures > 0 ? `${last}; ${plural(r.failures, 'failed reload', 'failed reloads')} since start` : last;
}

const n = (x: number): string => x.toLocaleString('en-US');

function dialogsText(d: StatusView['dialogs']): string {
  if (d === undefined || d === null) return 'off (dialog.enabled: false)';
  return (
    `${n(d.confirmed)} confirmed, ${n(d.early)} early, ${n(d.trying)} trying (${n(d.active)} live calls); ` +
    `${n(d.created)} created since start; CDRs ${n(d.cdrWritten)} written, ${n(d.cdrQueued)} queued`
  );
}

export function statusLines(s: StatusView): string[] {
  const drops = Object.entries(s.messages.dropsByReason)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${n(v)}`);
  const sets = s.dispatcher.sets.map((x) => `set ${x.setid}: ${x.active} of ${x.destinations} active`);
  const lines = [
    `sipctl ${s.version}, pid ${s.pid}, up ${durationText(s.uptimeS)} (since ${timeText(s.startedAt)})`,
    `mode:          ${s.mode === 'forward' ? 'forward (one next hop)' : 'dispatcher'}, ${s.relay === 'transaction' ? 'transaction-stateful' : 'stateless'}`,
    `listeners:     ${s.listeners.join(', ')}`,
    `metrics:       ${s.metrics ?? 'off'}; capture: ${s.capture === null ? 'off' : `HEP to ${s.capture.collector} (${n(s.capture.sent)} sent, ${n(s.capture.dropped)} dropped)`}`,
    `traffic:       ${s.rates.callsPerS.recent} calls/s, ${s.rates.messagesPerS.recent} messages/s over the last ${s.rates.windowS} s; ` +
      `${s.rates.callsPerS.sinceStart} calls/s, ${s.rates.messagesPerS.sinceStart} messages/s since start`,
    `messages:      ${n(s.messages.received)} received, ${n(s.messages.calls)} calls, ${n(s.messages.forwarded)} requests forwarded, ` +
      `${n(s.messages.responsesRelayed)} responses relayed, ${n(s.messages.localReplies)} local replies`,
    `refused:       ${n(s.messages.refused)} requests (address table)`,
    `dropped:       ${n(s.messages.dropped)}${drops.length > 0 ? ` (${drops.join(', ')})` : ''}`,
    `transactions:  ${s.transactions === null ? 'none (stateless proxy)' : `${n(s.transactions.inUse)} in use, ${n(s.transactions.created)} created, ${n(s.transactions.timedOut)} timed out`}`,
    `dialogs:       ${dialogsText(s.dialogs)}`,
    `tcp:           ${s.tcp.inbound} connections in, ${s.tcp.outbound} out`,
    `memory:        ${mb(s.memory.rss)} resident, heap ${mb(s.memory.heapUsed)} of ${mb(s.memory.heapTotal)}; event-loop lag ${s.eventLoopLagMs} ms (max, last 10 s)`,
    `address table: ${plural(s.addressTable.entries, 'entry', 'entries')} in ${plural(s.addressTable.groups.length, 'group', 'groups')}; ${reloadText(s.addressTable.lastReload)}`,
    `dispatcher:    ${sets.length > 0 ? sets.join('; ') : 'no sets'}; ${reloadText(s.dispatcher.lastReload)}`,
  ];
  return lines;
}

async function statusCommand(opts: ControlOption & JsonOption): Promise<void> {
  const path = resolveControlPath(opts.control);
  if (opts.json) {
    printJson(await controlRequest(path, CONTROL_COMMANDS.status, {}));
    return;
  }
  for (const line of statusLines(await requestStatusView(path))) printLine(line);
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('the running proxy at a glance: traffic, refusals, drops, transactions, connections, memory, tables')
    .option('--json', 'print everything the proxy reports, as JSON')
    .option('--control <path>', CONTROL_HELP)
    .action(statusCommand);
}
