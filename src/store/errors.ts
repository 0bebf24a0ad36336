/**
 * Recognising the databases' own errors, whichever store raised them: better-sqlite3 throws
 * SqliteError with `code` set to SQLite's extended result code name (SQLITE_CONSTRAINT_UNIQUE);
 * node-postgres throws DatabaseError with `code` set to the SQLSTATE (23505). The
 * repositories turn both into the same SipctlError, so the CLI says the same thing for either.
 */

function codeOf(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const code: unknown = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** A UNIQUE index refused the row (SQLITE_CONSTRAINT_UNIQUE / _PRIMARYKEY; SQLSTATE 23505). */
export function isUniqueViolation(err: unknown): boolean {
  const code = codeOf(err);
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505';
}

/** A CHECK / NOT NULL constraint refused the row (SQLSTATE 23514 / 23502). */
export function isCheckViolation(err: unknown): boolean {
  const code = codeOf(err);
  return code === 'SQLITE_CONSTRAINT_CHECK' || code === 'SQLITE_CONSTRAINT_NOTNULL' || code === '23514' || code === '23502';
}

/**
 * The server could not be reached or went away (as opposed to a statement it refused):
 * Node's socket errors, pg's own "Connection terminated", and the SQLSTATE classes 08
 * (connection exception) and 57P (operator intervention: shutdown, terminated backend).
 */
export function isConnectionError(err: unknown): boolean {
  const code = codeOf(err);
  if (code !== undefined) {
    if (/^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|ECONNABORTED)$/.test(code)) return true;
    if (/^08/.test(code) || /^57P0[1-4]$/.test(code)) return true;
  }
  const message = err instanceof Error ? err.message : String(err);
  return /Connection terminated|connection timeout|timeout expired|Query read timeout|Client has encountered a connection error|not queryable/i.test(message);
}

/** The message of any thrown value, for wrapping into a SipctlError. */
export function messageOf(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) {
    // Node's happy-eyeballs connect fails with an AggregateError whose own message is empty.
    return err.errors.map((e) => messageOf(e)).join('; ');
  }
  if (err instanceof Error) return err.message !== '' ? err.message : (codeOf(err) ?? err.name);
  return String(err);
}
