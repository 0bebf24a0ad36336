/**
 * The commands a sipctl proxy answers on its control socket, with their argument and result
 * shapes. The proxy registers handlers returning these; the CLI calls them through the
 * typed wrappers below, which check the shape of what came back (a proxy of another sipctl
 * version could answer differently) so the CLI never prints `undefined`.
 */
import { SipctlError } from '../errors.js';
import type { FloodListResult, FloodSourceView, FloodUnblockResult } from '../flood/guard.js';
import { controlRequest, type ControlRequestOptions } from './client.js';
import { isPlainObject } from './protocol.js';

export const CONTROL_COMMANDS = {
  addressReload: 'address.reload',
  addressDump: 'address.dump',
  addressTest: 'address.test',
  dispatcherReload: 'dispatcher.reload',
  dispatcherDump: 'dispatcher.dump',
  dispatcherSetState: 'dispatcher.setState',
  status: 'status',
  floodList: 'flood.list',
  floodUnblock: 'flood.unblock',
  routeReload: 'route.reload',
} as const;

/** `route.reload` → the script now in use. */
export interface RouteReloadResult {
  file: string;
  /** Loads of a route in this proxy process so far (1: the one it started with). */
  version: number;
  ms: number;
}

export type { FloodListResult, FloodSourceView, FloodUnblockResult } from '../flood/guard.js';

/** `flood.list` → the guard's list, or `{enabled: false}` when the proxy runs without flood control. */
export type FloodListReply = FloodListResult | { enabled: false };

export interface GroupCount {
  grp: number;
  count: number;
}

/** One address entry as the running proxy holds it (camelCase, unlike the DB rows). */
export interface AddressEntryView {
  id: number;
  grp: number;
  ipAddr: string;
  mask: number;
  port: number;
  tag: string | null;
}

/** `address.reload` → */
export interface AddressReloadResult {
  groups: GroupCount[];
  total: number;
  ms: number;
}

/** `address.dump` → */
export interface AddressDumpResult {
  groups: GroupCount[];
  total: number;
  entries: AddressEntryView[];
}

/**
 * `address.test` args: a source as the proxy would see it. The CLI sends `port` 0 when the
 * person gave none; the table treats it like any other source port, so only entries with
 * port 0 (any) can match it.
 */
export interface AddressTestArgs {
  ip: string;
  port: number;
  group?: number;
}

/** `address.test` → */
export interface AddressTestResult {
  match: AddressEntryView | null;
}

/** `status` → */
export interface StatusResult {
  pid: number;
  uptimeS: number;
  listeners: string[];
}

// ---- shape checks ------------------------------------------------------------------------

class ShapeError extends Error {}

function num(o: Record<string, unknown>, key: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ShapeError(`"${key}" is not a number`);
  return v;
}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (!isPlainObject(v)) throw new ShapeError(`${what} is not an object`);
  return v;
}

function arr(o: Record<string, unknown>, key: string): unknown[] {
  const v = o[key];
  if (!Array.isArray(v)) throw new ShapeError(`"${key}" is not a list`);
  return v;
}

function groupCounts(o: Record<string, unknown>): GroupCount[] {
  return arr(o, 'groups').map((g) => {
    const go = obj(g, 'a group count');
    return { grp: num(go, 'grp'), count: num(go, 'count') };
  });
}

function str(o: Record<string, unknown>, key: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw new ShapeError(`"${key}" is not a string`);
  return v;
}

function strOrNull(o: Record<string, unknown>, key: string): string | null {
  const v = o[key] ?? null;
  if (v !== null && typeof v !== 'string') throw new ShapeError(`"${key}" is not a string or null`);
  return v;
}

const FLOOD_STATES = ['blocked', 'hot', 'exempt'] as const;

function floodSource(v: unknown): FloodSourceView {
  const s = obj(v, 'a source');
  const state = str(s, 'state');
  if (!(FLOOD_STATES as readonly string[]).includes(state)) throw new ShapeError(`"state" ${JSON.stringify(state)} is unknown`);
  return {
    address: str(s, 'address'),
    state: state as FloodSourceView['state'],
    count: num(s, 'count'),
    windowStart: str(s, 'windowStart'),
    blockedSince: strOrNull(s, 'blockedSince'),
    blockedUntil: strOrNull(s, 'blockedUntil'),
    dropped: num(s, 'dropped'),
    lastSeen: str(s, 'lastSeen'),
  };
}

function entryView(v: unknown): AddressEntryView {
  const e = obj(v, 'an entry');
  const ipAddr = e.ipAddr;
  if (typeof ipAddr !== 'string') throw new ShapeError('"ipAddr" is not a string');
  const tag = e.tag ?? null;
  if (tag !== null && typeof tag !== 'string') throw new ShapeError('"tag" is not a string or null');
  return { id: num(e, 'id'), grp: num(e, 'grp'), ipAddr, mask: num(e, 'mask'), port: num(e, 'port'), tag };
}

function checked<T>(path: string, cmd: string, result: unknown, read: (r: Record<string, unknown>) => T): T {
  try {
    return read(obj(result, 'the result'));
  } catch (err) {
    if (!(err instanceof ShapeError)) throw err;
    throw new SipctlError(
      'E_CONTROL_BAD_REPLY',
      `the proxy on ${path} answered '${cmd}' in a shape this sipctl does not know (${err.message}); are both the same version?`,
    );
  }
}

// ---- typed calls ---------------------------------------------------------------------------

export async function requestAddressReload(path: string, opts?: ControlRequestOptions): Promise<AddressReloadResult> {
  const cmd = CONTROL_COMMANDS.addressReload;
  const result = await controlRequest(path, cmd, {}, opts);
  return checked(path, cmd, result, (r) => ({ groups: groupCounts(r), total: num(r, 'total'), ms: num(r, 'ms') }));
}

export async function requestAddressDump(path: string, opts?: ControlRequestOptions): Promise<AddressDumpResult> {
  const cmd = CONTROL_COMMANDS.addressDump;
  const result = await controlRequest(path, cmd, {}, opts);
  return checked(path, cmd, result, (r) => ({
    groups: groupCounts(r),
    total: num(r, 'total'),
    entries: arr(r, 'entries').map(entryView),
  }));
}

export async function requestAddressTest(
  path: string,
  args: AddressTestArgs,
  opts?: ControlRequestOptions,
): Promise<AddressTestResult> {
  const cmd = CONTROL_COMMANDS.addressTest;
  const wire: Record<string, unknown> = { ip: args.ip, port: args.port };
  if (args.group !== undefined) wire.group = args.group;
  const result = await controlRequest(path, cmd, wire, opts);
  return checked(path, cmd, result, (r) => ({ match: r.match === null || r.match === undefined ? null : entryView(r.match) }));
}

export async function requestStatus(path: string, opts?: ControlRequestOptions): Promise<StatusResult> {
  const cmd = CONTROL_COMMANDS.status;
  const result = await controlRequest(path, cmd, {}, opts);
  return checked(path, cmd, result, (r) => {
    const listeners = arr(r, 'listeners');
    if (!listeners.every((l) => typeof l === 'string')) throw new ShapeError('"listeners" is not a list of strings');
    return { pid: num(r, 'pid'), uptimeS: num(r, 'uptimeS'), listeners: listeners as string[] };
  });
}

export async function requestFloodList(path: string, opts?: ControlRequestOptions): Promise<FloodListReply> {
  const cmd = CONTROL_COMMANDS.floodList;
  const result = await controlRequest(path, cmd, {}, opts);
  return checked(path, cmd, result, (r): FloodListReply => {
    if (r.enabled === false) return { enabled: false };
    if (r.enabled !== true) throw new ShapeError('"enabled" is not true or false');
    return {
      enabled: true,
      maxRequests: num(r, 'maxRequests'),
      windowS: num(r, 'windowS'),
      blockS: num(r, 'blockS'),
      tracked: num(r, 'tracked'),
      maxTracked: num(r, 'maxTracked'),
      blocked: num(r, 'blocked'),
      sources: arr(r, 'sources').map(floodSource),
      omitted: num(r, 'omitted'),
    };
  });
}

/** `ip` must already be a canonical address (see parseSourceAddress); the proxy checks it again. */
export async function requestFloodUnblock(path: string, ip: string, opts?: ControlRequestOptions): Promise<FloodUnblockResult> {
  const cmd = CONTROL_COMMANDS.floodUnblock;
  const result = await controlRequest(path, cmd, { ip }, opts);
  return checked(path, cmd, result, (r) => {
    if (typeof r.unblocked !== 'boolean') throw new ShapeError('"unblocked" is not true or false');
    return { address: str(r, 'address'), unblocked: r.unblocked, dropped: num(r, 'dropped'), blockedSince: strOrNull(r, 'blockedSince') };
  });
}

export async function requestRouteReload(path: string, opts?: ControlRequestOptions): Promise<RouteReloadResult> {
  const cmd = CONTROL_COMMANDS.routeReload;
  const result = await controlRequest(path, cmd, {}, opts);
  return checked(path, cmd, result, (r) => ({ file: str(r, 'file'), version: num(r, 'version'), ms: num(r, 'ms') }));
}
