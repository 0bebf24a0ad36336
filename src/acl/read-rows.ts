/**
 * Reading the `address` table into an AddressRowCollector, fast.
 *
 * Fetching a million rows one JS array each costs more than building the table from them
 * (a million arrays and strings to allocate and collect). So rows are fetched in chunks of
 * CHUNK, each as one string SQLite builds with group_concat — fields separated by US (0x1f),
 * rows by RS (0x1e), which never occur in a valid row — and parsed here in one pass without
 * cutting substrings; tags, usually few, come from a second query, in id order like the rows.
 * A chunk that does not parse cleanly (a NULL, a real number, a separator inside ip_addr) is
 * dropped and fetched again row by row, so that the collector names the bad row exactly as it
 * would have.
 */
import type Database from 'better-sqlite3';
import { SipctlError } from '../errors.js';
import type { AddressRowCollector } from './build.js';

const CHUNK = 65536;
const US = 0x1f;
const RS = 0x1e;

export function readAddressRows(db: Database.Database, collector: AddressRowCollector): void {
  const tagged = db.prepare('SELECT id, tag FROM address WHERE tag IS NOT NULL ORDER BY id').raw(true).all() as [unknown, unknown][];
  const tags = new TagCursor(tagged);
  const packed = db
    .prepare(
      `SELECT count(*), max(id), group_concat(id || char(31) || grp || char(31) || ip_addr || char(31) || mask || char(31) || port, char(30))
         FROM (SELECT id, grp, ip_addr, mask, port FROM address WHERE id > ? ORDER BY id LIMIT ${CHUNK})`,
    )
    .raw(true);
  const rowByRow = db.prepare(`SELECT id, grp, ip_addr, mask, port, tag FROM address WHERE id > ? ORDER BY id LIMIT ${CHUNK}`).raw(true);

  let after = Number.MIN_SAFE_INTEGER;
  for (;;) {
    const [count, maxId, text] = packed.get(after) as [number, unknown, string | null];
    if (count === 0) break;
    if (typeof maxId !== 'number' || !Number.isSafeInteger(maxId)) {
      throw new SipctlError('E_ACL_BAD_ROW', `address row id ${String(maxId)}: id is not an integer`);
    }
    const mark = collector.count;
    const tagMark = tags.at;
    if (typeof text !== 'string' || addPacked(text, tags, collector) !== count) {
      collector.truncate(mark);
      tags.at = tagMark;
      for (const r of rowByRow.iterate(after) as Iterable<unknown[]>) collector.add(r[0], r[1], r[2], r[3], r[4], r[5]);
    }
    after = maxId;
  }
}

/**
 * Adds `count` rows packed as the chunks above are, with their tags as [id, tag] pairs in id
 * order — what the PostgreSQL reader (src/store/pg-address-read.ts) fetches in one query.
 * Returns false, keeping none of them, when the text does not hold exactly `count` good rows.
 */
export function addPackedRows(text: string, count: number, tagged: [unknown, unknown][], collector: AddressRowCollector): boolean {
  const mark = collector.count;
  if (addPacked(text, new TagCursor(tagged), collector) === count) return true;
  collector.truncate(mark);
  return false;
}

/** The tags, sorted by id, walked in step with the rows. */
class TagCursor {
  at = 0;
  constructor(private readonly rows: [unknown, unknown][]) {}
  /** The tag of row `id` (null for none); ids must come in increasing order. */
  take(id: number): unknown {
    const rows = this.rows;
    while (this.at < rows.length && (rows[this.at][0] as number) < id) this.at++;
    return this.at < rows.length && rows[this.at][0] === id ? rows[this.at][1] : null;
  }
}

/**
 * Adds the rows of one packed chunk; returns how many, or -1 as soon as one is not five fields
 * with integer id, grp, mask and port (the caller then drops the chunk's rows).
 */
function addPacked(s: string, tags: TagCursor, collector: AddressRowCollector): number {
  const end = s.length;
  let rows = 0;
  let i = 0;
  while (i < end) {
    // id, grp: integers up to US
    let negative = s.charCodeAt(i) === 0x2d;
    let from = negative ? i + 1 : i;
    let id = 0;
    for (i = from; i < end; i++) {
      const c = s.charCodeAt(i) - 0x30;
      if (c < 0 || c > 9) break;
      id = id * 10 + c;
    }
    if (i === from || i - from > 15 || s.charCodeAt(i) !== US) return -1;
    if (negative) id = -id;
    from = ++i;
    let grp = 0;
    for (; i < end; i++) {
      const c = s.charCodeAt(i) - 0x30;
      if (c < 0 || c > 9) break;
      grp = grp * 10 + c;
    }
    if (i === from || i - from > 15 || s.charCodeAt(i) !== US) return -1;
    // ip_addr up to US
    const ipStart = ++i;
    while (i < end && s.charCodeAt(i) !== US && s.charCodeAt(i) !== RS) i++;
    if (s.charCodeAt(i) !== US) return -1;
    const ipEnd = i++;
    // mask, port: small integers; port ends the row
    negative = s.charCodeAt(i) === 0x2d;
    from = negative ? i + 1 : i;
    let mask = 0;
    for (i = from; i < end; i++) {
      const c = s.charCodeAt(i) - 0x30;
      if (c < 0 || c > 9) break;
      mask = mask * 10 + c;
    }
    if (i === from || i - from > 15 || s.charCodeAt(i) !== US) return -1;
    if (negative) mask = -mask;
    negative = s.charCodeAt(++i) === 0x2d;
    from = negative ? i + 1 : i;
    let port = 0;
    for (i = from; i < end; i++) {
      const c = s.charCodeAt(i) - 0x30;
      if (c < 0 || c > 9) break;
      port = port * 10 + c;
    }
    if (i === from || i - from > 15 || (i < end && s.charCodeAt(i) !== RS)) return -1;
    if (negative) port = -port;
    i++;

    const tag = tags.take(id);
    if (tag === null || typeof tag === 'string') collector.addChecked(id, grp, s, ipStart, ipEnd, mask, port, tag);
    else collector.add(id, grp, s.slice(ipStart, ipEnd), mask, port, tag); // names the row: tag is not text
    rows++;
  }
  return rows;
}
