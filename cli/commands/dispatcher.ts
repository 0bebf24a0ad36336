/**
 * `sipctl dispatcher ...` — destination sets, what `kamctl dispatcher` and
 * `kamcmd dispatcher.*` are for Kamailio. Writes go to the database, validated first (one
 * line on stderr, exit 2, nothing written); the running proxy sees them after `reload`
 * (or `--reload` on the write). `dump` and `set-state` talk to the running proxy.
 *
 * Exit codes: 0 done; 1 failure (no such id, proxy unreachable, reload failed); 2 bad input.
 */
import type { Command } from 'commander';
import { resolveControlPath } from '../../src/config/paths.js';
import { CONTROL_COMMANDS, controlRequest } from '../../src/control/index.js';
import { parseAttrs } from '../../src/dispatcher/attrs.js';
import { parseDestinationUri } from '../../src/dispatcher/destination-uri.js';
import type { Dump, DumpDestination } from '../../src/dispatcher/dump.js';
import type { ReloadSummary } from '../../src/dispatcher/holder.js';
import { parseFlags, parsePriority, parseSetid } from '../../src/dispatcher/row.js';
import { DESTINATION_STATES, type DestinationState } from '../../src/dispatcher/types.js';
import { SipctlError, usageError } from '../../src/errors.js';
import type { DispatcherRow } from '../../src/store/index.js';
import { plural, printJson, printLine, printTable, type CellValue } from '../output.js';
import { CONTROL_HELP, DB_HELP, withStore, type ControlOption, type DbOption, type JsonOption } from '../common.js';
import { CLUSTER_DB_HELP, CLUSTER_HELP, runClusterCommand, TIMEOUT_HELP, type ClusterOption } from '../cluster-run.js';

// Taken by the proxy-facing subcommands too (as `sipctl address` does), so a script can pass
// the same options to every call; the proxy itself reads the database it was started with.
const DB_IGNORED_HELP = 'accepted like on every dispatcher command; the proxy reads the database it was started with';

// ---- helpers -------------------------------------------------------------------------------

function parseId(value: string): number {
  const text = value.trim();
  const id = /^[0-9]{1,15}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(id) || id < 1) {
    throw usageError('E_DS_BAD_ID', `${JSON.stringify(value)} is not a destination id (a positive integer, see 'sipctl dispatcher list')`);
  }
  return id;
}

function parseState(value: string): DestinationState {
  const s = value.trim().toLowerCase();
  if (!DESTINATION_STATES.includes(s as DestinationState)) {
    throw usageError('E_DS_BAD_STATE', `unknown state ${JSON.stringify(value)}; use one of: ${DESTINATION_STATES.join(', ')}`);
  }
  return s as DestinationState;
}

/** The proxy's answer, checked so a proxy of another version never makes us print `undefined`. */
class ShapeError extends Error {}

function shape<T>(path: string, cmd: string, result: unknown, read: (r: Record<string, unknown>) => T): T {
  try {
    if (typeof result !== 'object' || result === null || Array.isArray(result)) throw new ShapeError('the result is not an object');
    return read(result as Record<string, unknown>);
  } catch (err) {
    if (!(err instanceof ShapeError)) throw err;
    throw new SipctlError(
      'E_CONTROL_BAD_REPLY',
      `the proxy on ${path} answered '${cmd}' in a shape this sipctl does not know (${err.message}); are both the same version?`,
    );
  }
}

function list(r: Record<string, unknown>, key: string): Record<string, unknown>[] {
  const v = r[key];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'object' && x !== null)) throw new ShapeError(`"${key}" is not a list`);
  return v as Record<string, unknown>[];
}

function num(r: Record<string, unknown>, key: string): number {
  const v = r[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ShapeError(`"${key}" is not a number`);
  return v;
}

async function requestReload(path: string): Promise<ReloadSummary> {
  const cmd = CONTROL_COMMANDS.dispatcherReload;
  const result = await controlRequest(path, cmd, {});
  return shape(path, cmd, result, (r) => ({
    sets: list(r, 'sets').map((s) => ({ setid: num(s, 'setid'), count: num(s, 'count'), active: num(s, 'active') })),
    total: num(r, 'total'),
    ms: num(r, 'ms'),
  }));
}

async function requestDump(path: string): Promise<Dump> {
  const cmd = CONTROL_COMMANDS.dispatcherDump;
  const result = await controlRequest(path, cmd, {});
  return shape(path, cmd, result, (r) => ({
    sets: list(r, 'sets').map((s) => ({
      setid: num(s, 'setid'),
      destinations: list(s, 'destinations').map((d) => {
        num(d, 'id');
        num(d, 'requestsSent');
        if (typeof d.uri !== 'string' || typeof d.state !== 'string') throw new ShapeError('a destination has no uri or state');
        if (!Array.isArray(d.targets)) throw new ShapeError('"targets" is not a list');
        return d as unknown as DumpDestination;
      }),
    })),
  }));
}

function describeReload(r: ReloadSummary): string {
  return `reloaded ${plural(r.total, 'destination', 'destinations')} in ${plural(r.sets.length, 'set', 'sets')} (${r.ms.toFixed(1)} ms)`;
}

/** After a write with --reload: the write is committed; if the reload fails, say both. */
async function reloadAfterWrite(opts: ControlOption, done: string): Promise<ReloadSummary> {
  try {
    return await requestReload(resolveControlPath(opts.control));
  } catch (err) {
    if (!(err instanceof SipctlError)) throw err;
    throw new SipctlError(err.code, `${done} (saved in the database), but the proxy was not reloaded: ${err.message}`);
  }
}

function describeRow(r: DispatcherRow): string {
  const extras = [
    `priority ${r.priority}`,
    r.flags !== 0 ? `flags ${r.flags}` : '',
    r.attrs !== '' ? `attrs ${r.attrs}` : '',
    r.description !== '' ? `"${r.description}"` : '',
  ].filter((x) => x !== '');
  return `id ${r.id}: set ${r.setid}, ${r.destination}, ${extras.join(', ')}`;
}

function targetText(t: { protocol: string; address: string; port: number }): string {
  return `${t.protocol}:${t.address.includes(':') ? `[${t.address}]` : t.address}:${t.port}`;
}

// ---- commands ------------------------------------------------------------------------------

interface AddOptions extends DbOption, ControlOption, JsonOption {
  priority?: string;
  attrs?: string;
  flags?: string;
  description?: string;
  reload?: boolean;
}

async function addCommand(setidText: string, uriText: string, opts: AddOptions): Promise<void> {
  // Validate everything before opening the database: bad input never creates or touches a file.
  const setid = parseSetid(setidText);
  const destination = uriText.trim();
  const uri = parseDestinationUri(destination);
  const priority = opts.priority === undefined ? 0 : parsePriority(opts.priority);
  const flags = opts.flags === undefined ? 0 : parseFlags(opts.flags);
  const attrs = opts.attrs === undefined ? '' : opts.attrs.trim();
  parseAttrs(attrs);
  const description = opts.description ?? '';

  const row = await withStore(opts, async (store) => {
    // The same destination spelled differently (host case, default parameters) would make
    // the next reload fail; refuse it here instead, naming the row it clashes with.
    for (const other of await store.dispatcher.list(setid)) {
      let same = false;
      try {
        same = parseDestinationUri(other.destination).normalized === uri.normalized;
      } catch {
        same = false;
      }
      if (same) {
        throw usageError(
          'E_DS_DUPLICATE',
          `set ${setid} already has ${other.destination} as id ${other.id}; nothing was added (remove id ${other.id} first to replace it)`,
        );
      }
    }
    const { id } = await store.dispatcher.add({ setid, destination, flags, priority, attrs, description });
    return (await store.dispatcher.get(id))!;
  });

  if (opts.json) {
    const reload = opts.reload ? await reloadAfterWrite(opts, `added id ${row.id}`) : undefined;
    printJson({ ...row, ...(reload ? { reload } : {}) });
    return;
  }
  printLine(`added ${describeRow(row)}`);
  if (uri.parsed.hostType === 'name') printLine(`note: ${uri.parsed.host} is resolved by the proxy when it reloads (RFC 3263)`);
  if (opts.reload) printLine(describeReload(await reloadAfterWrite(opts, `added id ${row.id}`)));
}

interface RmOptions extends DbOption, ControlOption, JsonOption {
  reload?: boolean;
}

async function rmCommand(idText: string, opts: RmOptions): Promise<void> {
  const id = parseId(idText);
  const row = await withStore(opts, (store) => store.dispatcher.remove(id));
  if (row === null) {
    throw new SipctlError('E_DS_NOT_FOUND', `no destination has id ${id}; nothing removed (see 'sipctl dispatcher list')`);
  }
  if (opts.json) {
    const reload = opts.reload ? await reloadAfterWrite(opts, `removed id ${id}`) : undefined;
    printJson({ removed: row, ...(reload ? { reload } : {}) });
    return;
  }
  printLine(`removed ${describeRow(row)}`);
  if (opts.reload) printLine(describeReload(await reloadAfterWrite(opts, `removed id ${id}`)));
}

interface ListOptions extends DbOption, JsonOption {
  set?: string;
}

async function listCommand(opts: ListOptions): Promise<void> {
  const setid = opts.set === undefined ? undefined : parseSetid(opts.set);
  const rows = await withStore(opts, (store) => store.dispatcher.list(setid));
  if (opts.json) {
    printJson({ total: rows.length, destinations: rows });
    return;
  }
  if (rows.length === 0) {
    printLine(setid === undefined ? 'no destinations' : `no destinations in set ${setid}`);
    return;
  }
  printTable(
    ['id', 'setid', 'destination', 'flags', 'priority', 'attrs', 'description'],
    rows.map((r): CellValue[] => [r.id, r.setid, r.destination, r.flags, r.priority, r.attrs, r.description]),
    { align: ['right', 'right', 'left', 'right', 'right', 'left', 'left'] },
  );
  printLine(`${plural(rows.length, 'destination', 'destinations')}${setid === undefined ? '' : ` in set ${setid}`}`);
}

async function reloadCommand(opts: ControlOption & JsonOption): Promise<void> {
  const result = await requestReload(resolveControlPath(opts.control));
  if (opts.json) {
    printJson(result);
    return;
  }
  if (result.sets.length > 0) {
    printTable(['setid', 'destinations', 'active'], result.sets.map((s) => [s.setid, s.count, s.active]), {
      align: ['right', 'right', 'right'],
    });
  }
  printLine(describeReload(result));
}

function lastProbeText(d: DumpDestination): string {
  const p = d.lastProbe;
  if (p === null || p === undefined) return '-';
  const what = p.status !== undefined ? String(p.status) : (p.reason ?? 'failed');
  const latency = p.latencyMs !== undefined ? ` ${p.latencyMs} ms` : '';
  return `${p.ok ? 'ok' : 'FAIL'} ${what}${latency}`;
}

/** `12 / 10.5` (last / moving average, ms); '-' before any answer. Older proxies send no such field. */
function probeLatencyText(d: DumpDestination): string {
  const l = d.probeLatencyMs;
  if (l === null || l === undefined) return '-';
  return `${l.last === null ? '-' : l.last} / ${l.avg}`;
}

async function dumpCommand(opts: ControlOption & JsonOption): Promise<void> {
  const dump = await requestDump(resolveControlPath(opts.control));
  if (opts.json) {
    printJson(dump);
    return;
  }
  const rows: CellValue[][] = [];
  let total = 0;
  for (const s of dump.sets) {
    for (const d of s.destinations) {
      total++;
      rows.push([
        s.setid,
        d.uri,
        `${d.state} (${d.flags})`,
        d.priority,
        d.requestsSent,
        d.requestsLastMinute ?? '-',
        lastProbeText(d),
        probeLatencyText(d),
        d.probeFailures ?? '-',
        d.timeouts ?? '-',
        d.failovers ?? '-',
        d.activeCalls ?? '-',
        d.targets.map(targetText).join(' ') || '-',
        d.stateReason,
      ]);
    }
  }
  if (total === 0) {
    printLine('the proxy holds no destination sets (every dispatched request will be answered 503)');
    return;
  }
  printTable(
    ['set', 'destination', 'state', 'priority', 'requests', 'last min', 'last probe', 'probe ms last / avg', 'probe fails', 'timeouts', 'failovers', 'calls', 'targets', 'why'],
    rows,
    { align: ['right', 'left', 'left', 'right', 'right', 'right', 'left', 'right', 'right', 'right', 'right', 'right', 'left', 'left'] },
  );
  printLine(`the proxy holds ${plural(total, 'destination', 'destinations')} in ${plural(dump.sets.length, 'set', 'sets')}`);
}

function setStateText(state: string, setid: number, uri: string, changed: number): string {
  const which = uri === 'all' ? `all destinations of set ${setid}` : `${uri} in set ${setid}`;
  return changed === 0 ? `${which}: already ${state}, nothing changed` : `${which}: ${plural(changed, 'destination', 'destinations')} now ${state}`;
}

async function setStateCommand(
  stateText: string,
  setidText: string,
  uriText: string,
  opts: ControlOption & JsonOption & ClusterOption,
): Promise<void> {
  const state = parseState(stateText);
  const setid = parseSetid(setidText);
  const uri = uriText.trim();
  if (uri !== 'all') parseDestinationUri(uri);
  const cmd = CONTROL_COMMANDS.dispatcherSetState;
  if (opts.cluster) {
    // Every node's own sets: each answers {changed} as its control socket would.
    await runClusterCommand(opts, 'dispatcher set-state', cmd, { state, setid, uri }, { state, setid, uri }, (r) =>
      setStateText(state, setid, uri, typeof r.changed === 'number' ? r.changed : 0),
    );
    return;
  }
  const path = resolveControlPath(opts.control);
  const result = await controlRequest(path, cmd, { state, setid, uri });
  const { changed } = shape(path, cmd, result, (r) => ({ changed: num(r, 'changed') }));
  if (opts.json) {
    printJson({ state, setid, uri, changed });
    return;
  }
  printLine(setStateText(state, setid, uri, changed));
}

// ---- registration --------------------------------------------------------------------------

export function registerDispatcher(program: Command): void {
  const dispatcher = program
    .command('dispatcher')
    .description('manage destination sets (load balancing): add, rm, list, reload, dump, set-state');

  dispatcher
    .command('add')
    .description('add a destination to a set (Kamailio dispatcher table row)')
    .argument('<setid>', 'set id (a non-negative integer)')
    .argument('<uri>', 'destination SIP URI, e.g. sip:10.0.0.5:5060 or sip:pbx.example.com;transport=tcp')
    .option('--priority <n>', 'integer; higher is tried first by the priority algorithm (default 0)')
    .option('--attrs <s>', 'attributes: weight=N;rweight=N;duid=S;maxload=N;ping_from=URI')
    .option('--flags <n>', 'initial state bits: 1 inactive, 2 trying, 4 disabled, 8 probing (default 0)')
    .option('--description <s>', 'free text')
    .option('--reload', 'ask the running proxy to reload the sets afterwards')
    .option('--json', 'print the new row as JSON')
    .option('--db <path|url>', DB_HELP)
    .option('--control <path>', CONTROL_HELP)
    .action(addCommand);

  dispatcher
    .command('rm')
    .description('remove a destination by id')
    .argument('<id>', "destination id (see 'sipctl dispatcher list')")
    .option('--reload', 'ask the running proxy to reload the sets afterwards')
    .option('--json', 'print the removed row as JSON')
    .option('--db <path|url>', DB_HELP)
    .option('--control <path>', CONTROL_HELP)
    .action(rmCommand);

  dispatcher
    .command('list')
    .description('list the destinations in the database')
    .option('--set <n>', 'only this set')
    .option('--json', 'print {total, destinations: [{id, setid, destination, flags, priority, attrs, description}]}')
    .option('--db <path|url>', DB_HELP)
    .action(listCommand);

  dispatcher
    .command('reload')
    .description('make the running proxy load the sets from the database (states of kept destinations survive)')
    .option('--json', 'print {sets: [{setid, count, active}], total, ms}')
    .option('--control <path>', CONTROL_HELP)
    .option('--db <path>', DB_IGNORED_HELP)
    .action(reloadCommand);

  dispatcher
    .command('dump')
    .description('show what the running proxy holds: states, requests sent (total, last minute), probes (last, latency last / average, failures), resolved targets')
    .option('--json', 'print {sets: [{setid, destinations: [...]}]}')
    .option('--control <path>', CONTROL_HELP)
    .option('--db <path>', DB_IGNORED_HELP)
    .action(dumpCommand);

  dispatcher
    .command('set-state')
    .description('set destinations of the running proxy active, inactive, disabled or probing')
    .argument('<state>', DESTINATION_STATES.join('|'))
    .argument('<setid>', 'set id')
    .argument('<uri|all>', "a destination URI of the set, or 'all'")
    .option('--json', 'print {state, setid, uri, changed} ({state, setid, uri, nodes: [{node, ok, result}]} with --cluster)')
    .option('--cluster', CLUSTER_HELP)
    .option('--timeout <s>', TIMEOUT_HELP)
    .option('--control <path>', CONTROL_HELP)
    .option('--db <path|url>', CLUSTER_DB_HELP)
    .action(setStateCommand);
}
