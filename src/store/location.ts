/**
 * What `--db` / `SIPCTL_DB` / the config's `db` names: a `postgres://` (or `postgresql://`)
 * URL selects the PostgreSQL store; anything else is a SQLite file path, as before.
 */
import { usageError } from '../errors.js';

const POSTGRES_URL = /^postgres(?:ql)?:\/\//i;

export type StoreKind = 'sqlite' | 'postgres';

/** True when `db` selects PostgreSQL. */
export function isPostgresUrl(db: string): boolean {
  return POSTGRES_URL.test(db);
}

export function storeKind(db: string): StoreKind {
  return isPostgresUrl(db) ? 'postgres' : 'sqlite';
}

/**
 * The location as it may be shown in logs and messages: a SQLite path as given, a URL with
 * its password (if any) replaced by `***` — the start line and every error name the
 * database, and a password must not end up in a terminal scrollback or a log file.
 */
export function describeLocation(db: string): string {
  if (!isPostgresUrl(db)) return db;
  try {
    const u = new URL(db);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return db.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@');
  }
}

/**
 * A PostgreSQL URL checked enough to say what is wrong before connecting: it parses, and
 * names a database. Host and port may be left out (libpq's defaults: localhost, 5432).
 */
export function checkPostgresUrl(db: string, what = '--db'): void {
  let u: URL;
  try {
    u = new URL(db);
  } catch {
    throw usageError(
      'E_STORE_BAD_URL',
      `${what} ${JSON.stringify(describeLocation(db))} is not a valid URL; expected postgres://USER@HOST:PORT/DATABASE`,
    );
  }
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (database === '' || database.includes('/')) {
    throw usageError(
      'E_STORE_BAD_URL',
      `${what} ${describeLocation(db)} names no database; expected postgres://USER@HOST:PORT/DATABASE`,
    );
  }
  if (u.port !== '' && (Number(u.port) < 1 || Number(u.port) > 65535)) {
    throw usageError('E_STORE_BAD_URL', `${what} ${describeLocation(db)}: port ${u.port} is out of range`);
  }
}
