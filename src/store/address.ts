/**
 * The `address` table (Kamailio permissions module's columns: id, grp, ip_addr, mask,
 * port, tag). The repository stores what it is given: validating and normalising an entry
 * (canonical address text, host bits cleared, default mask per family) is
 * validateAddressEntry's job in src/acl/validate.ts, run by the CLI before `add`.
 */
import type { Database } from 'better-sqlite3';
import { usageError } from '../errors.js';
import { isCheckViolation, isUniqueViolation, messageOf } from './sqlite-errors.js';
import { StatementCache } from './statements.js';

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
const MATCHING = 'grp = @grp AND ip_addr = @ipAddr AND (@mask IS NULL OR mask = @mask) AND (@port IS NULL OR port = @port)';

function matchParams(grp: number, ipAddr: string, mask?: number, port?: number) {
  return { grp, ipAddr, mask: mask ?? null, port: port ?? null };
}

/** `10.0.0.0/24 port 5060` — how an entry is named in messages. */
export function describeAddress(e: { ip_addr: string; mask: number; port: number }): string {
  return `${e.ip_addr}/${e.mask} ${e.port === 0 ? 'any port' : `port ${e.port}`}`;
}

export class AddressRepository {
  private readonly sql: StatementCache;

  constructor(db: Database) {
    this.sql = new StatementCache(db);
  }

  /**
   * Insert one entry. A second entry with the same (grp, ip_addr, mask, port) is refused by
   * the table's unique index; the error names the existing row so the person can remove or
   * keep it (Kamailio's kamctl would insert the duplicate silently).
   */
  add(entry: NewAddress): { id: number } {
    const row = { grp: entry.grp, ip_addr: entry.ipAddr, mask: entry.mask, port: entry.port, tag: entry.tag ?? null };
    try {
      const info = this.sql
        .get('INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (@grp, @ip_addr, @mask, @port, @tag)')
        .run(row);
      return { id: Number(info.lastInsertRowid) };
    } catch (err) {
      if (isUniqueViolation(err)) {
        const existing = this.sql
          .get('SELECT id FROM address WHERE grp = @grp AND ip_addr = @ip_addr AND mask = @mask AND port = @port')
          .get(row) as { id: number } | undefined;
        throw usageError(
          'E_ACL_DUPLICATE',
          `group ${row.grp} already has ${describeAddress(row)} as id ${existing?.id ?? '?'}; ` +
            `nothing was added (remove id ${existing?.id ?? '?'} first to replace it)`,
        );
      }
      if (isCheckViolation(err)) {
        throw usageError('E_STORE_CONSTRAINT', `address entry refused by the database: ${messageOf(err)}`);
      }
      throw err;
    }
  }

  /** The row with this id, or undefined. */
  get(id: number): AddressRow | undefined {
    return this.sql.get(`SELECT ${COLUMNS} FROM address WHERE id = ?`).get(id) as AddressRow | undefined;
  }

  /** Delete one row by id; returns the deleted row, or null when no row had that id. */
  remove(id: number): AddressRow | null {
    const row = this.sql.get(`DELETE FROM address WHERE id = ? RETURNING ${COLUMNS}`).get(id) as
      | AddressRow
      | undefined;
    return row ?? null;
  }

  /**
   * Delete the rows of group `grp` for network `ipAddr` (canonical text, as stored), limited
   * to one mask and / or port when given — `kamctl address rm <grp> <ipaddr>` with optional
   * narrowing. Returns how many rows were deleted.
   */
  removeMatching(grp: number, ipAddr: string, mask?: number, port?: number): number {
    return this.sql.get(`DELETE FROM address WHERE ${MATCHING}`).run(matchParams(grp, ipAddr, mask, port)).changes;
  }

  /** Like removeMatching, returning the deleted rows (one statement: what is shown is what went). */
  removeMatchingRows(grp: number, ipAddr: string, mask?: number, port?: number): AddressRow[] {
    return this.sql
      .get(`DELETE FROM address WHERE ${MATCHING} RETURNING ${COLUMNS}`)
      .all(matchParams(grp, ipAddr, mask, port)) as AddressRow[];
  }

  /** All rows (or one group's), ordered by group then id. */
  list(grp?: number): AddressRow[] {
    return grp === undefined
      ? (this.sql.get(`SELECT ${COLUMNS} FROM address ORDER BY grp, id`).all() as AddressRow[])
      : (this.sql.get(`SELECT ${COLUMNS} FROM address WHERE grp = ? ORDER BY id`).all(grp) as AddressRow[]);
  }

  /** Like list(), one row at a time: for tables too big to hold twice in memory. */
  iterate(grp?: number): IterableIterator<AddressRow> {
    return grp === undefined
      ? (this.sql.get(`SELECT ${COLUMNS} FROM address ORDER BY grp, id`).iterate() as IterableIterator<AddressRow>)
      : (this.sql.get(`SELECT ${COLUMNS} FROM address WHERE grp = ? ORDER BY id`).iterate(grp) as IterableIterator<AddressRow>);
  }

  /** How many rows (in one group, when given). */
  count(grp?: number): number {
    const row = (grp === undefined
      ? this.sql.get('SELECT count(*) AS n FROM address').get()
      : this.sql.get('SELECT count(*) AS n FROM address WHERE grp = ?').get(grp)) as { n: number };
    return row.n;
  }
}
