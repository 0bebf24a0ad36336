/**
 * Reading the `address` table of a SQLite file (read-only) into the table's parts: in the load
 * worker for every reload (load-worker.ts), and in the proxy's own thread once at start, when
 * nothing is routed yet and starting a worker would only add its cost (load.ts).
 * The rows and the table's version (table_version) are read in one snapshot.
 */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { SipctlError } from '../errors.js';
import { AddressRowCollector, type TableParts } from './build.js';
import { readAddressRows } from './read-rows.js';

export function readAddressParts(dbPath: string): { parts: TableParts; readMs: number; version: number | null } {
  if (!existsSync(dbPath)) {
    throw new SipctlError('E_ACL_DB_MISSING', `database ${dbPath} does not exist (run \`sipctl migrate\` or pass --db)`);
  }
  const started = performance.now();
  let db: Database.Database;
  try {
    db = new Database(dbPath, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new SipctlError('E_ACL_DB_UNREADABLE', `cannot open database ${dbPath}: ${(err as Error).message}`);
  }
  const collector = new AddressRowCollector();
  let version: number | null = null;
  try {
    try {
      // One read transaction: the rows and their version are one snapshot.
      db.transaction(() => {
        version = readVersion(db);
        readAddressRows(db, collector);
      })();
    } catch (err) {
      if (err instanceof SipctlError) throw err;
      const message = (err as Error).message;
      if (/no such table/i.test(message)) {
        throw new SipctlError('E_ACL_NO_TABLE', `database ${dbPath} has no address table (run \`sipctl migrate\`)`);
      }
      throw new SipctlError('E_ACL_DB_UNREADABLE', `cannot read the address table of ${dbPath}: ${message}`);
    }
    const readMs = performance.now() - started;
    return { parts: collector.finish(), readMs, version };
  } finally {
    db.close();
  }
}

/** The address table's change counter; null in a database made before migration 003. */
function readVersion(db: Database.Database): number | null {
  try {
    const row = db.prepare("SELECT version FROM table_version WHERE table_name = 'address'").get() as { version: number } | undefined;
    return row === undefined ? null : Number(row.version);
  } catch {
    return null;
  }
}
