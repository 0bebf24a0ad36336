/**
 * Dispatcher selection benchmark: selections per second per algorithm, with 10 and 10,000
 * destinations in the set (every pick is meant to be O(1): the rate should barely move
 * between the two sizes). Also the cost of a state change (the tables it rebuilds) and of
 * building the sets. Run: `make build-bench && node dist-bench/test/bench/dispatcher.js`.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Table from 'cli-table3';
import { ALGORITHMS, type Algorithm } from '../../src/dispatcher/algorithm.js';
import { DispatcherHolder } from '../../src/dispatcher/holder.js';
import type { DispatcherRow, SelectionKey } from '../../src/dispatcher/types.js';

const SIZES = [10, 10_000];
/** Each measurement runs this long (after a warm-up). */
const RUN_MS = 300;
const KEYS = 1024;

function rowsFor(n: number): DispatcherRow[] {
  const rows: DispatcherRow[] = [];
  for (let i = 0; i < n; i++) {
    const a = 1 + (i >> 8);
    const b = i & 255;
    rows.push({
      id: i + 1,
      setid: 1,
      destination: `sip:10.${a >> 8}.${a & 255}.${b}:5060`,
      flags: 0,
      priority: i % 7,
      // weights: percentages (Kamailio: only the first 100 % are used); rweights 1..100
      attrs: `weight=${i < 10 ? 10 : 0};rweight=${1 + (i % 100)}`,
      description: '',
    });
  }
  return rows;
}

function keys(): SelectionKey[] {
  return Array.from({ length: KEYS }, (_, i) => ({
    callId: `${(i * 2654435761) >>> 0}-a84b4c76e66710@pc33.atlanta.example.com`,
    fromUri: `sip:user${i}@atlanta.example.com;transport=udp`,
    toUri: `sip:+1555${String(i).padStart(7, '0')}@biloxi.example.com`,
    requestUri: `sip:+1555${String(i).padStart(7, '0')}@10.0.0.1:5060;user=phone`,
  }));
}

function measure(fn: (i: number) => void): number {
  for (let i = 0; i < 50_000; i++) fn(i); // warm-up (JIT)
  let count = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(RUN_MS) * 1_000_000n;
  let now = start;
  while (now < deadline) {
    for (let i = 0; i < 10_000; i++) fn(count + i);
    count += 10_000;
    now = process.hrtime.bigint();
  }
  return count / (Number(now - start) / 1e9);
}

function fmt(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)} M/s` : `${(n / 1e3).toFixed(0)} k/s`;
}

export async function benchDispatcher(): Promise<void> {
  const ks = keys();
  const results = new Map<Algorithm, number[]>();
  const extra: { size: number; loadMs: number; stateChangeMs: number }[] = [];
  for (const size of SIZES) {
    const holder = new DispatcherHolder();
    const rows = rowsFor(size);
    const t0 = performance.now();
    await holder.reload(rows);
    const loadMs = performance.now() - t0;
    const sets = holder.current;
    for (const alg of ALGORITHMS) {
      const rate = measure((i) => {
        sets.select(1, alg, ks[i & (KEYS - 1)]!);
      });
      const list = results.get(alg) ?? [];
      list.push(rate);
      results.set(alg, list);
    }
    // A state change rebuilds the set's active list and slot tables.
    const uri = rows[size >> 1]!.destination;
    const t1 = performance.now();
    const flips = 20;
    for (let i = 0; i < flips; i++) sets.setState(1, uri, i % 2 === 0 ? 'inactive' : 'active', 'bench');
    extra.push({ size, loadMs, stateChangeMs: (performance.now() - t1) / flips });
    holder.close();
  }

  const table = new Table({
    head: ['algorithm', ...SIZES.map((s) => `${s.toLocaleString('en-US')} destinations`)],
    style: { head: [], border: [] },
    colAligns: ['left', ...SIZES.map(() => 'right' as const)],
  });
  for (const [alg, rates] of results) table.push([alg, ...rates.map(fmt)]);
  process.stdout.write(`dispatcher selections per second (Node ${process.version}, one core)\n${table.toString()}\n`);
  const t2 = new Table({ head: ['destinations', 'load (reload) ms', 'state change ms'], style: { head: [], border: [] }, colAligns: ['right', 'right', 'right'] });
  for (const e of extra) t2.push([e.size.toLocaleString('en-US'), e.loadMs.toFixed(1), e.stateChangeMs.toFixed(3)]);
  process.stdout.write(`${t2.toString()}\n`);
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  benchDispatcher().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
