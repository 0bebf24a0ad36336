/**
 * Selection algorithms, by name or by Kamailio's ds_select_dst() number. Numbers Kamailio
 * defines but sipctl does not implement (5 auth username, 7 PV hash,
 * 12 parallel, 13 latency) are refused with a clear message instead of Kamailio's silent
 * "first entry" fallback.
 */
import { usageError } from '../errors.js';

export type Algorithm =
  | 'hash-callid'
  | 'hash-from'
  | 'hash-to'
  | 'hash-ruri'
  | 'round-robin'
  | 'random'
  | 'priority'
  | 'weight'
  | 'relative-weight'
  | 'call-load';

/** Kamailio dispatcher algorithm number → name. */
export const ALGORITHM_NUMBERS: ReadonlyMap<number, Algorithm> = new Map<number, Algorithm>([
  [0, 'hash-callid'],
  [1, 'hash-from'],
  [2, 'hash-to'],
  [3, 'hash-ruri'],
  [4, 'round-robin'],
  [6, 'random'],
  [8, 'priority'],
  [9, 'weight'],
  [10, 'call-load'],
  [11, 'relative-weight'],
]);

export const ALGORITHMS: readonly Algorithm[] = [...ALGORITHM_NUMBERS.values()];

const BY_NAME: ReadonlyMap<string, Algorithm> = new Map(ALGORITHMS.map((a) => [a, a]));

const UNSUPPORTED: ReadonlyMap<number, string> = new Map([
  [5, 'hash over the authorization username'],
  [7, 'hash over a PV string'],
  [12, 'parallel forking'],
  [13, 'latency-based'],
]);

function listing(): string {
  return [...ALGORITHM_NUMBERS].map(([n, a]) => `${a} (${n})`).join(', ');
}

/**
 * `round-robin`, `4`, `ROUND-ROBIN` → 'round-robin'. Anything else is a usage error
 * E_DS_BAD_ALGORITHM listing the algorithms and their numbers.
 */
export function parseAlgorithm(text: string | number): Algorithm {
  const s = String(text).trim().toLowerCase();
  if (/^[0-9]{1,3}$/.test(s)) {
    const n = Number(s);
    const a = ALGORITHM_NUMBERS.get(n);
    if (a !== undefined) return a;
    const what = UNSUPPORTED.get(n);
    if (what !== undefined) {
      throw usageError('E_DS_BAD_ALGORITHM', `dispatcher algorithm ${n} (${what}) is not supported; use one of: ${listing()}`);
    }
    throw usageError('E_DS_BAD_ALGORITHM', `unknown dispatcher algorithm ${n}; use one of: ${listing()}`);
  }
  const a = BY_NAME.get(s);
  if (a !== undefined) return a;
  throw usageError('E_DS_BAD_ALGORITHM', `unknown dispatcher algorithm '${String(text)}'; use one of: ${listing()}`);
}

/** The Kamailio number of an algorithm (for dumps and logs). */
export function algorithmNumber(a: Algorithm): number {
  for (const [n, name] of ALGORITHM_NUMBERS) if (name === a) return n;
  return -1;
}
