/**
 * `table_version`: one change counter per table that nodes load into memory (`address`,
 * `dispatcher`), bumped by the triggers the migrations install (`-- @track-changes`). A
 * version is read in the same snapshot as the rows it describes, so a node knows exactly
 * which version it holds.
 */
import type { Sql } from './sql.js';

/** The tables a node holds in memory and reloads when they change. */
export const LOADED_TABLES = ['address', 'dispatcher'] as const;
export type LoadedTable = (typeof LOADED_TABLES)[number];

export function isLoadedTable(name: string): name is LoadedTable {
  return (LOADED_TABLES as readonly string[]).includes(name);
}

export interface TableVersion {
  table: string;
  version: number;
  /** When the version last changed, as the database recorded it (text in SQLite, a Date from PostgreSQL). */
  changedAt: string | Date;
}

export class TableVersionRepository {
  constructor(private readonly sql: Sql) {}

  /** The table's version; null when the database predates the counters (not migrated). */
  async get(table: string): Promise<number | null> {
    const row = await this.sql.get<{ version: number }>('SELECT version FROM table_version WHERE table_name = ?', [table]);
    return row === undefined ? null : Number(row.version);
  }

  async list(): Promise<TableVersion[]> {
    const rows = await this.sql.all<{ table_name: string; version: number; changed_at: string | Date }>(
      'SELECT table_name, version, changed_at FROM table_version ORDER BY table_name',
    );
    return rows.map((r) => ({ table: r.table_name, version: Number(r.version), changedAt: r.changed_at }));
  }
}
