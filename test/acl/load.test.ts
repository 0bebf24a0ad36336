import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SipctlError } from '../../src/errors.js';
import { AddressTableHolder, loadAddressTable } from '../../src/acl/load.js';
import { AddressTable } from '../../src/acl/table.js';
import { createAddressDb, replaceRows, type FixtureRow } from './sqlite-fixture.js';
import { rejection } from '../helpers/errors.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sipctl-acl-load-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const sample: FixtureRow[] = [
  { id: 1, grp: 1, ip_addr: '192.0.2.0', mask: 24, tag: 'office' },
  { id: 2, grp: 1, ip_addr: '192.0.2.10', mask: 32, port: 5060, tag: 'pbx-a — Zürich' },
  { id: 3, grp: 2, ip_addr: '2001:db8::', mask: 32 },
  { id: 4, grp: 2, ip_addr: '2001:db8:1::7', mask: 128, tag: 'pbx-b' },
  { id: 5, grp: 3, ip_addr: '::ffff:198.51.100.0', mask: 120 },
];

// In a worker for every reload; in the proxy's thread for the load at start (serve): the
// same table and the same errors either way.
describe.each([
  { where: 'in a worker', opts: {} },
  { where: 'in this thread', opts: { inThread: true } },
])('loadAddressTable $where', ({ opts }) => {
  it('builds the table from a real SQLite file, the same as an in-process build', async () => {
    const path = createAddressDb(dir, `sample-${opts.inThread === true}.db`, sample);
    const { table, ms } = await loadAddressTable(path, opts);
    expect(ms).toBeGreaterThan(0);
    expect(table.size).toBe(5);
    expect(table.groupCounts()).toEqual([{ grp: 1, count: 2 }, { grp: 2, count: 2 }, { grp: 3, count: 1 }]);
    expect(table.match('192.0.2.10', 5060)).toEqual({ id: 2, grp: 1, ipAddr: '192.0.2.10', mask: 32, port: 5060, tag: 'pbx-a — Zürich' });
    expect(table.match('192.0.2.10', 5061)?.tag).toBe('office');
    expect(table.match('2001:db8:1::7', 1, [2])?.tag).toBe('pbx-b');
    expect(table.match('::ffff:198.51.100.20', 1)?.id).toBe(5);
    const inProcess = AddressTable.build(sample.map((r) => ({ port: 0, tag: null, ...r, id: r.id as number })));
    expect(table.entries()).toEqual(inProcess.entries());
  });

  it('loads an empty address table', async () => {
    const { table } = await loadAddressTable(createAddressDb(dir, `empty-${opts.inThread === true}.db`, []), opts);
    expect(table.size).toBe(0);
    expect(table.match('192.0.2.1', 5060)).toBeNull();
  });

  it('says so when the file is missing', async () => {
    const err = await rejection(loadAddressTable(join(dir, 'nope.db'), opts));
    expect(err.code).toBe('E_ACL_RELOAD_FAILED');
    expect(err.message).toMatch(/^address table reload failed: database .*nope\.db does not exist/);
  });

  it('says so when the file has no address table', async () => {
    const path = join(dir, `other-${opts.inThread === true}.db`);
    const db = new Database(path);
    db.exec('CREATE TABLE something (x INTEGER)');
    db.close();
    const err = await rejection(loadAddressTable(path, opts));
    expect(err.code).toBe('E_ACL_RELOAD_FAILED');
    expect(err.message).toMatch(/has no address table \(run `sipctl migrate`\)/);
  });

  it('names a bad row (the schema allows mask 40; IPv4 does not)', async () => {
    const path = createAddressDb(dir, `bad-${opts.inThread === true}.db`, [...sample, { id: 77, grp: 1, ip_addr: '10.0.0.0', mask: 40 }]);
    const err = await rejection(loadAddressTable(path, opts));
    expect(err.code).toBe('E_ACL_RELOAD_FAILED');
    expect(err.message).toMatch(/address row id 77: mask 40 is out of range for IPv4 \(0-32\)/);
    expect((err.cause as SipctlError).code).toBe('E_ACL_BAD_ROW');
  });
});

describe('loadAddressTable: reading rows', () => {
  it('reads a table larger than one chunk, tags and ids intact', async () => {
    const rows: FixtureRow[] = [];
    for (let i = 0; i < 70_000; i++) {
      rows.push({ id: i * 3 - 1000, grp: i % 7, ip_addr: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, mask: 32, tag: i % 1000 === 0 ? `t${i}` : null });
    }
    rows.push({ id: 500_000, grp: 1, ip_addr: '2001:db8::', mask: 48, port: 5060, tag: 'last' });
    const { table } = await loadAddressTable(createAddressDb(dir, 'chunks.db', rows));
    expect(table.size).toBe(70_001);
    const i = (1 << 16) + 17 * 256 + 95; // in the second chunk
    expect(table.match('10.1.17.95', 1)).toEqual({ id: i * 3 - 1000, grp: i % 7, ipAddr: '10.1.17.95', mask: 32, port: 0, tag: null });
    expect(table.match('10.1.17.95', 1)?.tag).toBeNull();
    expect(table.match('10.0.3.232', 1)?.tag).toBe('t1000');
    expect(table.match('10.1.17.95', 1, [i % 7 === 0 ? 1 : 0])).toBeNull();
    expect(table.match('2001:db8::1', 5060)).toMatchObject({ id: 500_000, tag: 'last' });
  });

  it.each([
    ['a mask that is not an integer', "UPDATE address SET mask = 24.5 WHERE id = 4", /address row id 4: mask 24.5 is not an integer/],
    ['a group that is not a number', "UPDATE address SET grp = 'abc' WHERE id = 4", /address row id 4: grp abc is not an integer/],
    ['a separator inside ip_addr', "UPDATE address SET ip_addr = '10.0.0.1' || char(31) || '5' WHERE id = 4", /address row id 4: ip_addr "10\.0\.0\.1\\u001f5" is not an IPv4 or IPv6 address/],
    ['a tag that is not text', "UPDATE address SET tag = x'00ff' WHERE id = 4", /address row id 4: tag is not text/],
  ])('names a row with %s', async (_what, update, message) => {
    const path = createAddressDb(dir, `odd-${Math.random().toString(36).slice(2)}.db`, sample);
    const db = new Database(path);
    db.exec(update);
    db.close();
    const err = await rejection(loadAddressTable(path));
    expect(err.code).toBe('E_ACL_RELOAD_FAILED');
    expect(err.message).toMatch(message);
  });
});

describe('AddressTableHolder', () => {
  it('starts empty, swaps in a loaded table and reports it', async () => {
    const holder = new AddressTableHolder();
    expect(holder.current.size).toBe(0);
    const report = await holder.reload(createAddressDb(dir, 'holder.db', sample));
    expect(report.total).toBe(5);
    expect(report.groups).toEqual([{ grp: 1, count: 2 }, { grp: 2, count: 2 }, { grp: 3, count: 1 }]);
    expect(report.ms).toBeGreaterThan(0);
    expect(holder.current.match('192.0.2.99', 1)?.tag).toBe('office');
  });

  it('keeps the old table when a reload fails, and says why', async () => {
    const path = createAddressDb(dir, 'keep.db', sample);
    const holder = new AddressTableHolder();
    await holder.reload(path);
    const before = holder.current;
    replaceRows(path, [...sample, { id: 9, grp: 1, ip_addr: 'not-an-address', mask: 32 }]);
    const err = await rejection(holder.reload(path));
    expect(err.code).toBe('E_ACL_RELOAD_FAILED');
    expect(err.message).toMatch(/address row id 9: ip_addr "not-an-address" is not an IPv4 or IPv6 address/);
    expect(err.message).toMatch(/still using the previous table \(5 entries\)/);
    expect(holder.current).toBe(before);
    expect(holder.current.match('192.0.2.99', 1)?.tag).toBe('office');
    // A good reload after a failed one goes through.
    replaceRows(path, sample.slice(0, 2));
    expect((await holder.reload(path)).total).toBe(2);
  });

  it('serialises reloads: one asked for during another runs after it, later ones join it', async () => {
    const path = createAddressDb(dir, 'serial.db', sample);
    const holder = new AddressTableHolder();
    const first = holder.reload(path);
    await new Promise((r) => setImmediate(r)); // the first is now running
    replaceRows(path, [...sample, { id: 6, grp: 4, ip_addr: '203.0.113.0', mask: 24 }]);
    const second = holder.reload(path);
    const third = holder.reload(path);
    expect(third).toBe(second);
    expect(second).not.toBe(first);
    await first;
    // The second ran after the first finished, so it saw the row written after the first began.
    expect((await second).total).toBe(6);
    expect(holder.current.match('203.0.113.5', 1)?.grp).toBe(4);
  });

  it('a match during a reload sees the old table or the new one, wholly', async () => {
    const oldRows: FixtureRow[] = [];
    const newRows: FixtureRow[] = [];
    for (let i = 0; i < 50; i++) {
      oldRows.push({ grp: 1, ip_addr: `10.0.${i}.0`, mask: 24, tag: 'old' });
      newRows.push({ grp: 1, ip_addr: `10.0.${i}.0`, mask: 24, tag: 'new' });
    }
    const path = createAddressDb(dir, 'swap.db', oldRows);
    const holder = new AddressTableHolder();
    await holder.reload(path);
    replaceRows(path, newRows);

    const reload = holder.reload(path);
    let done = false;
    void reload.then(() => (done = true), () => (done = true));
    const seen: string[] = [];
    const deadline = Date.now() + 20_000;
    for (let sweep = 0; sweep < 100_000 && !done && Date.now() < deadline; sweep++) {
      const table = holder.current;
      const tags = new Set<string | null | undefined>();
      for (let i = 0; i < 50; i++) tags.add(table.match(`10.0.${i}.9`, 5060)?.tag);
      expect(tags.size).toBe(1);
      seen.push([...tags][0] as string);
      await new Promise((r) => setImmediate(r));
    }
    await reload;
    expect(holder.current.match('10.0.7.1', 1)?.tag).toBe('new');
    // Matches ran while the worker built the table; they saw only the old one, then only the new.
    expect(seen.length).toBeGreaterThan(1);
    expect(seen[0]).toBe('old');
    expect(seen.indexOf('new') === -1 || seen.slice(seen.indexOf('new')).every((t) => t === 'new')).toBe(true);
  });
});

describe('the compiled layout', () => {
  it('starts the compiled worker beside compiled load.js (as dist/src/acl/ does)', () => {
    // Compile src/acl to a scratch dir inside the repo (so packages resolve), run it with plain node.
    const out = mkdtempSync(join(repoRoot, 'test', 'acl', '.build-'));
    try {
      execFileSync(
        process.execPath,
        [
          join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'),
          '--outDir', out, '--rootDir', repoRoot, '--module', 'nodenext', '--moduleResolution', 'nodenext',
          '--target', 'es2022', '--strict', '--esModuleInterop', '--skipLibCheck', '--types', 'node',
          join(repoRoot, 'src', 'acl', 'load.ts'), join(repoRoot, 'src', 'acl', 'load-worker.ts'),
        ],
        { cwd: repoRoot, stdio: 'pipe', timeout: 60_000 },
      );
      const path = createAddressDb(dir, 'compiled.db', sample);
      const script = join(out, 'run.mjs');
      writeFileSync(script, `
        const { loadAddressTable } = await import(${JSON.stringify(join(out, 'src', 'acl', 'load.js'))});
        const { table } = await loadAddressTable(${JSON.stringify(path)});
        console.log(JSON.stringify({ size: table.size, m: table.match('2001:db8:1::7', 5060) }));
      `);
      const stdout = execFileSync(process.execPath, [script], { cwd: repoRoot, timeout: 30_000 }).toString();
      expect(JSON.parse(stdout)).toEqual({ size: 5, m: { id: 4, grp: 2, ipAddr: '2001:db8:1::7', mask: 128, port: 0, tag: 'pbx-b' } });
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
