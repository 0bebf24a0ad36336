/**
 * What every table command (`sipctl address ...`, `sipctl dispatcher ...`) shares: the
 * --db / --control / --json options and opening the store for one command.
 */
import { resolveDbPath } from '../src/config/paths.js';
import { usageError } from '../src/errors.js';
import { isPostgresUrl, openStore, type PostgresStore, type Store } from '../src/store/index.js';

export interface DbOption {
  db?: string;
}
export interface ControlOption {
  control?: string;
}
export interface JsonOption {
  json?: boolean;
}

export const DB_HELP = 'the database: a SQLite file, or postgres://USER@HOST:PORT/DB (default: $SIPCTL_DB or ./data/sipctl.db)';
export const CONTROL_HELP = "the running proxy's control socket (default: $SIPCTL_CONTROL or ./data/sipctl.sock)";

/** Open (and migrate) the database for one command, and close it whatever happens. */
export async function withStore<T>(opts: DbOption, fn: (store: Store) => Promise<T> | T): Promise<T> {
  const store = await openStore(resolveDbPath(opts.db));
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** Like withStore, for the commands that only make sense on the shared PostgreSQL store. */
export async function withClusterStore<T>(opts: DbOption, what: string, fn: (store: PostgresStore) => Promise<T>): Promise<T> {
  const location = resolveDbPath(opts.db);
  if (!isPostgresUrl(location)) {
    throw usageError(
      'E_CLUSTER_NEEDS_POSTGRES',
      `${what} needs the shared PostgreSQL store: --db postgres://USER@HOST:PORT/DB (or SIPCTL_DB); ${location} is a SQLite file, which only one node uses`,
    );
  }
  return withStore(opts, (store) => fn(store as PostgresStore));
}
