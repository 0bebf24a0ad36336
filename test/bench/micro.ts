/**
 * `make bench-micro`: the hot path's pieces on one core, no sockets.
 *   1. SIP: messages parsed + edited + serialized per second (INVITE, 200 OK with SDP), and
 *      each message of a call through the real proxy core;
 *   2. address-table lookups per second (10,000 entries; `make bench-acl` has the full
 *      10 / 10,000 / 1,000,000 study);
 *   3. dispatcher selections per second per algorithm.
 */
import Table from 'cli-table3';
import { AddressTable, type AddressRow } from '../../src/acl/table.js';
import { benchCrafted } from './crafted.js';
import { benchDispatcher } from './dispatcher.js';
import { benchSip } from './sip.js';

function fmt(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)} M/s` : `${(n / 1e3).toFixed(0)} k/s`;
}

function benchAcl(): { perSecond: number } {
  const rows: AddressRow[] = [];
  for (let i = 0; i < 10_000; i++) {
    rows.push({ id: i + 1, grp: i % 8, ip_addr: `10.${(i >> 8) & 255}.${i & 255}.0`, mask: 24 + (i % 9), port: i % 5 === 0 ? 5060 : 0, tag: null });
  }
  const masked = rows.map((r) => {
    const [a, b, c] = r.ip_addr.split('.');
    return { ...r, ip_addr: r.mask >= 32 ? r.ip_addr : `${a}.${b}.${c}.0` };
  });
  const table = AddressTable.build(masked.map((r) => ({ ...r, mask: Math.min(r.mask, 24) })));
  const sources = Array.from({ length: 1024 }, (_, i) => `10.${(i * 7) & 255}.${(i * 13) & 255}.${i & 255}`);
  let hits = 0;
  for (let i = 0; i < 100_000; i++) if (table.match(sources[i & 1023]!, 5060, null)) hits++;
  const n = 2_000_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) if (table.match(sources[i & 1023]!, 5060, null)) hits++;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (hits === 0) throw new Error('no lookup matched: the benchmark is broken');
  return { perSecond: n / s };
}

async function main(): Promise<void> {
  const sip = benchSip();
  const t = new Table({ head: ['SIP hot path', 'per second', 'µs each'], style: { head: [], border: [] }, colAligns: ['left', 'right', 'right'] });
  for (const r of sip) t.push([r.label, fmt(r.perSecond), r.usPerOp.toFixed(2)]);
  process.stdout.write(`SIP messages (Node ${process.version}, one core)\n${t.toString()}\n\n`);
  if (process.env.BENCH_ONLY === undefined || /crafted/.test(process.env.BENCH_ONLY)) {
    const crafted = benchCrafted();
    const c = new Table({
      head: ['worst crafted request (≤ 64 KB)', 'bytes', 'admitted µs', '× INVITE', 'not admitted µs', '× INVITE'],
      style: { head: [], border: [] },
      colAligns: ['left', 'right', 'right', 'right', 'right', 'right'],
    });
    const x = (us: number): string => `${(us / crafted.typicalUs).toFixed(1)}×`;
    for (const r of crafted.rows) c.push([r.shape, r.bytes, r.admittedUs.toFixed(1), x(r.admittedUs), r.unadmittedUs.toFixed(1), x(r.unadmittedUs)]);
    const worstA = Math.max(...crafted.rows.map((r) => r.admittedUs));
    const worstU = Math.max(...crafted.rows.map((r) => r.unadmittedUs));
    process.stdout.write(
      `Crafted requests through the proxy core; a typical INVITE costs ${crafted.typicalUs.toFixed(2)} µs (goal: each at most 20×)\n${c.toString()}\n` +
        `worst: admitted ${x(worstA)}, not admitted ${x(worstU)}\n\n`,
    );
  }
  const acl = benchAcl();
  process.stdout.write(`address-table lookups, 10,000 entries: ${fmt(acl.perSecond)}\n\n`);
  await benchDispatcher();
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
