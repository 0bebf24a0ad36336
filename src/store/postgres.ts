/**
 * The Sql executor over node-postgres, and how every sipctl connection to PostgreSQL is
 * configured. A connection pool serves the repositories; a transaction checks one client out
 * for its whole callback.
 */
import pg from 'pg';
import type { Sql, SqlParam, TransactionMode } from './sql.js';
import { numberPlaceholders } from './sql.js';

const INT8_OID = 20;

/**
 * BIGINT as a JavaScript number (node-postgres leaves it a string, since it may exceed 2^53;
 * sipctl's ids, counts and versions never do, and the SQLite store returns numbers too).
 */
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === INT8_OID && format !== 'binary'
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, (format ?? 'text') as 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

export interface PgConnectionOptions {
  /** Shown in pg_stat_activity, so an operator can tell sipctl's connections apart. */
  applicationName?: string;
  /** Refuse writes on this connection (the read-only open). */
  readOnly?: boolean;
  /** Give up connecting after this long (default 5 s). */
  connectTimeoutMs?: number;
  /** Give up on a query after this long (default: no limit). */
  queryTimeoutMs?: number;
}

/** The client configuration sipctl uses for `url`, wherever it connects from (CLI, node, load worker). */
export function pgClientConfig(url: string, opts: PgConnectionOptions = {}): pg.ClientConfig {
  return {
    connectionString: url,
    types: TYPES,
    application_name: opts.applicationName ?? 'sipctl',
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5_000,
    ...(opts.queryTimeoutMs === undefined ? {} : { query_timeout: opts.queryTimeoutMs }),
    // A server that vanishes without a FIN (a cut cable, a failed-over address) is noticed by
    // TCP keep-alive on idle connections, such as a node's LISTEN connection.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    ...(opts.readOnly ? { options: '-c default_transaction_read_only=on' } : {}),
  };
}

type Queryable = Pick<pg.ClientBase, 'query'>;

let cursorSeq = 0;
const FETCH_ROWS = 2000;

abstract class PgSqlBase implements Sql {
  readonly dialect = 'postgres' as const;
  protected abstract readonly target: Queryable;

  protected query(text: string, params: readonly SqlParam[]): Promise<pg.QueryResult> {
    // Without parameters the simple protocol is used (it also runs several statements).
    return params.length === 0 ? this.target.query(text) : this.target.query(numberPlaceholders(text), params as SqlParam[]);
  }

  async all<T>(text: string, params: readonly SqlParam[] = []): Promise<T[]> {
    return (await this.query(text, params)).rows as T[];
  }

  async get<T>(text: string, params: readonly SqlParam[] = []): Promise<T | undefined> {
    return (await this.query(text, params)).rows[0] as T | undefined;
  }

  async run(text: string, params: readonly SqlParam[] = []): Promise<number> {
    return (await this.query(text, params)).rowCount ?? 0;
  }

  async exec(script: string): Promise<void> {
    await this.target.query(script);
  }

  abstract iterate<T>(text: string, params?: readonly SqlParam[]): AsyncIterable<T>;
  abstract transaction<T>(fn: (tx: Sql) => Promise<T>, mode?: TransactionMode): Promise<T>;
}

/** One checked-out client inside a transaction. */
export class PgClientSql extends PgSqlBase {
  constructor(protected readonly target: pg.ClientBase) {
    super();
  }

  async *iterate<T>(text: string, params: readonly SqlParam[] = []): AsyncIterable<T> {
    const cursor = `sipctl_cursor_${++cursorSeq}`;
    await this.query(`DECLARE ${cursor} NO SCROLL CURSOR FOR ${text}`, params);
    try {
      for (;;) {
        const batch = await this.target.query(`FETCH ${FETCH_ROWS} FROM ${cursor}`);
        for (const row of batch.rows) yield row as T;
        if (batch.rows.length < FETCH_ROWS) break;
      }
    } finally {
      // Fails only when the transaction is already aborted, which ends the cursor anyway.
      await this.target.query(`CLOSE ${cursor}`).catch(() => undefined);
    }
  }

  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    return fn(this); // nested: part of the enclosing transaction
  }
}

const BEGIN: Record<TransactionMode, string> = {
  write: 'BEGIN',
  snapshot: 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
};

/** The pool: each statement on whichever client is free. */
export class PgPoolSql extends PgSqlBase {
  constructor(protected readonly target: pg.Pool) {
    super();
  }

  async transaction<T>(fn: (tx: Sql) => Promise<T>, mode: TransactionMode = 'write'): Promise<T> {
    const client = await this.target.connect();
    let broken: Error | undefined;
    try {
      await client.query(BEGIN[mode]);
      try {
        const result = await fn(new PgClientSql(client));
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch((e: Error) => {
          broken = e;
        });
        throw err;
      }
    } catch (err) {
      broken ??= err instanceof Error && !('severity' in err) ? err : undefined;
      throw err;
    } finally {
      // A client whose connection failed is dropped from the pool, not handed out again.
      client.release(broken);
    }
  }

  async *iterate<T>(text: string, params: readonly SqlParam[] = []): AsyncIterable<T> {
    // A cursor lives in a transaction: one snapshot for the whole iteration.
    const client = await this.target.connect();
    let broken: Error | undefined;
    let ended = false;
    try {
      await client.query(BEGIN.snapshot);
      yield* new PgClientSql(client).iterate<T>(text, params);
      await client.query('COMMIT');
      ended = true;
    } finally {
      // Left early (break, throw): end the transaction before the client goes back to the pool.
      if (!ended) {
        await client.query('ROLLBACK').catch((e: Error) => {
          broken = e;
        });
      }
      client.release(broken);
    }
  }
}
