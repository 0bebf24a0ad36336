/**
 * Printing helpers shared by the sipctl commands: tables for people (cli-table3, no colour
 * codes so output can be piped and diffed), JSON for scripts (stable keys, one document per
 * command), and the few formats every command writes the same way.
 */
import Table from 'cli-table3';

export type CellValue = string | number | null | undefined;

/** A table as text: plain borders, no ANSI colours, numbers right-aligned when asked. */
export function renderTable(
  head: readonly string[],
  rows: Iterable<readonly CellValue[]>,
  opts: { align?: readonly ('left' | 'right')[] } = {},
): string {
  const table = new Table({
    head: [...head],
    // compact: a rule under the head only, so a long listing stays one line per entry.
    style: { head: [], border: [], compact: true },
    ...(opts.align ? { colAligns: [...opts.align] } : {}),
  });
  for (const row of rows) table.push(row.map((c) => (c === null || c === undefined ? '' : c)));
  return table.toString();
}

export function printTable(
  head: readonly string[],
  rows: Iterable<readonly CellValue[]>,
  opts: { align?: readonly ('left' | 'right')[] } = {},
): void {
  process.stdout.write(renderTable(head, rows, opts) + '\n');
}

export function printLine(text: string): void {
  process.stdout.write(text + '\n');
}

/** One JSON document, indented for reading, newline-terminated. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/**
 * A JSON object whose last key is a long list, written one item per line as it is produced
 * (a million-entry table need not be held as one string), from a list or a database cursor. The result parses as one document:
 *   {"total":3,"entries":[
 *   {...},
 *   {...}
 *   ]}
 */
export async function printJsonList(
  head: Record<string, unknown>,
  listKey: string,
  items: Iterable<unknown> | AsyncIterable<unknown>,
): Promise<void> {
  const opening = JSON.stringify({ ...head, [listKey]: [] });
  // Re-open the empty list the stringified head ends with: `...,"entries":[]}` → `...,"entries":[`
  process.stdout.write(opening.slice(0, -2) + '\n');
  const BATCH = 1000;
  let batch: string[] = [];
  let first = true;
  for await (const item of items) {
    batch.push(JSON.stringify(item));
    if (batch.length === BATCH) {
      process.stdout.write((first ? '' : ',\n') + batch.join(',\n'));
      first = false;
      batch = [];
    }
  }
  if (batch.length > 0) process.stdout.write((first ? '' : ',\n') + batch.join(',\n'));
  process.stdout.write('\n]}\n');
}

/** `10.0.0.0/8`, `2001:db8::/32`. */
export function formatNetwork(ipAddr: string, mask: number): string {
  return `${ipAddr}/${mask}`;
}

/** Port 0 in the address table means any source port. */
export function formatPort(port: number): string {
  return port === 0 ? 'any' : String(port);
}

/** `1 entry`, `3 entries`. */
export function plural(n: number, one: string, many: string): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}
