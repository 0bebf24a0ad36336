/**
 * Reading the `address` table into an AddressRowCollector, fast.
 *
 * Fetching a million rows one JS array each costs more than building the table from them
 * (a million arrays and strings to allocate and collect). So rows are fetched in chunks of
 * CHUNK, each as one string SQLite builds with group_concat — fields separated by US (0x1f),
 * rows by RS (0x1e), which never occur in a valid row — and parsed here in one pass without
 * cutting substrings; tags, usually few, come from a second query. A chunk that does not parse
 * cleanly (a NULL, a real number, a separator inside ip_addr) is fetched again row by row, so
 * that the collector names the bad row exactly as it would have.
 */
import type Database from 'better-sqlite3';
import { SipctlError } from '../errors.js';
import type { AddressRowCollector } from './build.js';

const CHUNK = 65536;
const US = 0x1f;
const RS = 0x1e;

export function readAddressRows(db: Database.Database, collector: AddressRowCollector): void {
  const tags = new Map<number, unknown>();
  for (const [id, tag] of db.prepare('SELECT id, tag FROM address WHERE tag IS NOT NULL').raw(true).iterate() as Iterable<[unknown, unknown]>) {
    if (typeof id === 'number') tags.set(id, tag);
  }
  const packed = db
    .prepare(
      `SELECT count(*), max(id), group_concat(id || char(31) || grp || char(31) || ip_addr || char(31) || mask || char(31) || port, char(30))
         FROM (SELECT id, grp, ip_addr, mask, port FROM address WHERE id > ? ORDER BY id LIMIT ${CHUNK})`,
    )
    .raw(true);
  const rowByRow = db.prepare(`SELECT id, grp, ip_addr, mask, port, tag FROM address WHERE id > ? ORDER BY id LIMIT ${CHUNK}`).raw(true);

  let after = Number.MIN_SAFE_INTEGER;
  for (;;) {
    const [count, maxId, text] = packed.get(after) as [number, number | null, string | null];
    if (count === 0 || maxId === null) break;
    if (typeof text !== 'string' || !addPacked(text, count, tags, collector, false)) {
      for (const r of rowByRow.iterate(after) as Iterable<unknown[]>) collector.add(r[0], r[1], r[2], r[3], r[4], r[5]);
    } else {
      addPacked(text, count, tags, collector, true);
    }
    if (!Number.isSafeInteger(maxId)) {
      throw new SipctlError('E_ACL_BAD_ROW', `address row id ${String(maxId)}: id is not an integer`);
    }
    after = maxId;
  }
}

/**
 * Walks one packed chunk: with `add` false, only checks that it holds `count` rows of five
 * fields with integer id, grp, mask and port; with `add` true, adds them.
 */
function addPacked(s: string, count: number, tags: Map<number, unknown>, collector: AddressRowCollector, add: boolean): boolean {
  const end = s.length;
  let rows = 0;
  let i = 0;
  while (i <= end) {
    const id = readInteger(s, i);
    if (id === null) return false;
    i = integerEnd + 1;
    const grp = readInteger(s, i);
    if (grp === null) return false;
    const ipStart = integerEnd + 1;
    let ipEnd = ipStart;
    while (ipEnd < end && s.charCodeAt(ipEnd) !== US && s.charCodeAt(ipEnd) !== RS) ipEnd++;
    if (s.charCodeAt(ipEnd) !== US) return false;
    const mask = readInteger(s, ipEnd + 1);
    if (mask === null) return false;
    const port = readInteger(s, integerEnd + 1);
    if (port === null || (integerEnd < end && s.charCodeAt(integerEnd) !== RS)) return false;
    if (add) {
      const tag = tags.get(id);
      if (tag === undefined || typeof tag === 'string') collector.addChecked(id, grp, s, ipStart, ipEnd, mask, port, tag ?? null);
      else collector.add(id, grp, s.slice(ipStart, ipEnd), mask, port, tag);
    }
    rows++;
    i = integerEnd + 1;
  }
  return rows === count;
}

// Where the last readInteger stopped (the separator after the digits).
let integerEnd = 0;

/** A decimal integer (optional '-') at s[at...] up to US, RS or the end; null when it is not one. */
function readInteger(s: string, at: number): number | null {
  let i = at;
  const negative = s.charCodeAt(i) === 0x2d;
  if (negative) i++;
  const first = i;
  let value = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === US || c === RS) break;
    if (c < 0x30 || c > 0x39) return null;
    value = value * 10 + (c - 0x30);
  }
  if (i === first || i - first > 15) return null;
  integerEnd = i;
  return negative ? -value : value;
}
