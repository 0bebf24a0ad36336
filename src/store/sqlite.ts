/**
 * The Sql executor over better-sqlite3. Statements run synchronously (SQLite is a library in
 * this process, and the statements sipctl runs are short); results are wrapped in promises so
 * that the repositories are one code for both stores.
 */
import type { Database, Statement } from 'better-sqlite3';
import type { Sql, SqlParam, TransactionMode } from './sql.js';

export class SqliteSql implements Sql {
  readonly dialect = 'sqlite' as const;
  private readonly prepared: Map<string, Statement>;
  /** Transactions on the one connection run one after another, never interleaved. */
  private tail: Promise<unknown> = Promise.resolve();
  private readonly inTransaction: boolean;

  constructor(readonly db: Database, shared?: { prepared: Map<string, Statement> }) {
    this.prepared = shared?.prepared ?? new Map();
    this.inTransaction = shared !== undefined;
  }

  /**
   * Prepared on first use: repositories are created with the store, possibly before the tables
   * exist (a read-only open of an unmigrated file); preparing lazily turns that into an error
   * at the first query rather than at open.
   */
  private statement(text: string): Statement {
    let stmt = this.prepared.get(text);
    if (stmt === undefined) {
      stmt = this.db.prepare(text);
      this.prepared.set(text, stmt);
    }
    return stmt;
  }

  async all<T>(text: string, params: readonly SqlParam[] = []): Promise<T[]> {
    return this.statement(text).all(...params) as T[];
  }

  async get<T>(text: string, params: readonly SqlParam[] = []): Promise<T | undefined> {
    return this.statement(text).get(...params) as T | undefined;
  }

  async run(text: string, params: readonly SqlParam[] = []): Promise<number> {
    return this.statement(text).run(...params).changes;
  }

  async *iterate<T>(text: string, params: readonly SqlParam[] = []): AsyncIterable<T> {
    // Leaving the loop early (break, throw) returns the statement's iterator, which resets it:
    // an open cursor would keep the connection busy and close() would refuse.
    for (const row of this.statement(text).iterate(...params)) yield row as T;
  }

  async exec(script: string): Promise<void> {
    this.db.exec(script);
  }

  transaction<T>(fn: (tx: Sql) => Promise<T>, mode: TransactionMode = 'write'): Promise<T> {
    if (this.inTransaction) return fn(this); // nested: part of the enclosing transaction
    const run = async (): Promise<T> => {
      // IMMEDIATE takes the write lock now (waiting up to busy_timeout for another writer)
      // instead of failing at the first write; a deferred BEGIN in WAL mode is a snapshot.
      this.db.exec(mode === 'write' ? 'BEGIN IMMEDIATE' : 'BEGIN');
      try {
        const result = await fn(new SqliteSql(this.db, { prepared: this.prepared }));
        this.db.exec('COMMIT');
        return result;
      } catch (err) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw err;
      }
    };
    const result = this.tail.then(run, run);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
