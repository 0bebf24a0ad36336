/**
 * Prepared statements, prepared on first use. Repositories are created with the store,
 * possibly before the tables exist (a read-only open of an unmigrated file); preparing
 * lazily turns that into an error at the first query rather than at open.
 */
import type { Database, Statement } from 'better-sqlite3';

export class StatementCache {
  private readonly prepared = new Map<string, Statement>();

  constructor(private readonly db: Database) {}

  get(sql: string): Statement {
    let stmt = this.prepared.get(sql);
    if (stmt === undefined) {
      stmt = this.db.prepare(sql);
      this.prepared.set(sql, stmt);
    }
    return stmt;
  }
}
