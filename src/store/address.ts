/**
 * The `address` table (Kamailio permissions module's columns: id, grp, ip_addr, mask,
 * port, tag). The repository stores what it is given: validating and normalising an entry
 * (canonical address text, host bits cleared, default mask per family) is
 * validateAddressEntry's job in src/acl/validate.ts, run by the CLI before `add`.
 * Written once for both stores (see sql.ts).
 */
import { usageError } from '../errors.js';
import { isCheckViolation, isUniqueViolation, messageOf } from './errors.js';
import type { Sql, SqlParam } from './sql.js';

/** One row of the address table, with the database's column names. */
export interface AddressRow {
  id: number;
  grp: number;
  ip_addr: string;
  mask: number;
  port: number;
  tag: string | null;
}

/** A new entry, in the shape validateAddressEntry returns (so its result can be passed as is). */
export interface NewAddress {
  grp: number;
  ipAddr: string;
  mask: number;
  port: number;
  tag?: string | null;
}

const COLUMNS = 'id, grp, ip_addr, mask, port, tag';

/** `WHERE grp = ? AND ip_addr = ?`, narrowed by mask and port when given. */
function matching(grp: number, ipAddr: string, mask?: number, port?: number): { where: string; params: SqlParam[] } {
  let where = 'grp = ? AND ip_addr = ?';
  const params: SqlParam[] = [grp, ipAddr];
  if (mask !== undefined) {
    where += ' AND mask = ?';
    params.push(mask);
  }
  if (port !== undefined) {
    where += ' AND port = ?';
    params.push(port);
  }
  return { where, params };
}

/** `10.0.0.0/24 port 5060` — how an entry is named in messages. */
export function describeAddress(e: { ip_addr: string; mask: number; port: number }): string {
  return `${e.ip_addr}/${e.mask} ${e.port === 0 ? 'any port' : `port ${e.port}`}`;
}

export class AddressRepository {
  constructor(private readonly sql: Sql) {}

  /**
   * Insert one entry. A second entry with the same (grp, ip_addr, mask, port) is refused; the
   * error names the existing row so the person can remove or keep it (Kamailio's kamctl would
   * insert the duplicate silently). The duplicate is looked for before inserting — so that a
   * refused entry does not use up an id in PostgreSQL, whose sequences never give one back —
   * and the table's unique index still refuses one that a concurrent writer slipped in.
   */
  async add(entry: NewAddress): Promise<{ id: number }> {
    const row = { grp: entry.grp, ip_addr: entry.ipAddr, mask: entry.mask, port: entry.port, tag: entry.tag ?? null };
    const existing = () =>
      this.sql.get<{ id: number }>('SELECT id FROM address WHERE grp = ? AND ip_addr = ? AND mask = ? AND port = ?', [
        row.grp,
        row.ip_addr,
        row.mask,
        row.port,
      ]);
    const duplicate = (id: number | undefined) =>
      usageError(
        'E_ACL_DUPLICATE',
        `group ${row.grp} already has ${describeAddress(row)} as id ${id ?? '?'}; ` +
          `nothing was added (remove id ${id ?? '?'} first to replace it)`,
      );
    const before = await existing();
    if (before !== undefined) throw duplicate(before.id);
    try {
      const inserted = await this.sql.get<{ id: number }>(
        'INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (?, ?, ?, ?, ?) RETURNING id',
        [row.grp, row.ip_addr, row.mask, row.port, row.tag],
      );
      return { id: Number(inserted!.id) };
    } catch (err) {
      if (isUniqueViolation(err)) throw duplicate((await existing())?.id);
      if (isCheckViolation(err)) {
        throw usageError('E_STORE_CONSTRAINT', `address entry refused by the database: ${messageOf(err)}`);
      }
      throw err;
    }
  }

  /** The row with this id, or undefined. */
  get(id: number): Promise<AddressRow | undefined> {
    return this.sql.get<AddressRow>(`SELECT ${COLUMNS} FROM address WHERE id = ?`, [id]);
  }

  /** Delete one row by id; returns the deleted row, or null when no row had that id. */
  async remove(id: number): Promise<AddressRow | null> {
    return (await this.sql.get<AddressRow>(`DELETE FROM address WHERE id = ? RETURNING ${COLUMNS}`, [id])) ?? null;
  }

  /**
   * Delete the rows of group `grp` for network `ipAddr` (canonical text, as stored), limited
   * to one mask and / or port when given — `kamctl address rm <grp> <ipaddr>` with optional
   * narrowing. Returns how many rows were deleted.
   */
  removeMatching(grp: number, ipAddr: string, mask?: number, port?: number): Promise<number> {
    const m = matching(grp, ipAddr, mask, port);
    return this.sql.run(`DELETE FROM address WHERE ${m.where}`, m.params);
  }

  /** Like removeMatching, returning the deleted rows (one statement: what is shown is what went). */
  async removeMatchingRows(grp: number, ipAddr: string, mask?: number, port?: number): Promise<AddressRow[]> {
    const m = matching(grp, ipAddr, mask, port);
    const rows = await this.sql.all<AddressRow>(`DELETE FROM address WHERE ${m.where} RETURNING ${COLUMNS}`, m.params);
    // RETURNING gives no order; show them as `list` would.
    return rows.sort((a, b) => a.grp - b.grp || a.id - b.id);
  }

  /** All rows (or one group's), ordered by group then id. */
  list(grp?: number): Promise<AddressRow[]> {
    return grp === undefined
      ? this.sql.all<AddressRow>(`SELECT ${COLUMNS} FROM address ORDER BY grp, id`)
      : this.sql.all<AddressRow>(`SELECT ${COLUMNS} FROM address WHERE grp = ? ORDER BY id`, [grp]);
  }

  /** Like list(), one row at a time: for tables too big to hold twice in memory. */
  iterate(grp?: number): AsyncIterable<AddressRow> {
    return grp === undefined
      ? this.sql.iterate<AddressRow>(`SELECT ${COLUMNS} FROM address ORDER BY grp, id`)
      : this.sql.iterate<AddressRow>(`SELECT ${COLUMNS} FROM address WHERE grp = ? ORDER BY id`, [grp]);
  }

  /** How many rows (in one group, when given). */
  async count(grp?: number): Promise<number> {
    const row = await (grp === undefined
      ? this.sql.get<{ n: number }>('SELECT count(*) AS n FROM address')
      : this.sql.get<{ n: number }>('SELECT count(*) AS n FROM address WHERE grp = ?', [grp]));
    return Number(row?.n ?? 0);
  }
}
