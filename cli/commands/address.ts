/**
 * `sipctl address ...` — the address table (IP access control), what `kamctl address` and
 * `kamcmd permissions.*` are for Kamailio, with the rough edges filed off: input is
 * validated before anything is written (one line, exit 2), duplicates are refused instead of
 * stored twice, host bits are cleared and reported, and every listing has --json.
 *
 * Writes go to the database; the running proxy sees them after `address reload` (or
 * `--reload` on the write), as with Kamailio's `kamcmd permissions.addressReload`.
 *
 * Exit codes: 0 done; 1 failure (nothing matched to remove, proxy unreachable, `test`
 * found no match); 2 bad input or a duplicate entry (nothing written).
 */
import type { Command } from 'commander';
import { validateAddressEntry } from '../../src/acl/validate.js';
import { resolveControlPath } from '../../src/config/paths.js';
import {
  requestAddressDump,
  requestAddressReload,
  requestAddressTest,
  type AddressEntryView,
  type AddressReloadResult,
  type GroupCount,
} from '../../src/control/index.js';
import { SipctlError, usageError } from '../../src/errors.js';
import type { AddressRow, StoreTables } from '../../src/store/index.js';
import {
  formatNetwork,
  formatPort,
  plural,
  printJson,
  printJsonList,
  printLine,
  printTable,
  type CellValue,
} from '../output.js';
import { CONTROL_HELP, DB_HELP, withStore, type ControlOption, type DbOption, type JsonOption } from '../common.js';

// Taken by the proxy-facing subcommands too, so a script can pass the same options to every
// `sipctl address` call; the proxy itself reads the database it was started with.
const DB_IGNORED_HELP = 'accepted like on every address command; the proxy reads the database it was started with';
const DEFAULT_TABLE_LIMIT = 1000;

// ---- helpers -------------------------------------------------------------------------------

/** The group of `--group N`, checked by the same rules as an entry's group. */
function parseGroupOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  return validateAddressEntry({ grp: value, ip: '0.0.0.0' }).grp;
}

/** `--limit N`: how many rows a table shows (0 = all). */
function parseLimit(value: string | undefined): number {
  if (value === undefined) return DEFAULT_TABLE_LIMIT;
  const text = value.trim();
  if (!/^[0-9]+$/.test(text)) {
    throw usageError('E_CLI_BAD_LIMIT', `--limit ${JSON.stringify(value)} is not a non-negative integer (0 shows all rows)`);
  }
  const n = Number(text);
  return n === 0 ? Infinity : n;
}

function parseId(value: string): number {
  const text = value.trim();
  const id = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(id) || id < 1) {
    throw usageError(
      'E_ADDRESS_BAD_ID',
      `${JSON.stringify(value)} is not an entry id (a positive integer, see 'sipctl address list'); ` +
        `to remove by address give <grp> <ip> [mask] [port]`,
    );
  }
  return id;
}

/** The JSON shape of one entry, the same for the database (`list`) and the proxy (`dump`). */
function entryView(row: AddressRow): AddressEntryView {
  return { id: row.id, grp: row.grp, ipAddr: row.ip_addr, mask: row.mask, port: row.port, tag: row.tag };
}

/** `id 7: group 250, 10.8.203.139/32, port 5060, tag TestServer` */
function describeEntry(e: AddressEntryView): string {
  const port = e.port === 0 ? 'any port' : `port ${e.port}`;
  const tag = e.tag === null || e.tag === '' ? '' : `, tag ${e.tag}`;
  return `id ${e.id}: group ${e.grp}, ${formatNetwork(e.ipAddr, e.mask)}, ${port}${tag}`;
}

const ENTRY_HEAD = ['id', 'grp', 'ip_addr', 'mask', 'port', 'tag'] as const;
const ENTRY_ALIGN = ['right', 'right', 'left', 'right', 'right', 'left'] as const;

function entryCells(e: AddressEntryView): CellValue[] {
  return [e.id, e.grp, e.ipAddr, e.mask, formatPort(e.port), e.tag];
}

function printGroupCounts(groups: readonly GroupCount[]): void {
  if (groups.length === 0) return;
  printTable(['grp', 'entries'], groups.map((g) => [g.grp, g.count]), { align: ['right', 'right'] });
}

/** Print up to `limit` entries as a table, then say how many were left out. */
async function printEntries(entries: Iterable<AddressEntryView> | AsyncIterable<AddressEntryView>, total: number, limit: number): Promise<void> {
  const shown: CellValue[][] = [];
  for await (const e of entries) {
    if (shown.length >= limit) break;
    shown.push(entryCells(e));
  }
  if (shown.length > 0) printTable(ENTRY_HEAD, shown, { align: ENTRY_ALIGN });
  if (shown.length < total) {
    printLine(`… ${plural(total - shown.length, 'more entry', 'more entries')} not shown (--limit 0 shows all, --json prints all)`);
  }
}

function describeReload(r: AddressReloadResult): string {
  return `reloaded ${plural(r.total, 'entry', 'entries')} in ${plural(r.groups.length, 'group', 'groups')} (${r.ms.toFixed(1)} ms)`;
}

/**
 * After a write with --reload: ask the proxy to reload. The write is already committed; if
 * the reload cannot happen the person must know the database and the proxy now differ.
 */
async function reloadAfterWrite(opts: ControlOption, done: string): Promise<AddressReloadResult> {
  try {
    return await requestAddressReload(resolveControlPath(opts.control));
  } catch (err) {
    if (!(err instanceof SipctlError)) throw err;
    throw new SipctlError(err.code, `${done} (saved in the database), but the proxy was not reloaded: ${err.message}`);
  }
}

/**
 * --json on a write: one document, with `reload` added when --reload succeeded. When the
 * reload fails the document is still printed (without `reload`) before the error, so a
 * script learns what was written either way.
 */
async function printJsonWithReload(written: Record<string, unknown>, opts: ControlOption & { reload?: boolean }, done: string): Promise<void> {
  if (!opts.reload) {
    printJson(written);
    return;
  }
  let reload: AddressReloadResult;
  try {
    reload = await reloadAfterWrite(opts, done);
  } catch (err) {
    printJson(written);
    throw err;
  }
  printJson({ ...written, reload });
}

// ---- commands ------------------------------------------------------------------------------

interface AddOptions extends DbOption, ControlOption, JsonOption {
  reload?: boolean;
}

async function addCommand(
  grp: string,
  ip: string,
  mask: string | undefined,
  port: string | undefined,
  tag: string | undefined,
  opts: AddOptions,
): Promise<void> {
  // Validate before opening the database: bad input never creates or touches a file.
  const entry = validateAddressEntry({ grp, ip, mask, port, tag: tag ?? null });
  const { id } = await withStore(opts, (store) => store.address.add(entry));
  const added: AddressEntryView = { id, grp: entry.grp, ipAddr: entry.ipAddr, mask: entry.mask, port: entry.port, tag: entry.tag };
  if (entry.note !== undefined) process.stderr.write(`sipctl: note: ${entry.note}\n`);

  const written = { ...added, note: entry.note ?? null };
  if (opts.json) {
    await printJsonWithReload(written, opts, `added id ${id}`);
    return;
  }
  printLine(`added ${describeEntry(added)}`);
  if (opts.reload) printLine(describeReload(await reloadAfterWrite(opts, `added id ${id}`)));
}

interface RmOptions extends DbOption, ControlOption, JsonOption {
  reload?: boolean;
}

async function rmCommand(
  idOrGroup: string,
  ip: string | undefined,
  mask: string | undefined,
  port: string | undefined,
  opts: RmOptions,
): Promise<void> {
  let removed: AddressEntryView[];
  let what: string;
  if (ip === undefined) {
    const id = parseId(idOrGroup);
    const row = await withStore(opts, (store) => store.address.remove(id));
    if (row === null) {
      throw new SipctlError('E_ADDRESS_NOT_FOUND', `no address entry has id ${id}; nothing removed (see 'sipctl address list')`);
    }
    removed = [entryView(row)];
    what = `removed id ${id}`;
  } else {
    // Normalise the way `add` did, so `2001:DB8::1` finds `2001:db8::1`; mask and port only
    // narrow the match when given (like `kamctl address rm <grp> <ipaddr>` otherwise).
    const e = validateAddressEntry({ grp: idOrGroup, ip, mask, port });
    const maskGiven = mask !== undefined || ip.includes('/');
    const rows = await withStore(opts, (store) =>
      store.address.removeMatchingRows(e.grp, e.ipAddr, maskGiven ? e.mask : undefined, port === undefined ? undefined : e.port),
    );
    const target = `${maskGiven ? formatNetwork(e.ipAddr, e.mask) : e.ipAddr}${port === undefined ? '' : ` port ${e.port}`}`;
    if (rows.length === 0) {
      throw new SipctlError(
        'E_ADDRESS_NOT_FOUND',
        `no entry in group ${e.grp} matches ${target}; nothing removed (see 'sipctl address list --group ${e.grp}')`,
      );
    }
    removed = rows.map(entryView);
    what = `removed ${plural(rows.length, 'entry', 'entries')}`;
  }

  if (opts.json) {
    await printJsonWithReload({ removed }, opts, what);
    return;
  }
  for (const e of removed) printLine(`removed ${describeEntry(e)}`);
  if (opts.reload) printLine(describeReload(await reloadAfterWrite(opts, what)));
}

interface ListOptions extends DbOption, JsonOption {
  group?: string;
  limit?: string;
}

async function listCommand(opts: ListOptions): Promise<void> {
  const grp = parseGroupOption(opts.group);
  const limit = parseLimit(opts.limit);
  await withStore(opts, (store) =>
    // One read snapshot: the total and the rows come from the same moment even while
    // another sipctl writes.
    store.snapshot((tables) => listFrom(tables, grp, limit, opts.json === true)),
  );
}

async function listFrom(tables: StoreTables, grp: number | undefined, limit: number, json: boolean): Promise<void> {
  const total = await tables.address.count(grp);
  // The cursor is opened only where it is read to the end (or closed by `break`): an open
  // cursor keeps the connection busy and close() would refuse.
  if (json) {
    await printJsonList({ total }, 'entries', map(tables.address.iterate(grp), entryView));
    return;
  }
  if (total === 0) {
    printLine(grp === undefined ? 'no address entries' : `no address entries in group ${grp}`);
    return;
  }
  await printEntries(map(tables.address.iterate(grp), entryView), total, limit);
  printLine(`${plural(total, 'entry', 'entries')}${grp === undefined ? '' : ` in group ${grp}`}`);
}

async function* map<A, B>(items: AsyncIterable<A>, fn: (a: A) => B): AsyncGenerator<B> {
  for await (const a of items) yield fn(a);
}

async function reloadCommand(opts: ControlOption & JsonOption): Promise<void> {
  const result = await requestAddressReload(resolveControlPath(opts.control));
  if (opts.json) {
    printJson(result);
    return;
  }
  printGroupCounts(result.groups);
  printLine(describeReload(result));
}

interface DumpOptions extends ControlOption, JsonOption {
  limit?: string;
}

async function dumpCommand(opts: DumpOptions): Promise<void> {
  const limit = parseLimit(opts.limit);
  const result = await requestAddressDump(resolveControlPath(opts.control));
  if (opts.json) {
    await printJsonList({ total: result.total, groups: result.groups }, 'entries', result.entries);
    return;
  }
  if (result.total === 0 && result.entries.length === 0) {
    printLine('the proxy holds no address entries (every request will be refused with 401)');
    return;
  }
  printGroupCounts(result.groups);
  await printEntries(result.entries, Math.max(result.total, result.entries.length), limit);
  printLine(`the proxy holds ${plural(result.total, 'entry', 'entries')} in ${plural(result.groups.length, 'group', 'groups')}`);
}

interface TestOptions extends ControlOption, JsonOption {
  group?: string;
}

async function testCommand(ip: string, port: string | undefined, opts: TestOptions): Promise<void> {
  const group = parseGroupOption(opts.group);
  if (ip.includes('/')) {
    throw usageError('E_ACL_BAD_ADDRESS', `address test takes one source address, not a network: ${JSON.stringify(ip)}`);
  }
  // Reuse the entry rules for the address and port (brackets, canonical IPv6 text, 0-65535).
  const probe = validateAddressEntry({ grp: group ?? 0, ip, port });
  const { match } = await requestAddressTest(resolveControlPath(opts.control), {
    ip: probe.ipAddr,
    port: probe.port,
    ...(group === undefined ? {} : { group }),
  });
  if (match === null) process.exitCode = 1;
  if (opts.json) {
    printJson({ ip: probe.ipAddr, port: probe.port, group: group ?? null, match });
    return;
  }
  const source = `${probe.ipAddr}${probe.port === 0 ? '' : ` port ${probe.port}`}`;
  const where = group === undefined ? 'any group' : `group ${group}`;
  printLine(match === null ? `no match for ${source} in ${where}` : `match for ${source}: ${describeEntry(match)}`);
}

// ---- registration --------------------------------------------------------------------------

export function registerAddress(program: Command): void {
  const address = program
    .command('address')
    .description('manage the address table (IP access control): add, rm, list, reload, dump, test');

  address
    .command('add')
    .description("add an entry: requests from this network (and port) are admitted by group <grp>'s checks")
    .argument('<grp>', 'group number (0-4294967295)')
    .argument('<ip>', 'IPv4 or IPv6 address, or a network as ADDR/LEN')
    .argument('[mask]', 'prefix length (default 32 for IPv4, 128 for IPv6)')
    .argument('[port]', 'source port, 0 = any (default 0)')
    .argument('[tag]', 'free text returned on a match (e.g. the peer name)')
    .option('--reload', 'ask the running proxy to reload the table afterwards')
    .option('--json', 'print the new entry as JSON')
    .option('--db <path|url>', DB_HELP)
    .option('--control <path>', CONTROL_HELP)
    .action(addCommand);

  address
    .command('rm')
    .description('remove an entry by id, or all entries of a group for an address (narrowed by mask / port)')
    .argument('<id|grp>', 'entry id (alone), or the group when an address follows')
    .argument('[ip]', 'address or ADDR/LEN network to remove from the group')
    .argument('[mask]', 'only entries with this prefix length')
    .argument('[port]', 'only entries with this port')
    .option('--reload', 'ask the running proxy to reload the table afterwards')
    .option('--json', 'print the removed entries as JSON')
    .option('--db <path|url>', DB_HELP)
    .option('--control <path>', CONTROL_HELP)
    .action(rmCommand);

  address
    .command('list')
    .description('list the entries in the database')
    .option('--group <n>', 'only this group')
    .option('--limit <n>', `show at most this many rows in the table, 0 = all (default ${DEFAULT_TABLE_LIMIT})`)
    .option('--json', 'print {total, entries: [{id, grp, ipAddr, mask, port, tag}]} (all entries)')
    .option('--db <path|url>', DB_HELP)
    .action(listCommand);

  address
    .command('reload')
    .description('make the running proxy load the address table from the database')
    .option('--json', 'print {groups: [{grp, count}], total, ms}')
    .option('--control <path>', CONTROL_HELP)
    .option('--db <path>', DB_IGNORED_HELP)
    .action(reloadCommand);

  address
    .command('dump')
    .description('show what the running proxy holds in memory (groups, entries, counts)')
    .option('--limit <n>', `show at most this many entries in the table, 0 = all (default ${DEFAULT_TABLE_LIMIT})`)
    .option('--json', 'print {total, groups, entries} (all entries)')
    .option('--control <path>', CONTROL_HELP)
    .option('--db <path>', DB_IGNORED_HELP)
    .action(dumpCommand);

  address
    .command('test')
    .description('which entry the running proxy matches for a source address (exit 1 when none)')
    .argument('<ip>', 'source address')
    .argument('[port]', 'source port (default 0, which only entries for any port match)')
    .option('--group <n>', 'only entries of this group (default: any group)')
    .option('--json', 'print {ip, port, group, match}')
    .option('--control <path>', CONTROL_HELP)
    .option('--db <path>', DB_IGNORED_HELP)
    .action(testCommand);
}
