/** Real SQLite files for the load tests, created with the project's own migration statements. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

const migration = readFileSync(fileURLToPath(new URL('../../migrations/001_address.sql', import.meta.url)), 'utf8');

export interface FixtureRow {
  id?: number;
  grp: number;
  ip_addr: string;
  mask: number;
  port?: number;
  tag?: string | null;
}

/** Creates `dir/name` with the `address` table and `rows`; returns its path. */
export function createAddressDb(dir: string, name: string, rows: Iterable<FixtureRow>): string {
  const path = join(dir, name);
  const db = new Database(path);
  try {
    db.exec(migration);
    insertRows(db, rows);
  } finally {
    db.close();
  }
  return path;
}

/** Replaces every row of the `address` table at `path` with `rows`. */
export function replaceRows(path: string, rows: Iterable<FixtureRow>): void {
  const db = new Database(path);
  try {
    db.transaction(() => {
      db.prepare('DELETE FROM address').run();
      insertRows(db, rows);
    })();
  } finally {
    db.close();
  }
}

function insertRows(db: Database.Database, rows: Iterable<FixtureRow>): void {
  const insert = db.prepare('INSERT INTO address (id, grp, ip_addr, mask, port, tag) VALUES (?, ?, ?, ?, ?, ?)');
  db.transaction(() => {
    for (const r of rows) insert.run(r.id ?? null, r.grp, r.ip_addr, r.mask, r.port ?? 0, r.tag ?? null);
  })();
}
