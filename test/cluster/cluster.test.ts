/**
 * Three real `sipctl serve` nodes on different ports sharing one PostgreSQL database (a
 * throwaway server, see test/helpers/postgres.ts), with real SIPp calls:
 *
 *  - `address add --reload` on one node, and an INSERT through psql, each make all three
 *    admit the new source within 1 s (measured from the write's return, and by the
 *    database's clock from the change to each node's load);
 *  - `cluster status` shows all three current;
 *  - `dispatcher set-state --cluster` applies on every node;
 *  - calls through all three while 20 reloads happen: none fails;
 *  - PostgreSQL stopped mid-traffic: no call fails, `status` says the store is down and
 *    since when; restarted: the nodes reconnect and converge;
 *  - a change announced while the nodes could not listen is loaded when they are back.
 *
 * The nodes connect as a role of their own (not a superuser) owning the database — what
 * the README says sipctl needs — so that the test can shut them out without shutting
 * itself out (ALTER ROLE ... CONNECTION LIMIT 0).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UdpPeer } from '../helpers/sip-peer.js';
import { controlRequest } from '../../src/control/index.js';
import { runCli, stderrLines, stdoutLines } from '../helpers/cli.js';
import { RUN_PG, usePostgres } from '../helpers/postgres.js';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { freePort, RUN_SIPP, runUac, startUas, type UacResult, type Uas } from '../helpers/sipp.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const pg = usePostgres();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface StoreStatus {
  state: 'up' | 'down';
  downSince: string | null;
  node: string | null;
  tables: { address: { version: number | null }; dispatcher: { version: number | null } };
}

async function storeStatus(node: ProxyProcess): Promise<StoreStatus> {
  const s = (await controlRequest(node.control, 'status', {}, { timeoutMs: 5000 })) as { store: StoreStatus };
  return s.store;
}

async function admits(node: ProxyProcess, ip: string): Promise<boolean> {
  const r = (await controlRequest(node.control, 'address.test', { ip, port: 0 }, { timeoutMs: 5000 })) as { match: unknown };
  return r.match !== null;
}

/** Poll (every 10 ms, at most `ms`) until `cond` holds; returns the time it took. */
async function until(cond: () => Promise<boolean>, ms: number, what: string): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (await cond()) return performance.now() - start;
    if (performance.now() - start > ms) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(10);
  }
}

describe.skipIf(!RUN_PG || !RUN_SIPP)('three sipctl nodes sharing one PostgreSQL database', () => {
  const tempDir = useTempDirs('sipctl-cluster-');
  let url = '';
  let admin = '';
  let uas: Uas | undefined;
  let nodes: ProxyProcess[] = [];
  const all = () => nodes;

  beforeAll(async () => {
    const server = pg();
    admin = server.url();
    await server.query(admin, 'CREATE ROLE sipnode LOGIN');
    await server.query(admin, 'CREATE DATABASE cluster OWNER sipnode');
    url = `postgres://sipnode@127.0.0.1:${server.port}/cluster`;

    const uasPort = await freePort();
    uas = await startUas(uasPort, 'u1');
    for (const cmd of [
      ['address', 'add', '1', '127.0.0.1', '32', '0', 'sipp'],
      ['dispatcher', 'add', '1', `sip:127.0.0.1:${uasPort}`],
    ]) {
      const r = await runCli([...cmd, '--db', url]);
      if (r.code !== 0) throw new Error(`setup ${cmd.join(' ')}: ${r.stderr}`);
    }
    // Short heartbeats and retries keep the outage tests short; the defaults are 5 s and 10 s.
    const config = join(tempDir(), 'cluster.yaml');
    writeFileSync(config, 'cluster:\n  heartbeatS: 1\n  retryMaxS: 2\n');
    nodes = await Promise.all(
      [1, 2, 3].map((i) =>
        startProxyProcess({ db: url, args: ['--listen', 'udp:127.0.0.1:0', '--node', `n${i}`, '--config', config], timeoutMs: 60_000 }),
      ),
    );
  }, 120_000);

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await uas?.stop();
  }, 60_000);

  /** The change was committed when `write` returned: how long until all three admit `ip`. */
  async function propagation(ip: string, write: () => Promise<void>): Promise<{ wallMs: number; dbMs: number[] }> {
    for (const n of all()) expect(await admits(n, ip)).toBe(false);
    await write();
    const wallMs = await until(async () => (await Promise.all(all().map((n) => admits(n, ip)))).every(Boolean), 5000, `all nodes admit ${ip}`);
    // By the database's clock: from the change (the trigger's transaction) to each node's load.
    const rows = await pg().query<{ node: string; ms: number }>(
      url,
      `SELECT t.node, EXTRACT(EPOCH FROM (t.loaded - v.changed_at)) * 1000 AS ms
         FROM node_table t JOIN table_version v USING (table_name)
        WHERE t.table_name = 'address' AND t.version = v.version ORDER BY t.node`,
    );
    return { wallMs, dbMs: rows.map((r) => Math.round(Number(r.ms))) };
  }

  it('all three register, hold the same table versions and say the store is up', async () => {
    for (const [i, n] of all().entries()) {
      const s = await storeStatus(n);
      expect(s).toMatchObject({ state: 'up', downSince: null, node: `n${i + 1}` });
      expect(s.tables.address.version).toBe(1);
      expect(s.tables.dispatcher.version).toBe(1);
    }
  });

  it('`address add --reload` on one node: all three admit the new source within 1 s', async () => {
    const before = await runUac({ proxyPort: nodes[1]!.ports.udp!, calls: 3, rate: 10, address: '127.0.0.7', timeoutS: 10 });
    expect([before.successful, before.failed]).toEqual([0, 3]); // 401 Address not authorised

    const p = await propagation('127.0.0.7', async () => {
      const r = await runCli(['address', 'add', '1', '127.0.0.7', '32', '--reload', '--db', url, '--control', nodes[0]!.control]);
      expect(r.code, r.stderr).toBe(0);
      expect(stdoutLines(r)[0]).toBe('added id 2: group 1, 127.0.0.7/32, any port');
    });
    console.log(`address add --reload on n1 → all three admit: ${Math.round(p.wallMs)} ms after the command returned; by the database clock ${p.dbMs.join(', ')} ms`);
    expect(p.wallMs).toBeLessThan(1000);
    expect(p.dbMs).toHaveLength(3);
    for (const ms of p.dbMs) expect(ms).toBeLessThan(1000);

    // On the wire: calls from the new source go through every node.
    for (const n of all()) {
      const r = await runUac({ proxyPort: n.ports.udp!, calls: 5, rate: 10, address: '127.0.0.7', timeoutS: 15 });
      expect([r.successful, r.failed]).toEqual([5, 0]);
    }
  });

  it('an INSERT through psql: all three admit the new source within 1 s', async () => {
    const p = await propagation('127.0.0.8', async () => {
      const r = await pg().psql(url, "INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (1, '127.0.0.8', 32, 0, 'from psql')");
      expect(r.code, r.stderr).toBe(0);
    });
    console.log(`psql INSERT → all three admit: ${Math.round(p.wallMs)} ms after psql returned; by the database clock ${p.dbMs.join(', ')} ms`);
    expect(p.wallMs).toBeLessThan(1000);
    for (const ms of p.dbMs) expect(ms).toBeLessThan(1000);
    const r = await runUac({ proxyPort: nodes[2]!.ports.udp!, calls: 5, rate: 10, address: '127.0.0.8', timeoutS: 15 });
    expect([r.successful, r.failed]).toEqual([5, 0]);
  });

  it('`cluster status` shows all three up and current, as a table and as JSON', async () => {
    const json = await runCli(['cluster', 'status', '--json', '--db', url]);
    expect(json.code, json.stderr).toBe(0);
    const s = JSON.parse(json.stdout) as {
      tables: { table: string; version: number }[];
      nodes: { name: string; state: string; listeners: string[]; tables: { table: string; version: number; current: boolean }[] }[];
    };
    expect(s.tables.map((t) => [t.table, t.version])).toEqual([
      ['address', 3],
      ['dispatcher', 1],
    ]);
    expect(s.nodes.map((n) => [n.name, n.state])).toEqual([
      ['n1', 'up'],
      ['n2', 'up'],
      ['n3', 'up'],
    ]);
    for (const [i, n] of s.nodes.entries()) {
      expect(n.listeners).toEqual([`udp:127.0.0.1:${nodes[i]!.ports.udp}`]);
      expect(n.tables).toEqual([
        expect.objectContaining({ table: 'address', version: 3, current: true }),
        expect.objectContaining({ table: 'dispatcher', version: 1, current: true }),
      ]);
    }
    const table = await runCli(['cluster', 'status', '--db', url]);
    expect(table.code).toBe(0);
    const lines = stdoutLines(table);
    for (const name of ['n1', 'n2', 'n3']) {
      expect(lines.find((l) => l.includes(`│ ${name} `))).toMatch(/│ up +│ .*│ v3 current +│ v1 current +│$/);
    }
    expect(lines.at(-1)).toBe('3 nodes up, 3 of them current');
  });

  it('`dispatcher set-state --cluster` applies on every node', async () => {
    const uri = (await runCli(['dispatcher', 'list', '--json', '--db', url])).stdout;
    const destination = (JSON.parse(uri) as { destinations: { destination: string }[] }).destinations[0]!.destination;
    const off = await runCli(['dispatcher', 'set-state', 'inactive', '1', destination, '--cluster', '--db', url]);
    expect(off.code, off.stderr).toBe(0);
    expect(stdoutLines(off)).toEqual(['n1', 'n2', 'n3'].map((n) => `${n}: ${destination} in set 1: 1 destination now inactive`));
    for (const n of all()) {
      const dump = (await controlRequest(n.control, 'dispatcher.dump', {})) as { sets: { destinations: { state: string }[] }[] };
      expect(dump.sets[0]!.destinations[0]!.state).toBe('inactive');
    }
    const on = await runCli(['dispatcher', 'set-state', 'active', '1', 'all', '--cluster', '--json', '--db', url]);
    expect(on.code, on.stderr).toBe(0);
    expect(JSON.parse(on.stdout)).toEqual({
      state: 'active',
      setid: 1,
      uri: 'all',
      nodes: ['n1', 'n2', 'n3'].map((node) => ({ node, ok: true, result: { changed: 1 } })),
    });
    // Each node ran it through its own control socket, as a local set-state would.
    for (const n of all()) expect(n.stderr()).toMatch(/reason="admin: set-state"/);
  });

  it('`flood unblock --cluster` lifts a block on every node', async () => {
    // 150 requests in a burst from one stranger to each node: over flood.maxRequests (100 in 2 s).
    const flooder = await UdpPeer.open('127.0.0.77');
    try {
      for (const n of all()) for (let i = 0; i < 150; i++) flooder.send(`OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.77:${flooder.port};branch=z9hG4bKf${i}\r\nFrom: <sip:f@x>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: flood-${i}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`, n.ports.udp!);
      const blocked = async (n: ProxyProcess): Promise<boolean> => {
        const list = (await controlRequest(n.control, 'flood.list', {})) as { sources: { address: string; state: string }[] };
        return list.sources.some((x) => x.address === '127.0.0.77' && x.state === 'blocked');
      };
      await until(async () => (await Promise.all(all().map(blocked))).every(Boolean), 5000, 'the flooder blocked on every node');
      const r = await runCli(['flood', 'unblock', '127.0.0.77', '--cluster', '--db', url]);
      expect(r.code, r.stderr).toBe(0);
      expect(stdoutLines(r)).toEqual(['n1', 'n2', 'n3'].map((n) => `${n}: unblocked 127.0.0.77`));
      for (const n of all()) expect(await blocked(n)).toBe(false);
      // Nothing left to unblock: exit 1, as without --cluster.
      const again = await runCli(['flood', 'unblock', '127.0.0.77', '--cluster', '--db', url]);
      expect(again.code).toBe(1);
      expect(stdoutLines(again)).toEqual(['n1', 'n2', 'n3'].map((n) => `${n}: 127.0.0.77 is not blocked; nothing changed`));
    } finally {
      await flooder.close();
    }
  });

  it('SIPp calls through all three while 20 reloads happen: 0 failed', async () => {
    const calls = all().map((n) => runUac({ proxyPort: n.ports.udp!, calls: 600, rate: 20, timeoutS: 90 }));
    let uacsDone = false;
    void Promise.all(calls).then(() => (uacsDone = true));
    await sleep(1000);
    // 20 changes, each loaded by every node before the next: 20 reloads per node, under traffic.
    const start = (await storeStatus(nodes[0]!)).tables.address.version!;
    for (let i = 1; i <= 20; i++) {
      const sql =
        i % 2 === 1
          ? `INSERT INTO address (grp, ip_addr, mask, port) VALUES (9, '10.99.0.${i}', 32, 0)`
          : `DELETE FROM address WHERE grp = 9 AND ip_addr = '10.99.0.${i - 1}'`;
      await pg().query(url, sql);
      await until(
        async () => (await Promise.all(all().map(storeStatus))).every((s) => (s.tables.address.version ?? 0) >= start + i),
        10_000,
        `reload ${i} on every node`,
      );
    }
    const reloadsDuringCalls = !uacsDone;
    const results: UacResult[] = await Promise.all(calls);
    console.log(`20 reloads on 3 nodes under calls: ${results.map((r) => `${r.successful} ok / ${r.failed} failed`).join('; ')}`);
    expect(reloadsDuringCalls).toBe(true); // the reloads happened while the calls ran
    for (const r of results) expect([r.successful, r.failed]).toEqual([600, 0]);
  }, 180_000);

  it('PostgreSQL stopped mid-traffic: 0 failed calls, status says down since when; restarted: nodes reconnect and converge', async () => {
    const calls = all().map((n) => runUac({ proxyPort: n.ports.udp!, calls: 300, rate: 20, timeoutS: 90 }));
    await sleep(2000);
    const stoppedAt = Date.now();
    await pg().stopServer();
    try {
      await until(async () => (await Promise.all(all().map(storeStatus))).every((s) => s.state === 'down'), 15_000, 'every node sees the store down');
      for (const n of all()) {
        const s = await storeStatus(n);
        expect(Date.parse(s.downSince!)).toBeGreaterThanOrEqual(stoppedAt - 1000);
      }
      // The CLI says so too, in one line.
      const status = await runCli(['cluster', 'status', '--db', url]);
      expect(status.code).toBe(1);
      expect(stderrLines(status)).toHaveLength(1);
      expect(stderrLines(status)[0]).toMatch(/^sipctl: cannot connect to PostgreSQL database postgres:\/\/sipnode@127\.0\.0\.1:\d+\/cluster: /);
      await sleep(3000); // calls keep going meanwhile
    } finally {
      await pg().restart();
    }
    const back = await until(async () => (await Promise.all(all().map(storeStatus))).every((s) => s.state === 'up'), 30_000, 'every node back up');
    console.log(`PostgreSQL restarted: all three nodes reconnected within ${Math.round(back)} ms`);
    // Converged: a change now reaches all three, and all are current again.
    const p = await propagation('127.0.0.9', async () => {
      expect((await pg().psql(url, "INSERT INTO address (grp, ip_addr, mask, port) VALUES (1, '127.0.0.9', 32, 0)")).code).toBe(0);
    });
    expect(p.wallMs).toBeLessThan(1000);
    const results = await Promise.all(calls);
    console.log(`PostgreSQL stopped for ~5 s under calls: ${results.map((r) => `${r.successful} ok / ${r.failed} failed`).join('; ')}`);
    for (const r of results) expect([r.successful, r.failed]).toEqual([300, 0]);
    for (const n of all()) {
      // Said once per outage, not once per retry.
      const log = n.stderr();
      expect(log.match(/store unreachable; forwarding goes on/g), log).toHaveLength(1);
      expect(log.match(/INFO store reachable again;/g), log).toHaveLength(1);
    }
    await until(
      async () => {
        const s = JSON.parse((await runCli(['cluster', 'status', '--json', '--db', url])).stdout) as {
          nodes: { state: string; tables: { current: boolean }[] }[];
        };
        return s.nodes.every((n) => n.state === 'up' && n.tables.every((t) => t.current));
      },
      15_000,
      'cluster status: all up and current',
    );
  }, 180_000);

  it('a change made while the nodes could not listen is loaded when they are back', async () => {
    // Shut the nodes' role out and drop their LISTEN connections: no notice can reach them.
    await pg().query(admin, 'ALTER ROLE sipnode CONNECTION LIMIT 0');
    try {
      await pg().query(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'sipctl listen %'");
      await until(async () => (await Promise.all(all().map(storeStatus))).every((s) => s.state === 'down'), 15_000, 'every node sees the store down');
      // Written by another role (the nodes' own is shut out), as a provisioning system would.
      await pg().query(pg().url('cluster'), "INSERT INTO address (grp, ip_addr, mask, port) VALUES (1, '127.0.0.10', 32, 0)");
      await sleep(500);
      for (const n of all()) expect(await admits(n, '127.0.0.10')).toBe(false); // the notice went nowhere
    } finally {
      await pg().query(admin, 'ALTER ROLE sipnode CONNECTION LIMIT -1');
    }
    const ms = await until(async () => (await Promise.all(all().map((n) => admits(n, '127.0.0.10')))).every(Boolean), 15_000, 'all admit after reconnecting');
    console.log(`missed notice: all three loaded the change ${Math.round(ms)} ms after they could connect again`);
    for (const n of all()) expect(await storeStatus(n)).toMatchObject({ state: 'up', downSince: null });
  }, 60_000);
});
