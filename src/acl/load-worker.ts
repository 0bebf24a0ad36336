/**
 * Worker thread entry for loadAddressTable (load.ts): reads the `address` table from the SQLite
 * file read-only and builds the table's typed arrays here, off the proxy's thread, then hands
 * the ArrayBuffers over (transferred, not copied). SQLite is read only at start and on reload,
 * never per message; the proxy keeps routing with the old table while this runs.
 * A `postgres://` location is read the same way, in one query (src/store/pg-address-read.ts).
 * Either way the table's version (table_version) is read in the same snapshot as the rows.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SipctlError } from '../errors.js';
import { AddressRowCollector, transferList, type TableParts } from './build.js';
import { addPackedRows } from './read-rows.js';
import { readAddressParts } from './read-sqlite.js';
import { isPostgresUrl } from '../store/location.js';
import type { PostgresAddressReader } from '../store/pg-address-read.js';

export type LoadWorkerReply =
  | { ok: true; parts: TableParts; readMs: number; version: number | null }
  | { ok: false; code: string; message: string };

async function loadPartsPostgres(reader: PostgresAddressReader): Promise<{ parts: TableParts; readMs: number; version: number | null }> {
  const started = performance.now();
  const collector = new AddressRowCollector();
  let version: number | null;
  try {
    ({ version } = await reader.read({
      packed: (text, count, tags) => addPackedRows(text, count, tags, collector),
      row: (v) => collector.add(v[0], v[1], v[2], v[3], v[4], v[5]),
    }));
  } catch (err) {
    if (err instanceof SipctlError) throw err;
    const message = (err as Error).message || String((err as { code?: unknown }).code ?? err);
    if (/relation "address" does not exist/i.test(message)) {
      throw new SipctlError('E_ACL_NO_TABLE', `database ${reader.location} has no address table (run \`sipctl migrate\`)`);
    }
    throw new SipctlError('E_ACL_DB_UNREADABLE', `cannot read the address table of ${reader.location}: ${message}`);
  }
  return { parts: collector.finish(), readMs: performance.now() - started, version };
}

function failure(err: unknown): LoadWorkerReply {
  return err instanceof SipctlError
    ? { ok: false, code: err.code, message: err.message }
    : { ok: false, code: 'E_ACL_RELOAD_FAILED', message: err instanceof Error ? err.message : String(err) };
}

const port = parentPort;
if (port) {
  const { dbPath, kept } = workerData as { dbPath: string; kept?: boolean };
  if (kept) {
    // Kept for the process (PostgreSQL): one connection, reused by every reload; each 'load'
    // message gets one reply.
    // pg is loaded here only: importing it costs some 300 ms of CPU, which a SQLite worker
    // (started for every reload) must not pay.
    const reader = import('../store/pg-address-read.js').then((m) => new m.PostgresAddressReader(dbPath));
    let tail: Promise<unknown> = Promise.resolve();
    port.on('message', () => {
      tail = tail.then(() =>
        reader.then(loadPartsPostgres).then(
          ({ parts, readMs, version }) => port.postMessage({ ok: true, parts, readMs, version } satisfies LoadWorkerReply, transferList(parts)),
          (err: unknown) => port.postMessage(failure(err)),
        ),
      );
    });
  } else {
    let reply: LoadWorkerReply;
    let transfer: ArrayBuffer[] = [];
    try {
      if (isPostgresUrl(dbPath)) throw new SipctlError('E_ACL_RELOAD_FAILED', 'a PostgreSQL address table is loaded by a kept worker');
      const { parts, readMs, version } = readAddressParts(dbPath);
      reply = { ok: true, parts, readMs, version };
      transfer = transferList(parts);
    } catch (err) {
      reply = failure(err);
    }
    port.postMessage(reply, transfer);
  }
}
