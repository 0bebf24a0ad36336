/**
 * `sipctl dialog ...` — live calls in the running proxy (dialog.enabled): list them, end one
 * (BYE to both sides). `sipctl cdr list` — the call detail records in the database.
 *
 * Exit codes: 0 done; 1 failure (proxy unreachable, tracking off, no such dialog); 2 bad input.
 */
import type { Command } from 'commander';
import { resolveControlPath } from '../../src/config/paths.js';
import { controlRequest } from '../../src/control/index.js';
import { usageError } from '../../src/errors.js';
import type { DialogView } from '../../src/dialog/tracker.js';
import type { CdrRow } from '../../src/store/index.js';
import { CONTROL_HELP, DB_HELP, withStore, type ControlOption, type DbOption, type JsonOption } from '../common.js';
import { plural, printJson, printLine, printTable } from '../output.js';


function isDialogList(v: unknown): v is { total: number; dialogs: DialogView[]; omitted: number } {
  const r = v as { total?: unknown; dialogs?: unknown };
  return typeof v === 'object' && v !== null && typeof r.total === 'number' && Array.isArray(r.dialogs);
}

async function listCommand(opts: ControlOption & JsonOption): Promise<void> {
  const result = await controlRequest(resolveControlPath(opts.control), 'dialog.list', {});
  if (!isDialogList(result)) throw usageError('E_CONTROL_SHAPE', 'the proxy answered dialog.list with something else than a list of dialogs (another sipctl version?)');
  if (opts.json) {
    printJson(result);
    return;
  }
  if (result.total === 0) {
    printLine('no live calls');
    return;
  }
  printTable(
    ['id', 'state', 'age s', 'talking s', 'from', 'to', 'source', 'PBX', 'Call-ID'],
    result.dialogs.map((d) => [d.id, d.state, d.ageS, d.answeredS ?? '-', d.from, d.to, d.source, d.destination ?? '-', d.callId]),
    { align: ['right', 'left', 'right', 'right', 'left', 'left', 'left', 'left', 'left'] },
  );
  printLine(`${plural(result.total, 'live call', 'live calls')}${result.omitted > 0 ? ` (${result.omitted} not shown)` : ''}`);
}

async function endCommand(idText: string, opts: ControlOption & JsonOption): Promise<void> {
  if (!/^[0-9]{1,15}$/.test(idText) || Number(idText) < 1) {
    throw usageError('E_DIALOG_BAD_ID', `dialog id must be a whole number from 1 (see 'sipctl dialog list'), got '${idText}'`);
  }
  const result = (await controlRequest(resolveControlPath(opts.control), 'dialog.end', { id: Number(idText) })) as { how?: string } | null;
  if (opts.json) printJson(result);
  else if (result?.how === 'cancel') printLine(`dialog ${idText} is being ended: CANCEL sent towards the callee; the caller gets its 487`);
  else printLine(`dialog ${idText} ended: BYE sent to both sides`);
}

/** `2026-11-29T20:00:00Z`, `2026-11-29`, or an age: `90s`, `15m`, `2h`, `7d` (that long ago). */
export function parseTime(text: string, option: string, now = Date.now()): number {
  const rel = /^([0-9]{1,9})\s*([smhd])$/.exec(text.trim());
  if (rel !== null) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 's' | 'm' | 'h' | 'd'];
    return now - Number(rel[1]) * unit;
  }
  if (/^[0-9]{4}-[0-9]{2}-[0-9]{2}/.test(text)) {
    const ms = Date.parse(text);
    if (Number.isFinite(ms)) return ms;
  }
  throw usageError('E_CDR_BAD_TIME', `${option} ${JSON.stringify(text)}: expected an ISO time (2026-11-29T20:00:00Z, 2026-11-29) or an age (90s, 15m, 2h, 7d)`);
}

function iso(ms: number | null): string {
  return ms === null ? '' : new Date(Number(ms)).toISOString();
}

const CSV_COLUMNS = [
  'id', 'node', 'call_id', 'from_uri', 'to_uri', 'source', 'setid', 'destination', 'start', 'answer', 'end', 'duration', 'billable', 'code', 'reason', 'ended_by',
] as const;

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function outRow(r: CdrRow): Record<(typeof CSV_COLUMNS)[number], string | number | null> {
  return {
    id: Number(r.id),
    node: r.node,
    call_id: r.call_id,
    from_uri: r.from_uri,
    to_uri: r.to_uri,
    source: r.source,
    setid: r.setid === null ? null : Number(r.setid),
    destination: r.destination,
    start: iso(r.start_ms),
    answer: r.answer_ms === null ? null : iso(r.answer_ms),
    end: iso(r.end_ms),
    duration: Number(r.duration),
    billable: Number(r.billable),
    code: Number(r.code),
    reason: r.reason,
    ended_by: r.ended_by,
  };
}

async function cdrListCommand(opts: DbOption & JsonOption & { csv?: boolean; since?: string; until?: string; limit?: string }): Promise<void> {
  if (opts.json && opts.csv) throw usageError('E_CDR_FORMAT', '--json and --csv: choose one');
  const sinceMs = opts.since === undefined ? undefined : parseTime(opts.since, '--since');
  const untilMs = opts.until === undefined ? undefined : parseTime(opts.until, '--until');
  let limit: number | undefined = 100;
  if (opts.limit !== undefined) {
    if (!/^[0-9]{1,9}$/.test(opts.limit) || Number(opts.limit) < 1) throw usageError('E_CDR_BAD_LIMIT', `--limit must be a whole number from 1, got '${opts.limit}'`);
    limit = Number(opts.limit);
  }
  const rows = (await withStore(opts, (s) => s.cdr.list({ sinceMs, untilMs, limit }))).map(outRow);
  if (opts.json) {
    printJson({ total: rows.length, cdrs: rows });
    return;
  }
  if (opts.csv) {
    process.stdout.write(CSV_COLUMNS.join(',') + '\n');
    for (const r of rows) process.stdout.write(CSV_COLUMNS.map((c) => csvCell(r[c])).join(',') + '\n');
    return;
  }
  if (rows.length === 0) {
    printLine('no call records in that time range');
    return;
  }
  printTable(
    ['start', 'duration s', 'billable s', 'code', 'ended by', 'from', 'to', 'PBX', 'Call-ID'],
    rows.map((r) => [r.start, Number(r.duration).toFixed(3), Number(r.billable).toFixed(3), `${r.code} ${r.reason}`, r.ended_by, r.from_uri, r.to_uri, r.destination ?? '-', r.call_id]),
    { align: ['left', 'right', 'right', 'left', 'left', 'left', 'left', 'left', 'left'] },
  );
  printLine(`${plural(rows.length, 'call record', 'call records')}, newest first${limit !== undefined && rows.length === limit ? ` (--limit ${limit})` : ''}`);
}

export function registerDialog(program: Command): void {
  const dialog = program.command('dialog').description('live calls in the running proxy (dialog.enabled): list, end');
  dialog
    .command('list')
    .description('live calls: id, state, age, PBX')
    .option('--json', 'print {total, dialogs: [{id, callId, state, from, to, source, setid, destination, ageS, answeredS}], omitted}')
    .option('--control <path>', CONTROL_HELP)
    .action(listCommand);
  dialog
    .command('end')
    .description('end a call now: BYE to the caller and to the callee; a call not answered yet: CANCEL towards the callee')
    .argument('<id>', "the dialog's id (sipctl dialog list)")
    .option('--json', 'print {id, ended, how: bye | cancel}')
    .option('--control <path>', CONTROL_HELP)
    .action(endCommand);

  const cdr = program.command('cdr').description('call detail records (written by the proxy while dialog.enabled)');
  cdr
    .command('list')
    .description('call records, newest first (default: the last 100)')
    .option('--since <time>', 'calls that started at or after TIME: ISO (2026-11-29T20:00:00Z) or an age (15m, 2h, 7d)')
    .option('--until <time>', 'calls that started before TIME')
    .option('--limit <n>', 'at most N records (default 100)')
    .option('--json', 'print {total, cdrs: [...]}')
    .option('--csv', 'print CSV with a header line')
    .option('--db <path|url>', DB_HELP)
    .action(cdrListCommand);
}
