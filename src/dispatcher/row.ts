/**
 * Validation of what a person or the database gives for a dispatcher row. The CLI uses
 * the same checks before writing, so a row the CLI accepted never fails a reload.
 */
import { SipctlError, usageError } from '../errors.js';
import { parseAttrs } from './attrs.js';
import { parseDestinationUri, type DestinationUri } from './destination-uri.js';
import { DS_FLAGS_MASK, type DestinationAttrs } from './types.js';

const INT_RE = /^-?[0-9]{1,10}$/;

/** A set id: a non-negative integer (the table's CHECK (setid >= 0)). */
export function parseSetid(text: string | number): number {
  const s = String(text).trim();
  if (!/^[0-9]{1,10}$/.test(s) || Number(s) > 2 ** 31 - 1) {
    throw usageError('E_DS_BAD_SETID', `set id '${String(text)}' must be a non-negative integer, e.g. 1`);
  }
  return Number(s);
}

/** A priority: an integer; higher is tried first (Kamailio orders sets by priority). */
export function parsePriority(text: string | number): number {
  const s = String(text).trim();
  if (!INT_RE.test(s) || Math.abs(Number(s)) > 2 ** 31 - 1) {
    throw usageError('E_DS_BAD_PRIORITY', `priority '${String(text)}' must be an integer, e.g. 10 (higher is tried first)`);
  }
  return Number(s);
}

/** Flags: Kamailio's bits 1 inactive, 2 trying, 4 disabled, 8 probing (0..15). */
export function parseFlags(text: string | number): number {
  const s = String(text).trim();
  const n = /^[0-9]{1,3}$/.test(s) ? Number(s) : NaN;
  if (!(n >= 0 && (n & ~DS_FLAGS_MASK) === 0)) {
    throw usageError(
      'E_DS_BAD_FLAGS',
      `flags '${String(text)}' must be a sum of 1 (inactive), 2 (trying), 4 (disabled), 8 (probing): 0..15`,
    );
  }
  return n;
}

export interface CheckedRow {
  setid: number;
  uri: DestinationUri;
  flags: number;
  priority: number;
  attrs: DestinationAttrs;
}

/** Validates one table row; errors name the row id. */
export function checkRow(row: {
  id?: number;
  setid: unknown;
  destination: unknown;
  flags: unknown;
  priority: unknown;
  attrs: unknown;
}): CheckedRow {
  try {
    return {
      setid: parseSetid(row.setid as string | number),
      uri: parseDestinationUri(String(row.destination)),
      flags: parseFlags((row.flags ?? 0) as string | number),
      priority: parsePriority((row.priority ?? 0) as string | number),
      attrs: parseAttrs(String(row.attrs ?? '')),
    };
  } catch (err) {
    if (err instanceof SipctlError && row.id !== undefined) {
      throw new SipctlError(err.code, `dispatcher row ${row.id}: ${err.message}`, { usage: err.exitCode === 2, cause: err });
    }
    throw err;
  }
}
