/**
 * `sipctl dispatcher reload | dump | set-state` and `add/rm --reload`, against a control
 * server started in this test with the dispatcher's own handlers over a real database (a
 * SQLite file, a PostgreSQL database).
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startControlServer, type ControlServer } from '../../src/control/index.js';
import { dispatcherControlHandlers } from '../../src/dispatcher/control.js';
import { DispatcherHolder } from '../../src/dispatcher/holder.js';
import type { StateChange } from '../../src/dispatcher/types.js';
import { runCli, stderrLines, stdoutLines, useTempDirs } from '../helpers/cli.js';
import { useStores, withTestStore } from '../helpers/stores.js';

const servers: ControlServer[] = [];
const holders: DispatcherHolder[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  for (const h of holders.splice(0)) h.close();
});

const stores = useStores();

for (const kind of stores) describe.skipIf(kind.skip)(`sipctl dispatcher against a running control socket (${kind.name})`, () => {
  const tempDir = useTempDirs('sipctl-ds-');

  async function proxy() {
    const dir = tempDir();
    const db = await kind.fresh();
    const control = join(dir, 'ctl.sock');
    const changes: StateChange[] = [];
    const holder = new DispatcherHolder({ onStateChange: (c) => changes.push(c) });
    holders.push(holder);
    const loadRows = () => withTestStore(db, (s) => s.dispatcher.list());
    await holder.reload(await loadRows());
    servers.push(await startControlServer(control, { ...dispatcherControlHandlers(holder, loadRows) }));
    const cli = (...args: string[]) => {
      const sub = args[0]!;
      // Every subcommand takes --db (the proxy-facing ones ignore it); all but list take --control.
      const opts = ['--db', db, ...(sub === 'list' ? [] : ['--control', control])];
      return runCli(['dispatcher', ...args, ...opts]);
    };
    return { db, control, holder, changes, cli };
  }

  it('add --reload, dump, set-state, rm --reload', async () => {
    const { cli, holder, changes } = await proxy();
    const add = await cli('add', '1', 'sip:127.0.0.1:5070', '--priority', '10', '--reload');
    expect(add.code).toBe(0);
    expect(stdoutLines(add)[0]).toBe('added id 1: set 1, sip:127.0.0.1:5070, priority 10');
    expect(stdoutLines(add).at(-1)).toMatch(/^reloaded 1 destination in 1 set \([0-9.]+ ms\)$/);
    expect((await cli('add', '1', 'sip:127.0.0.1:5071;transport=tcp', '--flags', '4', '--reload', '--json')).code).toBe(0);
    expect(holder.current.total).toBe(2);

    holder.current.select(1, 'priority', { callId: 'c', fromUri: '', toUri: '', requestUri: '' });
    const dump = await cli('dump', '--json');
    expect(dump.code).toBe(0);
    const d = JSON.parse(dump.stdout) as { sets: { setid: number; destinations: Record<string, unknown>[] }[] };
    expect(d.sets).toHaveLength(1);
    expect(d.sets[0]!.destinations).toEqual([
      expect.objectContaining({ id: 1, uri: 'sip:127.0.0.1:5070', state: 'active', flags: 'AX', requestsSent: 1, lastProbe: null, targets: [{ protocol: 'udp', address: '127.0.0.1', port: 5070 }] }),
      expect.objectContaining({ id: 2, state: 'disabled', flags: 'DX', targets: [{ protocol: 'tcp', address: '127.0.0.1', port: 5071 }] }),
    ]);
    const table = await cli('dump');
    // set, destination, state, priority, requests, last min (not sampled here), last probe,
    // probe ms last / avg, probe fails, transaction timeouts, failovers, calls, targets, why
    expect(table.stdout).toMatch(/│ +1 │ sip:127\.0\.0\.1:5070 +│ active \(AX\) +│ +10 │ +1 │ +- │ - +│ +- │ +0 │ +0 │ +0 │ +0 │ udp:127\.0\.0\.1:5070 +│ loaded/);
    expect(stdoutLines(table).at(-1)).toBe('the proxy holds 2 destinations in 1 set');

    const ss = await cli('set-state', 'inactive', '1', 'sip:127.0.0.1:5070');
    expect(ss.code).toBe(0);
    expect(stdoutLines(ss)).toEqual(['sip:127.0.0.1:5070 in set 1: 1 destination now inactive']);
    expect(changes).toEqual([{ setid: 1, uri: 'sip:127.0.0.1:5070', from: 'active', to: 'inactive', reason: 'admin: set-state' }]);
    const all = await cli('set-state', 'active', '1', 'all', '--json');
    expect(JSON.parse(all.stdout)).toEqual({ state: 'active', setid: 1, uri: 'all', changed: 2 });

    // a reload keeps the states set at run time
    const table2 = await cli('reload');
    expect(table2.stdout).toMatch(/│ +setid │ +destinations │ +active │/);
    expect(table2.stdout).toMatch(/│ +1 │ +2 │ +2 │/);
    const reload = await cli('reload', '--json');
    expect(reload.code).toBe(0);
    expect(JSON.parse(reload.stdout)).toMatchObject({ sets: [{ setid: 1, count: 2, active: 2 }], total: 2 });

    const rm = await cli('rm', '2', '--reload');
    expect(rm.code).toBe(0);
    expect(stdoutLines(rm).at(-1)).toMatch(/^reloaded 1 destination in 1 set/);
    expect(holder.current.total).toBe(1);
  });

  it('reports errors from the proxy: unknown set or URI (exit 2), failed reload (exit 1, old sets kept)', async () => {
    const { cli, holder, db } = await proxy();
    const noSet = await cli('set-state', 'inactive', '9', 'all');
    expect(noSet.code).toBe(2);
    expect(stderrLines(noSet)).toEqual(['sipctl: no dispatcher set 9 is loaded (no sets loaded)']);

    expect((await cli('add', '3', 'sip:127.0.0.1:5080', '--reload')).code).toBe(0);
    const noUri = await cli('set-state', 'inactive', '3', 'sip:127.0.0.1:5099');
    expect(noUri.code).toBe(2);
    expect(stderrLines(noUri)).toEqual(['sipctl: set 3 has no destination sip:127.0.0.1:5099 (it has: sip:127.0.0.1:5080)']);

    // A row the CLI would refuse, written behind its back: the reload fails, nothing changes.
    await withTestStore(db, (s) => s.dispatcher.add({ setid: 3, destination: 'sip:127.0.0.1:5081', attrs: 'wieght=5' }));
    const before = holder.current;
    const r = await cli('reload');
    expect(r.code).toBe(1);
    expect(stderrLines(r)).toEqual([
      "sipctl: dispatcher reload failed, previous sets kept: dispatcher row 2: attrs 'wieght=5': unknown attribute 'wieght' (known: weight, rweight, duid, maxload, ping_from)",
    ]);
    expect(holder.current).toBe(before);
  });

  it('says so when no proxy listens, after a write that did happen', async () => {
    const dir = tempDir();
    const db = await kind.fresh();
    const control = join(dir, 'nobody.sock');
    const r = await runCli(['dispatcher', 'add', '1', 'sip:127.0.0.1:5090', '--reload', '--db', db, '--control', control]);
    expect(r.code).toBe(1);
    expect(stderrLines(r)).toEqual([
      `sipctl: added id 1 (saved in the database), but the proxy was not reloaded: no sipctl proxy is listening on ${control} (start one with 'sipctl serve', or pass --control PATH)`,
    ]);
    const dump = await runCli(['dispatcher', 'dump', '--control', control]);
    expect(dump.code).toBe(1);
    expect(stderrLines(dump)[0]).toMatch(/no sipctl proxy is listening/);
  });
});
