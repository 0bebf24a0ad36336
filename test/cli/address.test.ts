/**
 * `sipctl address` against the database: validation (exit 2, one line, nothing written),
 * add / list / rm round trips, --json output. The proxy-facing subcommands are in
 * address-proxy.test.ts.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AddressRow } from '../../src/store/index.js';
import { runCli, stderrLines, stdoutLines, useTempDirs, type CliResult } from '../helpers/cli.js';
import { addressRows as rows, useStores, withTestStore } from '../helpers/stores.js';

const stores = useStores();

describe('sipctl address: bad input, SQLite file', () => {
  const tempDir = useTempDirs();

  it('does not even create the database file for bad input', async () => {
    const fresh = join(tempDir(), 'data', 'never.db');
    const r = await runCli(['address', 'add', '1', '10.0.0.300', '--db', fresh]);
    expect(r.code).toBe(2);
    expect(existsSync(fresh)).toBe(false);
  });

  it('works on a fresh machine: the default database is created and migrated on first use', async () => {
    const cwd = tempDir();
    const empty = await runCli(['address', 'list'], { cwd });
    expect(empty.code).toBe(0);
    expect(stdoutLines(empty)).toEqual(['no address entries']);
    const json = await runCli(['address', 'list', '--json'], { cwd });
    expect(JSON.parse(json.stdout)).toEqual({ total: 0, entries: [] });
    expect(existsSync(join(cwd, 'data', 'sipctl.db'))).toBe(true);
  });
});

for (const kind of stores) describe.skipIf(kind.skip)(`sipctl address: bad input (${kind.name})`, () => {
  let db: string;
  let before: AddressRow[];

  beforeAll(async () => {
    // One shared database for the read-only cases.
    db = await kind.fresh();
    await withTestStore(db, (s) => s.address.add({ grp: 250, ipAddr: '10.8.203.139', mask: 32, port: 5060, tag: 'TestServer' }));
    before = await rows(db);
  });

  // [arguments after `address`, what the one stderr line must say]
  const cases: [string[], RegExp][] = [
    [['add', 'abc', '10.0.0.1'], /group "abc" is not a non-negative integer/],
    [['add', '4294967296', '10.0.0.1'], /group "4294967296"/],
    [['add', '1', '10.0.0.300'], /"10\.0\.0\.300" is not an IPv4 or IPv6 address/],
    [['add', '1', 'pbx.example.com'], /"pbx\.example\.com" is not an IPv4 or IPv6 address/],
    [['add', '1', '10.1'], /not a dotted-quad IPv4 address/],
    [['add', '1', '10.0.0.0', '33'], /mask 33 is out of range for IPv4 address 10\.0\.0\.0 \(0-32\)/],
    [['add', '1', '2001:db8::', '129'], /mask 129 is out of range for IPv6 address 2001:db8:: \(0-128\)/],
    [['add', '1', '10.0.0.0', 'x'], /mask "x" is not an integer/],
    [['add', '1', '10.0.0.0/8', '24'], /mask given twice/],
    [['add', '1', '10.0.0.1', '32', '65536'], /port "65536" is out of range/],
    [['add', '1', '10.0.0.1', '32', 'http'], /port "http" is out of range/],
    [['add', '1'], /missing required argument 'ip'/],
    [['add', '1', '10.0.0.1', '--frobnicate'], /unknown option '--frobnicate'/],
    [['add', '1', '10.0.0.1', '32', '0', 'tag', 'extra'], /too many arguments/],
    [['add', '250', '10.8.203.139', '32', '5060', 'Again'], /group 250 already has 10\.8\.203\.139\/32 port 5060 as id 1/],
    [['rm', 'x'], /"x" is not an entry id/],
    [['rm', '0'], /"0" is not an entry id/],
    [['rm', '250', 'nope'], /"nope" is not an IPv4 or IPv6 address/],
    [['rm'], /missing required argument/],
    [['list', '--group', 'x'], /group "x" is not a non-negative integer/],
    [['list', '--limit', 'ten'], /--limit "ten" is not a non-negative integer/],
    [['test', '10.0.0.0/8'], /one source address, not a network/],
    [['test', '10.0.0.1', '99999'], /port "99999" is out of range/],
    [['test', '10.0.0.1', '--group', '-'], /group "-"/],
    [['frob'], /unknown command 'frob'/],
  ];

  it.concurrent.for(cases)('address %j → exit 2, one line, database unchanged', async ([args, said], { expect }) => {
    const r = await runCli(['address', ...args, '--db', db]);
    const lines = stderrLines(r);
    expect(r.code).toBe(2);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^sipctl: /);
    expect(lines[0]).toMatch(said);
    expect(r.stdout).toBe('');
    expect(await rows(db)).toEqual(before);
  });
});

for (const kind of stores) describe.skipIf(kind.skip)(`sipctl address: add, list, rm (${kind.name})`, () => {

  async function ok(args: string[], db: string): Promise<CliResult> {
    const r = await runCli(['address', ...args, '--db', db]);
    if (r.code !== 0) throw new Error(`sipctl address ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r;
  }

  it('round trip: add (with the host-bits note and IPv6 normalisation), list as table and JSON, rm', async () => {
    const db = await kind.fresh();

    const a = await ok(['add', '250', '10.8.203.139', '32', '5060', 'TestServer'], db);
    expect(stdoutLines(a)).toEqual(['added id 1: group 250, 10.8.203.139/32, port 5060, tag TestServer']);
    expect(a.stderr).toBe('');

    const b = await ok(['add', '200', '192.168.1.7', '24', '5060', 'OfficeSubnet'], db);
    expect(stdoutLines(b)).toEqual(['added id 2: group 200, 192.168.1.0/24, port 5060, tag OfficeSubnet']);
    expect(stderrLines(b)).toEqual([
      'sipctl: note: 192.168.1.7/24 has host bits set; stored as the network 192.168.1.0/24',
    ]);

    const c = await ok(['add', '200', '[2001:DB8:0::1]', '--json'], db);
    expect(JSON.parse(c.stdout)).toEqual({
      id: 3,
      grp: 200,
      ipAddr: '2001:db8::1',
      mask: 128,
      port: 0,
      tag: null,
      note: null,
    });

    const listed = JSON.parse((await ok(['list', '--json'], db)).stdout);
    expect(listed).toEqual({
      total: 3,
      entries: [
        { id: 2, grp: 200, ipAddr: '192.168.1.0', mask: 24, port: 5060, tag: 'OfficeSubnet' },
        { id: 3, grp: 200, ipAddr: '2001:db8::1', mask: 128, port: 0, tag: null },
        { id: 1, grp: 250, ipAddr: '10.8.203.139', mask: 32, port: 5060, tag: 'TestServer' },
      ],
    });
    expect(JSON.parse((await ok(['list', '--group', '250', '--json'], db)).stdout).entries.map((e: { id: number }) => e.id)).toEqual([1]);

    const table = stdoutLines(await ok(['list'], db));
    expect(table.find((l) => l.includes('OfficeSubnet'))).toMatch(/│\s+2 │ 200 │ 192\.168\.1\.0\s+│\s+24 │ 5060 │ OfficeSubnet/);
    expect(table.find((l) => l.includes('2001:db8::1'))).toMatch(/│\s+any │/);
    expect(table.at(-1)).toBe('3 entries');

    // rm <grp> <ip>: the address is normalised the way add stored it.
    expect(stdoutLines(await ok(['rm', '200', '2001:db8:0:0::1'], db))).toEqual([
      'removed id 3: group 200, 2001:db8::1/128, any port',
    ]);
    expect(stdoutLines(await ok(['rm', '1'], db))).toEqual([
      'removed id 1: group 250, 10.8.203.139/32, port 5060, tag TestServer',
    ]);
    expect((await rows(db)).map((r) => r.id)).toEqual([2]);
  });

  it('rm that matches nothing exits 1 with one line and removes nothing', async () => {
    const db = await kind.fresh();
    await ok(['add', '5', '10.1.0.0', '16'], db);
    for (const [args, said] of [
      [['rm', '42'], "no address entry has id 42; nothing removed (see 'sipctl address list')"],
      [['rm', '5', '10.9.0.0'], 'no entry in group 5 matches 10.9.0.0; nothing removed'],
      [['rm', '6', '10.1.0.0'], 'no entry in group 6 matches 10.1.0.0; nothing removed'],
      [['rm', '5', '10.1.0.0', '24'], 'no entry in group 5 matches 10.1.0.0/24; nothing removed'],
      [['rm', '5', '10.1.0.0', '16', '5060'], 'no entry in group 5 matches 10.1.0.0/16 port 5060; nothing removed'],
    ] as [string[], string][]) {
      const r = await runCli(['address', ...args, '--db', db]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(stderrLines(r)).toHaveLength(1);
      expect(stderrLines(r)[0]).toContain(said);
    }
    expect(await rows(db)).toHaveLength(1);
  });

  it('rm <grp> <ip> removes every mask and port for that address unless narrowed', async () => {
    const db = await kind.fresh();
    await ok(['add', '5', '10.1.0.0', '16'], db);
    await ok(['add', '5', '10.1.0.0', '16', '5060'], db);
    await ok(['add', '5', '10.1.0.0/24'], db);
    await ok(['add', '6', '10.1.0.0', '16'], db);

    const narrowed = await ok(['rm', '5', '10.1.0.0', '16', '5060', '--json'], db);
    expect(JSON.parse(narrowed.stdout)).toEqual({
      removed: [{ id: 2, grp: 5, ipAddr: '10.1.0.0', mask: 16, port: 5060, tag: null }],
    });
    const wide = await ok(['rm', '5', '10.1.0.0'], db);
    expect(stdoutLines(wide)).toEqual([
      'removed id 1: group 5, 10.1.0.0/16, any port',
      'removed id 3: group 5, 10.1.0.0/24, any port',
    ]);
    expect((await rows(db)).map((r) => [r.id, r.grp])).toEqual([[4, 6]]);
  });

  it('uses SIPCTL_DB when --db is not given', async () => {
    const db = await kind.fresh();
    const r = await runCli(['address', 'add', '1', '10.0.0.1'], { env: { SIPCTL_DB: db } });
    expect(r.code).toBe(0);
    expect(await rows(db)).toHaveLength(1);
  });

  it('limits the table and says how many rows it left out; --json always prints all', async () => {
    const db = await kind.fresh();
    await withTestStore(db, async (store) => {
      for (let i = 0; i < 5; i++) await store.address.add({ grp: 1, ipAddr: `10.0.0.${i}`, mask: 32, port: 0 });
    });
    const limited = stdoutLines(await ok(['list', '--limit', '2'], db));
    expect(limited.filter((l) => /│\s+\d+ │/.test(l))).toHaveLength(2);
    expect(limited).toContain('… 3 more entries not shown (--limit 0 shows all, --json prints all)');
    expect(limited.at(-1)).toBe('5 entries');
    const all = stdoutLines(await ok(['list', '--limit', '0'], db));
    expect(all.filter((l) => /│\s+\d+ │/.test(l))).toHaveLength(5);
    expect(JSON.parse((await ok(['list', '--limit', '2', '--json'], db)).stdout).entries).toHaveLength(5);
  });

  it('list --json streams a table bigger than one cursor batch, in order, all of it', async () => {
    const db = await kind.fresh();
    await withTestStore(db, async () => undefined);
    await kind.raw(
      db,
      `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 5000)
       INSERT INTO address (grp, ip_addr, mask, port) SELECT i % 3, '10.' || (i / 65536) || '.' || ((i / 256) % 256) || '.' || (i % 256), 32, 0 FROM s`,
    );
    const listed = JSON.parse((await ok(['list', '--json'], db)).stdout) as { total: number; entries: { id: number; grp: number }[] };
    expect(listed.total).toBe(5000);
    expect(listed.entries).toHaveLength(5000);
    const order = listed.entries.map((e) => [e.grp, e.id]);
    expect(order).toEqual([...order].sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!));
    const table = stdoutLines(await ok(['list', '--limit', '3'], db));
    expect(table).toContain('… 4,997 more entries not shown (--limit 0 shows all, --json prints all)');
  });
});
