/**
 * Worker thread entry for loadAddressTable (load.ts): reads the `address` table from the SQLite
 * file read-only and builds the table's typed arrays here, off the proxy's thread, then hands
 * the ArrayBuffers over (transferred, not copied). SQLite is read only at start and on reload,
 * never per message; the proxy keeps routing with the old table while this runs.
 */
import { existsSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { SipctlError } from '../errors.js';
import { AddressRowCollector, transferList, type TableParts } from './build.js';
import { readAddressRows } from './read-rows.js';

export type LoadWorkerReply =
  | { ok: true; parts: TableParts; readMs: number }
  | { ok: false; code: string; message: string };

function loadParts(dbPath: string): { parts: TableParts; readMs: number } {
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
  try {
    try {
      readAddressRows(db, collector);
    } catch (err) {
      if (err instanceof SipctlError) throw err;
      const message = (err as Error).message;
      if (/no such table/i.test(message)) {
        throw new SipctlError('E_ACL_NO_TABLE', `database ${dbPath} has no address table (run \`sipctl migrate\`)`);
      }
      throw new SipctlError('E_ACL_DB_UNREADABLE', `cannot read the address table of ${dbPath}: ${message}`);
    }
    const readMs = performance.now() - started;
    return { parts: collector.finish(), readMs };
  } finally {
    db.close();
  }
}

const port = parentPort;
if (port) {
  let reply: LoadWorkerReply;
  let transfer: ArrayBuffer[] = [];
  try {
    const { parts, readMs } = loadParts((workerData as { dbPath: string }).dbPath);
    reply = { ok: true, parts, readMs };
    transfer = transferList(parts);
  } catch (err) {
    reply =
      err instanceof SipctlError
        ? { ok: false, code: err.code, message: err.message }
        : { ok: false, code: 'E_ACL_RELOAD_FAILED', message: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply, transfer);
}
