/**
 * What every table command (`sipctl address ...`, `sipctl dispatcher ...`) shares: the
 * --db / --control / --json options and opening the store for one command.
 */
import { resolveDbPath } from '../src/config/paths.js';
import { openStore, type Store } from '../src/store/index.js';

export interface DbOption {
  db?: string;
}
export interface ControlOption {
  control?: string;
}
export interface JsonOption {
  json?: boolean;
}

export const DB_HELP = 'SQLite database (default: $SIPCTL_DB or ./data/sipctl.db)';
export const CONTROL_HELP = "the running proxy's control socket (default: $SIPCTL_CONTROL or ./data/sipctl.sock)";

/** Open (and migrate) the database for one command, and close it whatever happens. */
export function withStore<T>(opts: DbOption, fn: (store: Store) => T): T {
  const store = openStore(resolveDbPath(opts.db));
  try {
    return fn(store);
  } finally {
    store.close();
  }
}
