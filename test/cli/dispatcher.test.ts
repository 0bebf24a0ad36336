/**
 * `sipctl dispatcher` against the database: validation (exit 2, one line, nothing written),
 * add / list / rm round trips, --json. The proxy-facing subcommands are in
 * dispatcher-proxy.test.ts.
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DispatcherRow } from '../../src/store/index.js';
import { runCli, stderrLines, stdoutLines, useTempDirs } from '../helpers/cli.js';
import { dispatcherRows as rows, useStores, withTestStore } from '../helpers/stores.js';

const stores = useStores();

describe('sipctl dispatcher: SQLite file', () => {
  const tempDir = useTempDirs();

  it('does not create the database file for bad input', async () => {
    const fresh = join(tempDir(), 'data', 'never.db');
    const r = await runCli(['dispatcher', 'add', '1', 'sips:x.example.com', '--db', fresh]);
    expect(r.code).toBe(2);
    expect(existsSync(fresh)).toBe(false);
  });

  it('set-state --cluster needs the shared PostgreSQL store: one line, exit 2', async () => {
    const db = join(tempDir(), 'sipctl.db');
    const r = await runCli(['dispatcher', 'set-state', 'inactive', '1', 'all', '--cluster', '--db', db]);
    expect(r.code).toBe(2);
    expect(stderrLines(r)).toEqual([
      `sipctl: dispatcher set-state --cluster needs the shared PostgreSQL store: --db postgres://USER@HOST:PORT/DB (or SIPCTL_DB); ${db} is a SQLite file, which only one node uses`,
    ]);
  });
});

for (const kind of stores) describe.skipIf(kind.skip)(`sipctl dispatcher: bad input (${kind.name})`, () => {
  let db: string;
  let before: DispatcherRow[];

  beforeAll(async () => {
    db = await kind.fresh();
    await withTestStore(db, (s) => s.dispatcher.add({ setid: 1, destination: 'sip:10.0.0.1:5060', priority: 5 }));
    before = await rows(db);
  });

  // [arguments after `dispatcher`, what the one stderr line must say]
  const cases: [string[], RegExp][] = [
    [['add', 'one', 'sip:10.0.0.2'], /set id 'one' must be a non-negative integer/],
    [['add', '1.5', 'sip:10.0.0.2'], /set id '1\.5'/],
    [['add', '1', 'pbx.example.com'], /destination 'pbx\.example\.com': not a SIP URI/],
    [['add', '1', 'sip:'], /not a SIP URI/],
    [['add', '1', 'sips:pbx.example.com'], /sips: needs TLS, which sipctl does not support yet/],
    [['add', '1', 'sip:pbx.example.com;transport=tls'], /transport=tls is not supported \(udp or tcp\)/],
    [['add', '1', 'sip:10.0.0.2', '--attrs', 'wieght=50'], /unknown attribute 'wieght' \(known: weight, rweight, duid, maxload, ping_from\)/],
    [['add', '1', 'sip:10.0.0.2', '--attrs', 'weight=150'], /weight must be an integer 0\.\.100/],
    [['add', '1', 'sip:10.0.0.2', '--priority', 'high'], /priority 'high' must be an integer/],
    [['add', '1', 'sip:10.0.0.2', '--flags', '16'], /flags '16' must be a sum of 1 \(inactive\), 2 \(trying\), 4 \(disabled\), 8 \(probing\)/],
    [['add', '1', 'sip:10.0.0.1:5060'], /set 1 already has sip:10\.0\.0\.1:5060 as id 1; nothing was added/],
    [['add', '1'], /missing required argument 'uri'/],
    [['rm', 'x'], /"x" is not a destination id/],
    [['rm', '0'], /"0" is not a destination id/],
    [['list', '--set', 'x'], /set id 'x' must be a non-negative integer/],
    [['set-state', 'up', '1', 'all'], /unknown state "up"; use one of: active, inactive, disabled, probing/],
    [['set-state', 'active', 'x', 'all'], /set id 'x'/],
    [['set-state', 'active', '1', 'nope'], /destination 'nope': not a SIP URI/],
    [['set-state', 'active', '1', 'all', '--cluster', '--timeout', 'soon'], /--timeout "soon" is not a number of seconds from 0 to 600/],
    [['frob'], /unknown command 'frob'/],
  ];

  it.concurrent.for(cases)('dispatcher %j → exit 2, one line, database unchanged', async ([args, said], { expect }) => {
    // Every subcommand takes --db; the proxy-facing ones also --control (as `sipctl address` does).
    const where = args[0] === 'set-state' ? ['--db', db, '--control', join(tmpdir(), 'sipctl-none.sock')] : ['--db', db];
    const r = await runCli(['dispatcher', ...args, ...where]);
    const lines = stderrLines(r);
    expect(r.code).toBe(2);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^sipctl: /);
    expect(lines[0]).toMatch(said);
    expect(r.stdout).toBe('');
    expect(await rows(db)).toEqual(before);
  });
});

for (const kind of stores) describe.skipIf(kind.skip)(`sipctl dispatcher: database round trips (${kind.name})`, () => {
  it('add, list (table and JSON), rm', async () => {
    const db = await kind.fresh();
    const a = await runCli([
      'dispatcher', 'add', '1', 'sip:10.0.0.1:5060', '--priority', '10', '--attrs', 'weight=60;duid=pbx-a', '--description', 'PBX A', '--db', db,
    ]);
    expect(a.code).toBe(0);
    expect(stdoutLines(a)).toEqual(['added id 1: set 1, sip:10.0.0.1:5060, priority 10, attrs weight=60;duid=pbx-a, "PBX A"']);
    const b = await runCli(['dispatcher', 'add', '2', 'sip:pbx.example.com;transport=tcp', '--flags', '8', '--json', '--db', db]);
    expect(b.code).toBe(0);
    expect(JSON.parse(b.stdout)).toEqual({
      id: 2, setid: 2, destination: 'sip:pbx.example.com;transport=tcp', flags: 8, priority: 0, attrs: '', description: '',
    });

    const table = await runCli(['dispatcher', 'list', '--db', db]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/│ *1 │ *1 │ sip:10\.0\.0\.1:5060 *│ *0 │ *10 │ weight=60;duid=pbx-a │ PBX A/);
    expect(table.stdout).toMatch(/sip:pbx\.example\.com;transport=tcp/);
    expect(stdoutLines(table).at(-1)).toBe('2 destinations');

    const one = await runCli(['dispatcher', 'list', '--set', '2', '--json', '--db', db]);
    expect(JSON.parse(one.stdout)).toEqual({
      total: 1,
      destinations: [{ id: 2, setid: 2, destination: 'sip:pbx.example.com;transport=tcp', flags: 8, priority: 0, attrs: '', description: '' }],
    });

    const rm = await runCli(['dispatcher', 'rm', '1', '--db', db]);
    expect(rm.code).toBe(0);
    expect(stdoutLines(rm)).toEqual(['removed id 1: set 1, sip:10.0.0.1:5060, priority 10, attrs weight=60;duid=pbx-a, "PBX A"']);
    expect((await rows(db)).map((r) => r.id)).toEqual([2]);

    const again = await runCli(['dispatcher', 'rm', '1', '--db', db]);
    expect(again.code).toBe(1);
    expect(stderrLines(again)).toEqual(["sipctl: no destination has id 1; nothing removed (see 'sipctl dispatcher list')"]);

    const empty = await runCli(['dispatcher', 'list', '--set', '7', '--db', db]);
    expect(stdoutLines(empty)).toEqual(['no destinations in set 7']);
  });

  it('refuses a second spelling of a destination already in the set', async () => {
    const db = await kind.fresh();
    expect((await runCli(['dispatcher', 'add', '1', 'sip:[2001:db8::1]:5060', '--db', db])).code).toBe(0);
    const r = await runCli(['dispatcher', 'add', '1', 'sip:[2001:DB8::1]:5060', '--db', db]);
    expect(r.code).toBe(2);
    expect(stderrLines(r)).toEqual([
      'sipctl: set 1 already has sip:[2001:db8::1]:5060 as id 1; nothing was added (remove id 1 first to replace it)',
    ]);
    // another set may have it
    expect((await runCli(['dispatcher', 'add', '2', 'sip:[2001:DB8::1]:5060', '--db', db])).code).toBe(0);
  });
});
