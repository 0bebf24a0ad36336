/**
 * The `dispatcher` table (Kamailio dispatcher module's columns: id, setid, destination,
 * flags, priority, attrs, description). Parsing the destination URI and the attrs string is
 * the dispatcher's business (src/dispatcher/); this repository stores and lists rows.
 * Written once for both stores (see sql.ts).
 */
import { usageError } from '../errors.js';
import { isCheckViolation, isUniqueViolation, messageOf } from './errors.js';
import type { Sql } from './sql.js';

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
  constructor(private readonly sql: Sql) {}

  /**
   * Insert one destination; the same destination twice in one set is refused (E_DS_DUPLICATE),
   * looked for first so that a refusal uses up no PostgreSQL sequence value (see AddressRepository.add).
   */
  async add(dst: NewDestination): Promise<{ id: number }> {
    const row = {
      setid: dst.setid,
      destination: dst.destination,
      flags: dst.flags ?? 0,
      priority: dst.priority ?? 0,
      attrs: dst.attrs ?? '',
      description: dst.description ?? '',
    };
    const existing = () =>
      this.sql.get<{ id: number }>('SELECT id FROM dispatcher WHERE setid = ? AND destination = ?', [row.setid, row.destination]);
    const duplicate = (id: number | undefined) =>
      usageError(
        'E_DS_DUPLICATE',
        `set ${row.setid} already has destination ${row.destination} as id ${id ?? '?'}; ` +
          `nothing was added (remove id ${id ?? '?'} first to replace it)`,
      );
    const before = await existing();
    if (before !== undefined) throw duplicate(before.id);
    try {
      const inserted = await this.sql.get<{ id: number }>(
        'INSERT INTO dispatcher (setid, destination, flags, priority, attrs, description) VALUES (?, ?, ?, ?, ?, ?) RETURNING id',
        [row.setid, row.destination, row.flags, row.priority, row.attrs, row.description],
      );
      return { id: Number(inserted!.id) };
    } catch (err) {
      if (isUniqueViolation(err)) throw duplicate((await existing())?.id);
      if (isCheckViolation(err)) {
        throw usageError('E_STORE_CONSTRAINT', `dispatcher destination refused by the database: ${messageOf(err)}`);
      }
      throw err;
    }
  }

  /** The row with this id, or undefined. */
  get(id: number): Promise<DispatcherRow | undefined> {
    return this.sql.get<DispatcherRow>(`SELECT ${COLUMNS} FROM dispatcher WHERE id = ?`, [id]);
  }

  /** Delete one destination by id; returns the deleted row, or null when no row had that id. */
  async remove(id: number): Promise<DispatcherRow | null> {
    return (await this.sql.get<DispatcherRow>(`DELETE FROM dispatcher WHERE id = ? RETURNING ${COLUMNS}`, [id])) ?? null;
  }

  /** All destinations (or one set's), ordered by set then id. */
  list(setid?: number): Promise<DispatcherRow[]> {
    return setid === undefined
      ? this.sql.all<DispatcherRow>(`SELECT ${COLUMNS} FROM dispatcher ORDER BY setid, id`)
      : this.sql.all<DispatcherRow>(`SELECT ${COLUMNS} FROM dispatcher WHERE setid = ? ORDER BY id`, [setid]);
  }

  /** How many destinations (in one set, when given). */
  async count(setid?: number): Promise<number> {
    const row = await (setid === undefined
      ? this.sql.get<{ n: number }>('SELECT count(*) AS n FROM dispatcher')
      : this.sql.get<{ n: number }>('SELECT count(*) AS n FROM dispatcher WHERE setid = ?', [setid]));
    return Number(row?.n ?? 0);
  }
}
