/**
 * The `dispatcher` table (Kamailio dispatcher module's columns: id, setid, destination,
 * flags, priority, attrs, description). Parsing the destination URI and the attrs string is
 * the dispatcher's business (src/dispatcher/); this repository stores and lists rows.
 */
import type { Database } from 'better-sqlite3';
import { usageError } from '../errors.js';
import { isCheckViolation, isUniqueViolation, messageOf } from './sqlite-errors.js';
import { StatementCache } from './statements.js';

/** One row of the dispatcher table, with the database's column names. */
export interface DispatcherRow {
  id: number;
  setid: number;
  destination: string;
  flags: number;
  priority: number;
  attrs: string;
  description: string;
}

/** A new destination; omitted columns take the table's defaults (0, 0, '', ''). */
export interface NewDestination {
  setid: number;
  destination: string;
  flags?: number;
  priority?: number;
  attrs?: string;
  description?: string;
}

const COLUMNS = 'id, setid, destination, flags, priority, attrs, description';

export class DispatcherRepository {
  private readonly sql: StatementCache;

  constructor(db: Database) {
    this.sql = new StatementCache(db);
  }

  /** Insert one destination; the same destination twice in one set is refused (E_DS_DUPLICATE). */
  add(dst: NewDestination): { id: number } {
    const row = {
      setid: dst.setid,
      destination: dst.destination,
      flags: dst.flags ?? 0,
      priority: dst.priority ?? 0,
      attrs: dst.attrs ?? '',
      description: dst.description ?? '',
    };
    try {
      const info = this.sql
        .get(
          'INSERT INTO dispatcher (setid, destination, flags, priority, attrs, description) ' +
            'VALUES (@setid, @destination, @flags, @priority, @attrs, @description)',
        )
        .run(row);
      return { id: Number(info.lastInsertRowid) };
    } catch (err) {
      if (isUniqueViolation(err)) {
        const existing = this.sql
          .get('SELECT id FROM dispatcher WHERE setid = @setid AND destination = @destination')
          .get(row) as { id: number } | undefined;
        throw usageError(
          'E_DS_DUPLICATE',
          `set ${row.setid} already has destination ${row.destination} as id ${existing?.id ?? '?'}; ` +
            `nothing was added (remove id ${existing?.id ?? '?'} first to replace it)`,
        );
      }
      if (isCheckViolation(err)) {
        throw usageError('E_STORE_CONSTRAINT', `dispatcher destination refused by the database: ${messageOf(err)}`);
      }
      throw err;
    }
  }

  /** The row with this id, or undefined. */
  get(id: number): DispatcherRow | undefined {
    return this.sql.get(`SELECT ${COLUMNS} FROM dispatcher WHERE id = ?`).get(id) as DispatcherRow | undefined;
  }

  /** Delete one destination by id; returns the deleted row, or null when no row had that id. */
  remove(id: number): DispatcherRow | null {
    const row = this.sql.get(`DELETE FROM dispatcher WHERE id = ? RETURNING ${COLUMNS}`).get(id) as
      | DispatcherRow
      | undefined;
    return row ?? null;
  }

  /** All destinations (or one set's), ordered by set then id. */
  list(setid?: number): DispatcherRow[] {
    return setid === undefined
      ? (this.sql.get(`SELECT ${COLUMNS} FROM dispatcher ORDER BY setid, id`).all() as DispatcherRow[])
      : (this.sql.get(`SELECT ${COLUMNS} FROM dispatcher WHERE setid = ? ORDER BY id`).all(setid) as DispatcherRow[]);
  }

  /** How many destinations (in one set, when given). */
  count(setid?: number): number {
    const row = (setid === undefined
      ? this.sql.get('SELECT count(*) AS n FROM dispatcher').get()
      : this.sql.get('SELECT count(*) AS n FROM dispatcher WHERE setid = ?').get(setid)) as { n: number };
    return row.n;
  }
}
