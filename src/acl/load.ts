/**
 * Loading the address table without blocking the proxy, and swapping it in whole.
 *
 * The rows are read and the table is built in a worker thread (load-worker.ts); the typed
 * arrays come back by transfer, and the proxy's thread only wraps them. The proxy keeps
 * matching against the current table the whole time; the swap is one reference assignment,
 * so every message is checked wholly against the old table or wholly against the new one
 * (Kamailio's permissions module likewise builds the new table beside the active one and flips
 * a pointer on `permissions.addressReload`).
 */
import { SipctlError } from '../errors.js';
import type { LoadWorkerReply } from './load-worker.js';
import { AddressTable, type GroupCount } from './table.js';
import { startLoadWorker } from './worker-start.js';
import { readAddressParts } from './read-sqlite.js';
import type { Worker } from 'node:worker_threads';
import { isPostgresUrl } from '../store/location.js';

export interface ReloadReport {
  groups: GroupCount[];
  total: number;
  /** Wall time of the load, worker start to table ready, in milliseconds. */
  ms: number;
  /** The table's version (table_version) the rows were read at; null when the database has none. */
  version: number | null;
}

function reloadFailed(reason: string, cause?: unknown): SipctlError {
  return new SipctlError('E_ACL_RELOAD_FAILED', `address table reload failed: ${reason}`, { cause });
}

/**
 * Reads the `address` table of the SQLite file at `dbPath` (read-only), or of the PostgreSQL
 * database when `dbPath` is a postgres:// URL, and builds a table, in a worker thread. Rejects
 * with E_ACL_RELOAD_FAILED and the reason (missing file, no `address` table, a bad row, ...);
 * the `cause` carries the underlying code (E_ACL_BAD_ROW, ...).
 *
 * A SQLite reload starts a worker and lets it exit. A PostgreSQL reload goes to one worker
 * kept for the process, holding its database connection: in a cluster every change makes
 * every node reload, and starting a thread, loading the driver and logging in each time
 * would cost more than reading a small table (hundreds of ms on a busy host, against a few).
 */
export function loadAddressTable(
  dbPath: string,
  opts: LoadOptions = {},
): Promise<{ table: AddressTable; ms: number; version: number | null }> {
  const started = performance.now();
  const reply = isPostgresUrl(dbPath) ? keptLoader(dbPath).load() : opts.inThread === true ? loadHere(dbPath) : loadOnce(dbPath);
  return reply.then((r) => {
    if (!r.ok) throw reloadFailed(r.message, new SipctlError(r.code, r.message));
    try {
      return { table: new AddressTable(r.parts), ms: performance.now() - started, version: r.version };
    } catch (err) {
      throw reloadFailed((err as Error).message, err);
    }
  });
}

export interface LoadOptions {
  /**
   * Read a SQLite table in this thread instead of a worker: for the load at start, when no
   * message is being routed yet and a worker would only add its start-up (some 150 ms of CPU
   * and as much wall time). A PostgreSQL table is always read by its kept worker.
   */
  readonly inThread?: boolean;
}

/** The worker's job done in this thread (LoadOptions.inThread). */
function loadHere(dbPath: string): Promise<LoadWorkerReply> {
  try {
    const { parts, readMs, version } = readAddressParts(dbPath);
    return Promise.resolve({ ok: true, parts, readMs, version });
  } catch (err) {
    return Promise.resolve(
      err instanceof SipctlError
        ? { ok: false, code: err.code, message: err.message }
        : { ok: false, code: 'E_ACL_RELOAD_FAILED', message: err instanceof Error ? err.message : String(err) },
    );
  }
}

/** A one-shot worker: it posts one reply and exits. */
function loadOnce(dbPath: string): Promise<LoadWorkerReply> {
  return new Promise((resolve, reject) => {
    let worker;
    try {
      worker = startLoadWorker(dbPath);
    } catch (err) {
      reject(reloadFailed((err as Error).message, err));
      return;
    }
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      outcome();
    };
    worker.once('message', (reply: LoadWorkerReply) => settle(() => resolve(reply)));
    worker.once('error', (err: Error) => settle(() => reject(reloadFailed(err.message, err))));
    worker.once('exit', (code) => settle(() => reject(reloadFailed(`the load worker exited (code ${code}) without a table`))));
  });
}

/** The kept worker for one database: one request at a time, restarted if it dies. */
class KeptLoader {
  private worker: Worker | null = null;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly dbPath: string) {}

  load(): Promise<LoadWorkerReply> {
    const run = () => this.request();
    const reply = this.tail.then(run, run);
    this.tail = reply.catch(() => undefined);
    return reply;
  }

  private request(): Promise<LoadWorkerReply> {
    return new Promise((resolve, reject) => {
      let worker: Worker;
      try {
        this.worker ??= startLoadWorker(this.dbPath, { kept: true });
        worker = this.worker;
        // The proxy's exit must not wait for it.
        worker.unref();
      } catch (err) {
        reject(reloadFailed((err as Error).message, err));
        return;
      }
      const done = (): void => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      const onMessage = (reply: LoadWorkerReply): void => {
        done();
        resolve(reply);
      };
      const onError = (err: Error): void => {
        done();
        this.worker = null;
        reject(reloadFailed(err.message, err));
      };
      const onExit = (code: number): void => {
        done();
        this.worker = null;
        reject(reloadFailed(`the load worker exited (code ${code}) without a table`));
      };
      worker.on('message', onMessage);
      worker.once('error', onError);
      worker.once('exit', onExit);
      worker.postMessage('load');
    });
  }
}

const keptLoaders = new Map<string, KeptLoader>();

function keptLoader(dbPath: string): KeptLoader {
  let l = keptLoaders.get(dbPath);
  if (l === undefined) {
    l = new KeptLoader(dbPath);
    keptLoaders.set(dbPath, l);
  }
  return l;
}

/**
 * The address table in use, and its reloads. `current` is what the proxy matches against;
 * `reload` replaces it only when the new table is wholly built.
 */
export class AddressTableHolder {
  current: AddressTable;
  private tail: Promise<unknown> = Promise.resolve();
  private waiting: { dbPath: string; report: Promise<ReloadReport> } | null = null;

  constructor(initial: AddressTable = AddressTable.empty()) {
    this.current = initial;
  }

  /**
   * Loads the table from `dbPath` and swaps it in. Reloads run one at a time: one asked for
   * while another runs waits for it (it must see rows written since), and any further ones
   * asked for meanwhile join the waiting one rather than queue up. A failed reload keeps the
   * current table and rejects with the reason.
   */
  reload(dbPath: string, opts: LoadOptions = {}): Promise<ReloadReport> {
    if (this.waiting && this.waiting.dbPath === dbPath) return this.waiting.report;
    const request: { dbPath: string; report: Promise<ReloadReport> } = { dbPath, report: Promise.resolve(null as never) };
    const run = async (): Promise<ReloadReport> => {
      if (this.waiting === request) this.waiting = null;
      let loaded;
      try {
        loaded = await loadAddressTable(dbPath, opts);
      } catch (err) {
        const e = err as SipctlError;
        throw new SipctlError(
          'E_ACL_RELOAD_FAILED',
          `${e.message}; still using the previous table (${this.current.size} entries)`,
          { cause: e.cause ?? e },
        );
      }
      this.current = loaded.table;
      return {
        groups: loaded.table.groupCounts(),
        total: loaded.table.size,
        ms: Math.round(loaded.ms * 10) / 10,
        version: loaded.version,
      };
    };
    request.report = this.tail.then(run, run);
    this.tail = request.report.catch(() => undefined);
    this.waiting = request;
    return request.report;
  }
}
