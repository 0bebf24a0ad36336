/**
 * The one seam between the repositories and a database engine. Repositories, the migration
 * runner and the cluster tables are written once, against this interface, in the SQL both
 * engines understand; each engine's executor adapts the rest:
 *
 *  - placeholders are written `?` (SQLite's); the PostgreSQL executor numbers them `$1, $2, ...`;
 *  - every call returns a Promise (node-postgres is asynchronous; better-sqlite3 answers at once
 *    and its results are simply wrapped);
 *  - integers come back as JavaScript numbers from both (PostgreSQL's BIGINT is parsed, not
 *    left as a string; ids and counts stay far below 2^53);
 *  - `transaction` gives one connection for the whole callback: 'write' takes the write lock
 *    up front (SQLite BEGIN IMMEDIATE; PostgreSQL READ COMMITTED), 'snapshot' is a read-only
 *    view that does not move while the callback runs (SQLite's deferred read transaction in
 *    WAL mode; PostgreSQL REPEATABLE READ READ ONLY).
 */
export type Dialect = 'sqlite' | 'postgres';

export type SqlParam = string | number | null;

export type TransactionMode = 'write' | 'snapshot';

export interface Sql {
  readonly dialect: Dialect;
  /** Every row of a statement (SELECT, or a write with RETURNING). */
  all<T>(text: string, params?: readonly SqlParam[]): Promise<T[]>;
  /** The first row, or undefined. */
  get<T>(text: string, params?: readonly SqlParam[]): Promise<T | undefined>;
  /** A write without RETURNING: how many rows it changed. */
  run(text: string, params?: readonly SqlParam[]): Promise<number>;
  /**
   * The rows one at a time, fetched in batches (a million-entry table is never held twice):
   * SQLite steps its statement; PostgreSQL reads through a cursor inside a transaction.
   */
  iterate<T>(text: string, params?: readonly SqlParam[]): AsyncIterable<T>;
  /** Several statements, no parameters, no result (migrations). */
  exec(script: string): Promise<void>;
  /** Run `fn` on one connection inside a transaction; commits when it resolves, rolls back when it throws. */
  transaction<T>(fn: (tx: Sql) => Promise<T>, mode?: TransactionMode): Promise<T>;
}

/** `?` → `$1, $2, ...` (the statements sipctl writes carry no `?` inside literals). */
export function numberPlaceholders(text: string): string {
  let n = 0;
  return text.replace(/\?/g, () => `$${++n}`);
}
