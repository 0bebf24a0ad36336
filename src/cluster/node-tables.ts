/**
 * The tables a node holds in memory (the address table, the dispatcher sets), which version of
 * each it holds, and every reload of them — whoever asks: a person (`sipctl address reload`),
 * the database (a NOTIFY that the table changed, see link.ts), or the link's reconciliation
 * after a reconnect.
 *
 * A reload is what the control handlers already do (build beside the old table, swap one
 * reference; a failed reload keeps the old table). What this adds:
 *  - one reload of a table at a time, so an older read can never be swapped in after a newer;
 *  - coalescing: change notices arriving within `delayMs`, or while a reload runs, become one
 *    reload after it — a provisioning script writing 1,000 rows one by one costs a node one or
 *    two reloads, not 1,000;
 *  - versions: a notice for a version the node already holds is dropped (the writer's own
 *    `--reload` and the NOTIFY it caused do not make two reloads).
 */
import type { ControlHandlers } from '../control/protocol.js';
import { SipctlError } from '../errors.js';
import type { LoadedTable } from '../store/index.js';

/** What a reload reports: the control handler's own result plus the table version it loaded. */
export type ReloadResult = Record<string, unknown> & { version?: number | null };

interface Job {
  force: boolean;
  /** The version a notice said the table is at (-1: unknown, reload anyway). */
  minVersion: number;
  promise: Promise<ReloadResult | null>;
  resolve(r: ReloadResult | null): void;
  reject(err: unknown): void;
}

function newJob(): Job {
  let resolve!: (r: ReloadResult | null) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<ReloadResult | null>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A job nobody awaits (a notice) must not become an unhandled rejection; its failure is reported through onFailed.
  promise.catch(() => undefined);
  return { force: false, minVersion: -1, promise, resolve, reject };
}

export interface ReloaderEvents {
  onLoaded?(table: LoadedTable, result: ReloadResult, why: string): void;
  onFailed?(table: LoadedTable, err: unknown, why: string): void;
}

export class TableReloader {
  /** The version held (null: unknown, e.g. a database without counters). */
  version: number | null = null;
  /** When it was loaded. */
  loadedAt: Date | null = null;
  /** The last failure since the last success (for status), or null. */
  lastError: { message: string; at: Date } | null = null;
  /** When the last reload ended (success or not). */
  lastAttempt = 0;

  private running = false;
  private next: Job | null = null;
  private nextWhy = '';
  private timer: NodeJS.Timeout | null = null;
  private last: ReloadResult | null = null;
  private closed = false;

  constructor(
    readonly table: LoadedTable,
    private readonly load: () => Promise<ReloadResult>,
    private readonly delayMs: number,
    private readonly events: ReloaderEvents = {},
  ) {}

  /** The node loaded `version` by other means (the initial load at start). */
  seed(version: number | null): void {
    this.version = version;
    this.loadedAt = new Date();
  }

  get busy(): boolean {
    return this.running || this.next !== null;
  }

  /**
   * Reload now (after the reload running, if any, since it may have read the table before a
   * write the caller just made). Resolves with the handler's result, or rejects with why.
   */
  reload(why = 'asked'): Promise<ReloadResult> {
    const job = this.job(why);
    job.force = true;
    this.kick(0);
    return job.promise as Promise<ReloadResult>;
  }

  /**
   * The table changed to `version` (null: unknown). Reload unless this version is held
   * already; notices within `delayMs` of each other, or during a reload, make one reload.
   */
  changed(version: number | null, why = 'changed'): void {
    if (this.closed) return;
    if (version !== null && this.version !== null && this.version >= version && !this.busy) return;
    const job = this.job(why);
    job.minVersion = version === null ? Number.MAX_SAFE_INTEGER : Math.max(job.minVersion, version);
    this.kick(this.delayMs);
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.next?.reject(new SipctlError('E_NODE_CLOSING', `the ${this.table} table is not reloaded: the proxy is stopping`));
    this.next = null;
  }

  private job(why: string): Job {
    if (this.next === null) {
      this.next = newJob();
      this.nextWhy = why;
    }
    return this.next;
  }

  private kick(delayMs: number): void {
    if (this.running || this.closed) return; // the job runs when the current reload ends
    if (this.timer !== null) {
      if (delayMs > 0) return; // already due
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.runNext();
    }, delayMs);
  }

  private async runNext(): Promise<void> {
    const job = this.next;
    const why = this.nextWhy;
    this.next = null;
    if (job === null) return;
    if (!job.force && this.version !== null && this.version >= job.minVersion) {
      job.resolve(this.last); // a reload that ran meanwhile loaded it already
      return;
    }
    this.running = true;
    try {
      const result = await this.load();
      this.version = typeof result.version === 'number' ? result.version : null;
      this.loadedAt = new Date();
      this.lastError = null;
      this.last = result;
      this.events.onLoaded?.(this.table, result, why);
      job.resolve(result);
    } catch (err) {
      this.lastError = { message: err instanceof Error ? err.message : String(err), at: new Date() };
      this.events.onFailed?.(this.table, err, why);
      job.reject(err);
    } finally {
      this.running = false;
      this.lastAttempt = Date.now();
      if (this.next !== null) this.kick(0);
    }
  }
}

/** The state of the store link, for `status` over the control socket. */
export interface StoreState {
  kind: 'sqlite' | 'postgres';
  location: string;
  /** 'up', or 'down' since `downSince` (PostgreSQL only; a SQLite file is never "down"). */
  state: 'up' | 'down';
  downSince: string | null;
  lastError: string | null;
  /** The node's name in the `node` table (PostgreSQL only). */
  node: string | null;
}

export interface NodeTablesOptions {
  kind: 'sqlite' | 'postgres';
  location: string;
  /** Coalescing window for change notices, ms. */
  delayMs: number;
  /** Reads the dispatcher table's version just before a dispatcher reload reads the rows. */
  dispatcherVersion: () => Promise<number | null>;
  events?: ReloaderEvents;
}

/**
 * The node's two reloadable tables, wired to the control handlers: `wrap(handlers)` routes
 * `address.reload` and `dispatcher.reload` through the reloaders (the handlers themselves still
 * do the loading, so whatever they do after a reload still happens), and adds `store` to
 * `status`.
 */
export class NodeTables {
  readonly address: TableReloader;
  readonly dispatcher: TableReloader;
  readonly store: StoreState;
  private readonly handlers: { address?: ControlHandlers[string]; dispatcher?: ControlHandlers[string] } = {};

  constructor(opts: NodeTablesOptions) {
    this.store = { kind: opts.kind, location: opts.location, state: 'up', downSince: null, lastError: null, node: null };
    const unwired = (name: string) => () => Promise.reject(new SipctlError('E_NODE_NOT_READY', `${name} reload is not wired yet`));
    this.address = new TableReloader(
      'address',
      async () => ((await (this.handlers.address ?? unwired('address'))({})) as ReloadResult),
      opts.delayMs,
      opts.events,
    );
    this.dispatcher = new TableReloader(
      'dispatcher',
      async () => {
        // Read before the rows: the rows then hold at least this version's changes (a version
        // becomes visible only with them), so the version recorded is never newer than the
        // sets loaded. At worst one notice too many makes one reload more.
        const version = await opts.dispatcherVersion();
        const result = (await (this.handlers.dispatcher ?? unwired('dispatcher'))({})) as ReloadResult;
        return { ...result, version };
      },
      opts.delayMs,
      opts.events,
    );
  }

  reloader(table: LoadedTable): TableReloader {
    return table === 'address' ? this.address : this.dispatcher;
  }

  /** The control handlers, with reloads going through the reloaders and `store` in `status`. */
  wrap(handlers: ControlHandlers): ControlHandlers {
    const has = (name: string): boolean => Object.prototype.hasOwnProperty.call(handlers, name);
    this.handlers.address = handlers['address.reload'];
    this.handlers.dispatcher = handlers['dispatcher.reload'];
    const status = has('status') ? handlers.status : undefined;
    return {
      ...handlers,
      ...(has('address.reload') ? { 'address.reload': () => this.address.reload('control socket') } : {}),
      ...(has('dispatcher.reload') ? { 'dispatcher.reload': () => this.dispatcher.reload('control socket') } : {}),
      ...(status !== undefined ? { status: async (args) => ({ ...((await status(args)) as Record<string, unknown>), store: this.status() }) } : {}),
    };
  }

  /** `status` → store: where, up or down since when, and the version of each table held. */
  status(): StoreState & { tables: Record<LoadedTable, { version: number | null; loadedAt: string | null; lastError: string | null }> } {
    const table = (r: TableReloader) => ({
      version: r.version,
      loadedAt: r.loadedAt?.toISOString() ?? null,
      lastError: r.lastError?.message ?? null,
    });
    return { ...this.store, tables: { address: table(this.address), dispatcher: table(this.dispatcher) } };
  }

  close(): void {
    this.address.close();
    this.dispatcher.close();
  }
}
