/** Recognising better-sqlite3's errors by their SQLite result codes (extended codes). */

/** better-sqlite3 throws SqliteError with `code` set to the extended result code name. */
function sqliteCode(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const code: unknown = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** A UNIQUE index refused the row (SQLITE_CONSTRAINT_UNIQUE, or _PRIMARYKEY). */
export function isUniqueViolation(err: unknown): boolean {
  const code = sqliteCode(err);
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** A CHECK / NOT NULL constraint refused the row. */
export function isCheckViolation(err: unknown): boolean {
  const code = sqliteCode(err);
  return code === 'SQLITE_CONSTRAINT_CHECK' || code === 'SQLITE_CONSTRAINT_NOTNULL';
}

/** The message of any thrown value, for wrapping into a SipctlError. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
