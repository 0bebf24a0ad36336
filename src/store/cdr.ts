/**
 * The `cdr` table (migrations/004_cdr.sql): call detail records. The proxy appends them in
 * batches (src/dialog/cdr-writer.ts), `sipctl cdr list` reads them, retention deletes old
 * ones. Written once for both stores (see sql.ts).
 */
import type { Sql, SqlParam } from './sql.js';

/** One row as stored (times: ms since the epoch; durations: seconds). */
export interface CdrRow {
  id: number;
  node: string;
  call_id: string;
  from_uri: string;
  to_uri: string;
  source: string;
  setid: number | null;
  destination: string | null;
  start_ms: number;
  answer_ms: number | null;
  end_ms: number;
  duration: number;
  billable: number;
  code: number;
  reason: string;
  ended_by: string;
}

export type NewCdr = Omit<CdrRow, 'id'>;

const INSERT_COLUMNS = [
  'node', 'call_id', 'from_uri', 'to_uri', 'source', 'setid', 'destination', 'start_ms', 'answer_ms', 'end_ms',
  'duration', 'billable', 'code', 'reason', 'ended_by',
] as const;
const COLUMNS = `id, ${INSERT_COLUMNS.join(', ')}`;
/** Rows per INSERT statement: 15 parameters each stays far below SQLite's and PostgreSQL's limits. */
const ROWS_PER_STATEMENT = 200;

export interface CdrQuery {
  /** start_ms at or after this. */
  sinceMs?: number;
  /** start_ms before this. */
  untilMs?: number;
  /** Newest first, at most this many. */
  limit?: number;
}

export class CdrRepository {
  constructor(private readonly sql: Sql) {}

  /** Append rows (inside the caller's transaction when `sql` is one). */
  async insert(rows: readonly NewCdr[]): Promise<void> {
    for (let at = 0; at < rows.length; at += ROWS_PER_STATEMENT) {
      const chunk = rows.slice(at, at + ROWS_PER_STATEMENT);
      const params: SqlParam[] = [];
      const one = `(${INSERT_COLUMNS.map(() => '?').join(', ')})`;
      for (const r of chunk) for (const c of INSERT_COLUMNS) params.push(r[c]);
      await this.sql.run(`INSERT INTO cdr (${INSERT_COLUMNS.join(', ')}) VALUES ${chunk.map(() => one).join(', ')}`, params);
    }
  }

  /** Rows by start time, newest first. */
  list(q: CdrQuery = {}): Promise<CdrRow[]> {
    const where: string[] = [];
    const params: SqlParam[] = [];
    if (q.sinceMs !== undefined) {
      where.push('start_ms >= ?');
      params.push(q.sinceMs);
    }
    if (q.untilMs !== undefined) {
      where.push('start_ms < ?');
      params.push(q.untilMs);
    }
    let text = `SELECT ${COLUMNS} FROM cdr${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY start_ms DESC, id DESC`;
    if (q.limit !== undefined) {
      text += ' LIMIT ?';
      params.push(q.limit);
    }
    return this.sql.all<CdrRow>(text, params);
  }

  async count(): Promise<number> {
    const r = await this.sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM cdr');
    return Number(r?.n ?? 0);
  }

  /** Delete rows that started before `beforeMs`; how many went. */
  prune(beforeMs: number): Promise<number> {
    return this.sql.run('DELETE FROM cdr WHERE start_ms < ?', [beforeMs]);
  }
}
