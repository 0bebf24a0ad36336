/**
 * The `sipctl address` subcommands that talk to a running proxy (reload, dump, test, and
 * --reload on writes), against a real control server started here with handlers of our own
 * that read the same database (the real proxy wiring lives in `sipctl serve`), on both stores.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startControlServer, type AddressEntryView, type ControlServer } from '../../src/control/index.js';
import { SipctlError } from '../../src/errors.js';
import { runCli, stderrLines, stdoutLines, useTempDirs } from '../helpers/cli.js';
import { useStores, withTestStore } from '../helpers/stores.js';

interface FakeProxy {
  server: ControlServer;
  calls: { cmd: string; args: Record<string, unknown> }[];
}

/** What a proxy would hold after loading `dbPath`: groups, counts, entries. */
async function loadFrom(dbPath: string): Promise<{ groups: { grp: number; count: number }[]; entries: AddressEntryView[] }> {
  return withTestStore(dbPath, async (store) => {
    const entries = (await store.address.list()).map((r) => ({ id: r.id, grp: r.grp, ipAddr: r.ip_addr, mask: r.mask, port: r.port, tag: r.tag }));
    const counts = new Map<number, number>();
    for (const e of entries) counts.set(e.grp, (counts.get(e.grp) ?? 0) + 1);
    return { groups: [...counts].map(([grp, count]) => ({ grp, count })), entries };
  }, { readonly: true });
}

const stores = useStores();

for (const kind of stores) describe.skipIf(kind.skip)(`sipctl address: talking to the proxy (${kind.name})`, () => {
  const tempDir = useTempDirs();
  const servers: ControlServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });

  async function fakeProxy(dbPath: string, overrides: Record<string, () => unknown> = {}): Promise<FakeProxy> {
    const calls: FakeProxy['calls'] = [];
    let held = await loadFrom(dbPath);
    const server = await startControlServer(join(tempDir(), 'sipctl.sock'), {
      'address.reload': async (args) => {
        calls.push({ cmd: 'address.reload', args });
        held = await loadFrom(dbPath);
        return { groups: held.groups, total: held.entries.length, ms: 1.5 };
      },
      'address.dump': (args) => {
        calls.push({ cmd: 'address.dump', args });
        return { groups: held.groups, total: held.entries.length, entries: held.entries };
      },
      'address.test': (args) => {
        calls.push({ cmd: 'address.test', args });
        // Exact-address matching is enough here: the lookup itself is src/acl's, tested there.
        const match = held.entries.find((e) => e.ipAddr === args.ip && (args.group === undefined || e.grp === args.group));
        return { match: match ?? null };
      },
      ...overrides,
    });
    servers.push(server);
    return { server, calls };
  }

  async function seeded(): Promise<string> {
    const db = await kind.fresh();
    await withTestStore(db, async (store) => {
      await store.address.add({ grp: 250, ipAddr: '10.8.203.139', mask: 32, port: 5060, tag: 'TestServer' });
      await store.address.add({ grp: 200, ipAddr: '192.168.1.0', mask: 24, port: 0, tag: 'OfficeSubnet' });
    });
    return db;
  }

  it('add --reload writes the row, then the proxy reloads and sees it', async () => {
    const db = await seeded();
    const proxy = await fakeProxy(db);
    const r = await runCli(['address', 'add', '300', '172.16.0.0', '12', '--reload', '--db', db, '--control', proxy.server.path]);
    expect(r.code).toBe(0);
    expect(stdoutLines(r)).toEqual(['added id 3: group 300, 172.16.0.0/12, any port', 'reloaded 3 entries in 3 groups (1.5 ms)']);
    expect(proxy.calls.map((c) => c.cmd)).toEqual(['address.reload']);

    const rm = await runCli(['address', 'rm', '3', '--reload', '--json', '--db', db, '--control', proxy.server.path]);
    expect(rm.code).toBe(0);
    expect(JSON.parse(rm.stdout)).toEqual({
      removed: [{ id: 3, grp: 300, ipAddr: '172.16.0.0', mask: 12, port: 0, tag: null }],
      reload: { groups: [{ grp: 200, count: 1 }, { grp: 250, count: 1 }], total: 2, ms: 1.5 },
    });
  });

  it('add --reload with no proxy: the row stays, one line says so and names the socket, exit 1', async () => {
    const db = await seeded();
    const nowhere = join(tempDir(), 'nobody.sock');
    const r = await runCli(['address', 'add', '300', '172.16.0.1', '--reload', '--db', db, '--control', nowhere]);
    expect(r.code).toBe(1);
    expect(stdoutLines(r)).toEqual(['added id 3: group 300, 172.16.0.1/32, any port']);
    expect(stderrLines(r)).toEqual([
      `sipctl: added id 3 (saved in the database), but the proxy was not reloaded: no sipctl proxy is listening on ${nowhere} (start one with 'sipctl serve', or pass --control PATH)`,
    ]);
    expect((await loadFrom(db)).entries.map((e) => e.id)).toEqual([2, 1, 3]);
  });

  it('add --json --reload with no proxy still prints the written entry as JSON, then the error', async () => {
    const db = await seeded();
    const nowhere = join(tempDir(), 'nobody.sock');
    const r = await runCli(['address', 'add', '300', '172.16.0.1', '--json', '--reload', '--db', db, '--control', nowhere]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ id: 3, grp: 300, ipAddr: '172.16.0.1', mask: 32, port: 0, tag: null, note: null });
    expect(stderrLines(r)).toHaveLength(1);
    expect(stderrLines(r)[0]).toContain('added id 3 (saved in the database), but the proxy was not reloaded');
  });

  it('reload prints the per-group counts and the time; --json the result as is', async () => {
    const db = await seeded();
    const proxy = await fakeProxy(db);
    const r = await runCli(['address', 'reload', '--control', proxy.server.path]);
    expect(r.code).toBe(0);
    const lines = stdoutLines(r);
    expect(lines.some((l) => /│\s+200 │\s+1 │/.test(l))).toBe(true);
    expect(lines.some((l) => /│\s+250 │\s+1 │/.test(l))).toBe(true);
    expect(lines.at(-1)).toBe('reloaded 2 entries in 2 groups (1.5 ms)');

    const json = await runCli(['address', 'reload', '--json', '--control', proxy.server.path]);
    expect(JSON.parse(json.stdout)).toEqual({ groups: [{ grp: 200, count: 1 }, { grp: 250, count: 1 }], total: 2, ms: 1.5 });
  });

  it('reload with no proxy: exit 1 and the one line that names the path', async () => {
    const nowhere = join(tempDir(), 'data', 'sipctl.sock');
    const r = await runCli(['address', 'reload', '--control', nowhere]);
    expect(r.code).toBe(1);
    expect(stderrLines(r)).toEqual([
      `sipctl: no sipctl proxy is listening on ${nowhere} (start one with 'sipctl serve', or pass --control PATH)`,
    ]);
  });

  it("finds the proxy through SIPCTL_CONTROL, and the default ./data/sipctl.sock", async () => {
    const db = await seeded();
    const proxy = await fakeProxy(db);
    const viaEnv = await runCli(['address', 'reload'], { env: { SIPCTL_CONTROL: proxy.server.path } });
    expect(viaEnv.code).toBe(0);

    const cwd = tempDir();
    const local = await startControlServer(join(cwd, 'data', 'sipctl.sock'), { 'address.reload': () => ({ groups: [], total: 0, ms: 0 }) });
    servers.push(local);
    const viaDefault = await runCli(['address', 'reload'], { cwd });
    expect(viaDefault.code).toBe(0);
    expect(stdoutLines(viaDefault)).toEqual(['reloaded 0 entries in 0 groups (0.0 ms)']);
  });

  it("passes the proxy's refusal on: its message, exit 1", async () => {
    const db = await seeded();
    const proxy = await fakeProxy(db, {
      'address.reload': () => {
        throw new SipctlError('E_ACL_RELOAD_FAILED', 'reload failed, keeping the old table: row 9: mask 40 is out of range');
      },
    });
    const r = await runCli(['address', 'reload', '--control', proxy.server.path]);
    expect(r.code).toBe(1);
    expect(stderrLines(r)).toEqual(['sipctl: reload failed, keeping the old table: row 9: mask 40 is out of range']);
  });

  it('dump shows what the proxy holds, as a table and as JSON', async () => {
    const db = await seeded();
    const proxy = await fakeProxy(db);
    const table = await runCli(['address', 'dump', '--control', proxy.server.path]);
    expect(table.code).toBe(0);
    const lines = stdoutLines(table);
    expect(lines.some((l) => /│\s+1 │ 250 │ 10\.8\.203\.139\s+│\s+32 │ 5060 │ TestServer/.test(l))).toBe(true);
    expect(lines.at(-1)).toBe('the proxy holds 2 entries in 2 groups');

    const json = await runCli(['address', 'dump', '--json', '--control', proxy.server.path]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({
      total: 2,
      groups: [{ grp: 200, count: 1 }, { grp: 250, count: 1 }],
      entries: [
        { id: 2, grp: 200, ipAddr: '192.168.1.0', mask: 24, port: 0, tag: 'OfficeSubnet' },
        { id: 1, grp: 250, ipAddr: '10.8.203.139', mask: 32, port: 5060, tag: 'TestServer' },
      ],
    });
  });

  it('dump of an empty table says every request will be refused', async () => {
    const db = await kind.fresh();
    await withTestStore(db, async () => undefined);
    const proxy = await fakeProxy(db);
    const r = await runCli(['address', 'dump', '--control', proxy.server.path]);
    expect(r.code).toBe(0);
    expect(stdoutLines(r)).toEqual(['the proxy holds no address entries (every request will be refused with 401)']);
  });

  it('test: a match exits 0 and names the entry; the address is sent in canonical form', async () => {
    const db = await seeded();
    const proxy = await fakeProxy(db);
    const r = await runCli(['address', 'test', '10.8.203.139', '5060', '--group', '250', '--control', proxy.server.path]);
    expect(r.code).toBe(0);
    expect(stdoutLines(r)).toEqual(['match for 10.8.203.139 port 5060: id 1: group 250, 10.8.203.139/32, port 5060, tag TestServer']);
    expect(proxy.calls).toEqual([{ cmd: 'address.test', args: { ip: '10.8.203.139', port: 5060, group: 250 } }]);

    const json = await runCli(['address', 'test', '10.8.203.139', '--json', '--control', proxy.server.path]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({
      ip: '10.8.203.139',
      port: 0,
      group: null,
      match: { id: 1, grp: 250, ipAddr: '10.8.203.139', mask: 32, port: 5060, tag: 'TestServer' },
    });
    expect(proxy.calls[1]).toEqual({ cmd: 'address.test', args: { ip: '10.8.203.139', port: 0 } });
  });

  it('test: no match exits 1 and says so on stdout (also with --json)', async () => {
    const db = await seeded();
    const proxy = await fakeProxy(db);
    const r = await runCli(['address', 'test', '[2001:DB8::7]', '5060', '--control', proxy.server.path]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('');
    expect(stdoutLines(r)).toEqual(['no match for 2001:db8::7 port 5060 in any group']);
    expect(proxy.calls[0]?.args).toEqual({ ip: '2001:db8::7', port: 5060 });

    const json = await runCli(['address', 'test', '10.8.203.139', '--group', '200', '--json', '--control', proxy.server.path]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({ ip: '10.8.203.139', port: 0, group: 200, match: null });
  });

  it('test: bad input is refused before the proxy is asked', async () => {
    const db = await seeded();
    const proxy = await fakeProxy(db);
    const r = await runCli(['address', 'test', '10.8.203.1399', '--control', proxy.server.path]);
    expect(r.code).toBe(2);
    expect(stderrLines(r)).toHaveLength(1);
    expect(proxy.calls).toEqual([]);
  });
});
