/**
 * Address-table benchmark (`make bench-acl`): lookups/s at 10, 10,000 and 1,000,000 entries,
 * build time at 100,000 and 1,000,000 entries (in process, and through loadAddressTable from a
 * real SQLite file), and memory.
 *
 * Entries: 60% IPv4 in 64 random /8 blocks (masks /8../32, mostly long), 40% IPv6 in 2000::/3
 * (masks /32../128), 8 groups, 20% of them for one source port. Probes: half fall inside a
 * random entry, half are random addresses (mostly misses); 60% IPv4 (a tenth of those written
 * IPv4-mapped, as a dual-stack socket reports them), 40% IPv6. Each table is probed with
 * `groups` = any and = [2, 5]; the rounds alternate between table sizes and the median is
 * reported, as the machines are shared and noisy.
 *
 * Uniformly random probes over a million entries are the worst case: nearly every lookup then
 * misses every cache level (a lookup reads 3-4 places in ~60 MB of tables). A proxy's traffic
 * comes from a working set of peers (its trunks and PBXs), so the 1M table is also probed with
 * the same kind of mix drawn from 4,096 active sources.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import ipaddr from 'ipaddr.js';
import { loadAddressTable } from '../../src/acl/load.js';
import { AddressTable, type AddressRow } from '../../src/acl/table.js';

/** The label of the working-set case (the 1M table, 4,096 active sources). */
const ACTIVE = '1M, 4,096 active sources';

const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = prng(20240501);
const int = (n: number): number => Math.floor(rand() * n);

const blocks4 = Array.from({ length: 64 }, () => 1 + int(223));

function v4Mask(): number {
  const r = rand();
  if (r < 0.6) return 32;
  if (r < 0.85) return 24 + int(8);
  if (r < 0.97) return 16 + int(8);
  return 8 + int(8);
}
function v6Mask(): number {
  const r = rand();
  if (r < 0.4) return 128;
  if (r < 0.7) return 64 + int(64);
  return 32 + int(32);
}

function clearHost(bytes: number[], mask: number): number[] {
  return bytes.map((b, i) => {
    const keep = mask - i * 8;
    return keep >= 8 ? b : keep <= 0 ? 0 : b & (0xff << (8 - keep)) & 0xff;
  });
}
function randomV4(): number[] {
  return [blocks4[int(64)], int(256), int(256), int(256)];
}
function randomV6(): number[] {
  const b = Array.from({ length: 16 }, () => int(256));
  b[0] = 0x20 | (b[0] & 0x1f);
  return b;
}
function text(bytes: number[]): string {
  if (bytes.length === 4) return bytes.join('.');
  return ipaddr.fromByteArray(bytes).toString();
}

function makeRows(n: number): AddressRow[] {
  const rows: AddressRow[] = [];
  for (let id = 1; id <= n; id++) {
    const v4 = rand() < 0.6;
    const mask = v4 ? v4Mask() : v6Mask();
    const bytes = clearHost(v4 ? randomV4() : randomV6(), mask);
    rows.push({
      id, grp: 1 + int(8), ip_addr: text(bytes), mask,
      port: rand() < 0.8 ? 0 : rand() < 0.5 ? 5060 : 5061,
      tag: rand() < 0.1 ? `customer-${id}` : null,
    });
  }
  return rows;
}

/** Probe texts: half inside a random entry, half random; see the header. */
function makeProbes(rows: AddressRow[], n: number): string[] {
  const probes: string[] = [];
  for (let i = 0; i < n; i++) {
    let bytes: number[];
    if (rand() < 0.5) {
      const r = rows[int(rows.length)];
      const base = ipaddr.parse(r.ip_addr).toByteArray();
      bytes = base.map((b, k) => {
        const keep = r.mask - k * 8;
        if (keep >= 8) return b;
        const host = keep <= 0 ? 0xff : 0xff >> keep;
        return (b & ~host & 0xff) | (int(256) & host);
      });
    } else {
      bytes = rand() < 0.6 ? [int(224), int(256), int(256), int(256)] : randomV6();
    }
    const ip = bytes.length === 4 && rand() < 0.1 ? `::ffff:${text(bytes)}` : text(bytes);
    // Through a Buffer, as Node makes rinfo.address: a flat string, not a concatenation.
    probes.push(Buffer.from(ip).toString('latin1'));
  }
  return probes;
}

let sink = 0;
/** Lookups per second over `probes`, repeated for at least `minMs`. */
function lookupRate(table: AddressTable, probes: string[], groups: readonly number[] | null, minMs: number): number {
  let done = 0;
  let hits = 0;
  const start = performance.now();
  let elapsed = 0;
  for (let round = 0; round < 1000 && elapsed < minMs; round++) {
    for (let i = 0; i < probes.length; i++) {
      const m = table.match(probes[i], (i & 7) === 0 ? 5061 : 5060, groups);
      if (m !== null) hits++;
    }
    done += probes.length;
    elapsed = performance.now() - start;
  }
  sink += hits;
  return (done / elapsed) * 1000;
}

function hitShare(table: AddressTable, probes: string[], groups: readonly number[] | null): number {
  let hits = 0;
  for (let i = 0; i < probes.length; i++) if (table.match(probes[i], (i & 7) === 0 ? 5061 : 5060, groups)) hits++;
  return hits / probes.length;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const mb = (bytes: number): string => `${(bytes / 1048576).toFixed(0)} MB`;
const fmtRate = (r: number): string => `${(r / 1e6).toFixed(2)} M/s`;

function createDb(dir: string, name: string, rows: AddressRow[]): { path: string; count: number } {
  const path = join(dir, name);
  const db = new Database(path);
  db.pragma('journal_mode = OFF');
  db.pragma('synchronous = OFF');
  db.exec(readFileSync(new URL('../../../migrations/001_address.sql', import.meta.url), 'utf8'));
  const insert = db.prepare('INSERT OR IGNORE INTO address (id, grp, ip_addr, mask, port, tag) VALUES (?, ?, ?, ?, ?, ?)');
  db.transaction(() => {
    for (const r of rows) insert.run(r.id, r.grp, r.ip_addr, r.mask, r.port, r.tag);
  })();
  const count = (db.prepare('SELECT count(*) AS n FROM address').get() as { n: number }).n;
  db.close();
  return { path, count };
}

async function main(): Promise<void> {
  const began = performance.now();
  const rssStart = process.memoryUsage().rss;
  const log = (s: string): void => void process.stderr.write(`${s}\n`);

  log('generating 1,000,000 rows ...');
  const rows1m = makeRows(1_000_000);
  const rows100k = rows1m.slice(0, 100_000);
  const sizes = [10, 10_000, 1_000_000];
  const rowsBySize = new Map(sizes.map((n) => [n, n === 1_000_000 ? rows1m : rows1m.slice(0, n)]));

  // ---- in-process builds
  const build: Record<string, number[]> = { '100k': [], '1M': [] };
  let table1m: AddressTable | undefined;
  for (let round = 0; round < 3; round++) {
    for (const [label, rows] of [['100k', rows100k], ['1M', rows1m]] as const) {
      table1m = undefined;
      gc();
      const t0 = performance.now();
      const t = AddressTable.build(rows);
      build[label].push(performance.now() - t0);
      if (label === '1M') table1m = t;
    }
  }
  gc();
  const mem1m = process.memoryUsage();

  // ---- lookups, alternating between sizes
  const tables = new Map<number | string, AddressTable>();
  for (const n of sizes) tables.set(n, n === 1_000_000 ? (table1m as AddressTable) : AddressTable.build(rowsBySize.get(n) as AddressRow[]));
  const probes = new Map<number | string, string[]>(sizes.map((n) => [n, makeProbes(rowsBySize.get(n) as AddressRow[], 1 << 18)]));
  // The working-set case: 4,096 sources of the same mix, each probed 64 times, shuffled.
  const active = makeProbes(rows1m, 4096);
  const workingSet = Array.from({ length: 1 << 18 }, (_, i) => active[i & 4095]);
  for (let i = workingSet.length - 1; i > 0; i--) {
    const j = int(i + 1);
    [workingSet[i], workingSet[j]] = [workingSet[j], workingSet[i]];
  }
  probes.set(ACTIVE, workingSet);
  tables.set(ACTIVE, table1m as AddressTable);
  const groupModes: { label: string; groups: readonly number[] | null }[] = [
    { label: 'any', groups: null },
    { label: '[2,5]', groups: [2, 5] },
  ];
  const rates = new Map<string, number[]>();
  log('measuring lookups ...');
  const cases: (number | string)[] = [...sizes, ACTIVE];
  for (let round = 0; round < 5; round++) {
    for (const n of cases) {
      for (const g of groupModes) {
        const key = `${n}|${g.label}`;
        const r = lookupRate(tables.get(n) as AddressTable, probes.get(n) as string[], g.groups, 400);
        rates.set(key, [...(rates.get(key) ?? []), r]);
      }
    }
  }

  // ---- loads from SQLite, through the worker
  log('writing SQLite files ...');
  const dir = mkdtempSync(join(tmpdir(), 'sipctl-bench-acl-'));
  const loads: { label: string; rows: number; ms: number[]; size: number }[] = [];
  try {
    for (const [label, rows] of [['100k', rows100k], ['1M', rows1m]] as const) {
      const { path, count } = createDb(dir, `${label}.db`, rows);
      const entry = { label, rows: count, ms: [] as number[], size: 0 };
      for (let round = 0; round < 3; round++) {
        gc();
        const { table, ms } = await loadAddressTable(path);
        entry.ms.push(ms);
        entry.size = table.size;
      }
      loads.push(entry);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // ---- report
  const out: string[] = [];
  out.push('address table (src/acl) — medians of alternating rounds; one core');
  out.push('');
  const W = ACTIVE.length;
  out.push(`${'entries'.padEnd(W)}  groups  lookups/s   vs 10 entries  hits`);
  const base = new Map(groupModes.map((g) => [g.label, median(rates.get(`10|${g.label}`) as number[])]));
  for (const n of cases) {
    for (const g of groupModes) {
      const r = median(rates.get(`${n}|${g.label}`) as number[]);
      const ratio = (base.get(g.label) as number) / r;
      const hits = hitShare(tables.get(n) as AddressTable, probes.get(n) as string[], g.groups);
      out.push(
        `${n.toLocaleString('en-US').padEnd(W)}  ${g.label.padEnd(6)} ${fmtRate(r).padStart(10)}   ${`${ratio.toFixed(2)}x slower`.padStart(13)}  ${(hits * 100).toFixed(0).padStart(3)}%`,
      );
    }
  }
  out.push('');
  out.push('build                          median     min');
  for (const label of ['100k', '1M']) {
    out.push(`${`AddressTable.build ${label}`.padEnd(30)} ${`${median(build[label]).toFixed(0)} ms`.padStart(7)} ${`${Math.min(...build[label]).toFixed(0)} ms`.padStart(7)}`);
  }
  for (const l of loads) {
    out.push(
      `${`loadAddressTable ${l.label} (SQLite)`.padEnd(30)} ${`${median(l.ms).toFixed(0)} ms`.padStart(7)} ${`${Math.min(...l.ms).toFixed(0)} ms`.padStart(7)}   (${l.rows.toLocaleString('en-US')} rows, ${l.size.toLocaleString('en-US')} entries)`,
    );
  }
  out.push('');
  out.push(
    `1M table: ${mb((tables.get(1_000_000) as AddressTable).memoryBytes)} of typed arrays (${((tables.get(1_000_000) as AddressTable).memoryBytes / 1_000_000).toFixed(0)} bytes per entry)`,
  );
  out.push(
    `process with the 1M table and its 1M input rows: rss ${mb(mem1m.rss)} (at start ${mb(rssStart)}), heap ${mb(mem1m.heapUsed)}, array buffers ${mb(mem1m.arrayBuffers)}`,
  );
  out.push(`finished in ${((performance.now() - began) / 1000).toFixed(0)} s`);
  process.stdout.write(`${out.join('\n')}\n`);
  if (sink < 0) process.stdout.write('\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`bench-acl: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
