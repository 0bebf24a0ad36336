/**
 * `sipctl cluster status | forget` and `--cluster` without any node running: what a person
 * sees on an empty cluster, and on a SQLite file (where there is no cluster). The commands
 * against running nodes are in test/cluster/cluster.test.ts.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, stderrLines, stdoutLines, useTempDirs } from '../helpers/cli.js';
import { useStores } from '../helpers/stores.js';

const stores = useStores();

for (const kind of stores) describe.skipIf(kind.skip)(`sipctl cluster (${kind.name})`, () => {
  const tempDir = useTempDirs();

  if (kind.name === 'sqlite') {
    it('is refused on a SQLite file: one line, exit 2, for every cluster command', async () => {
      const db = join(tempDir(), 'sipctl.db');
      for (const [args, what] of [
        [['cluster', 'status'], 'cluster status'],
        [['cluster', 'forget', 'n1'], 'cluster forget'],
        [['dispatcher', 'set-state', 'active', '1', 'all', '--cluster'], 'dispatcher set-state --cluster'],
      ] as [string[], string][]) {
        const r = await runCli([...args, '--db', db]);
        expect(r.code, args.join(' ')).toBe(2);
        expect(stderrLines(r)).toEqual([
          `sipctl: ${what} needs the shared PostgreSQL store: --db postgres://USER@HOST:PORT/DB (or SIPCTL_DB); ${db} is a SQLite file, which only one node uses`,
        ]);
      }
    });
    return;
  }

  it('status of a database no node has used: the tables, and that no node registered', async () => {
    const db = await kind.fresh();
    const r = await runCli(['cluster', 'status', '--db', db]);
    expect(r.code, r.stderr).toBe(0);
    const lines = stdoutLines(r);
    expect(lines[0]).toBe('no node has registered on this database (nodes register when `sipctl serve` starts on it)');
    expect(lines[1]).toMatch(/^tables: address v0 \(changed .*Z\), dispatcher v0 \(changed .*Z\)$/);
    expect(lines[2]).toBe('0 nodes up, 0 of them current');
    const json = JSON.parse((await runCli(['cluster', 'status', '--json', '--db', db])).stdout) as Record<string, unknown>;
    expect(json).toMatchObject({ tables: [{ table: 'address', version: 0 }, { table: 'dispatcher', version: 0 }], nodes: [] });
  });

  it('shows a node that stopped, and one whose heartbeat is late, and forgets one', async () => {
    const db = await kind.fresh();
    expect((await runCli(['migrate', '--db', db])).code).toBe(0);
    // Rows as two nodes would have left them: one stopped gracefully, one gone silent 60 s ago.
    await kind.raw(
      db,
      `INSERT INTO node (name, host, pid, listeners, version, heartbeat, heartbeat_s, stopped) VALUES
         ('a', 'h1', 11, 'udp:10.0.0.1:5060', '0.1.0', CURRENT_TIMESTAMP, 5, CURRENT_TIMESTAMP),
         ('b', 'h2', 12, 'udp:10.0.0.2:5060,tcp:10.0.0.2:5060', '0.1.0', CURRENT_TIMESTAMP - INTERVAL '60 seconds', 5, NULL)`,
    );
    await kind.raw(db, "INSERT INTO node_table (node, table_name, version) VALUES ('b', 'address', 0), ('b', 'dispatcher', 0)");
    await kind.raw(db, "INSERT INTO address (grp, ip_addr, mask, port) VALUES (1, '10.0.0.9', 32, 0)");
    const s = JSON.parse((await runCli(['cluster', 'status', '--json', '--db', db])).stdout) as {
      nodes: { name: string; state: string; listeners: string[]; tables: { table: string; version: number | null; current: boolean }[] }[];
    };
    expect(s.nodes.map((n) => [n.name, n.state])).toEqual([
      ['a', 'stopped'],
      ['b', 'stale'],
    ]);
    expect(s.nodes[1]!.listeners).toEqual(['udp:10.0.0.2:5060', 'tcp:10.0.0.2:5060']);
    expect(s.nodes[1]!.tables).toEqual([
      expect.objectContaining({ table: 'address', version: 0, current: false }),
      expect.objectContaining({ table: 'dispatcher', version: 0, current: true }),
    ]);
    const text = stdoutLines(await runCli(['cluster', 'status', '--db', db]));
    expect(text.find((l) => l.includes('│ b '))).toMatch(/STALE \(no heartbeat for \d+ s\).*│ v0 BEHIND \(latest v1\) +│ v0 current +│$/);
    expect(text.find((l) => l.includes('│ a '))).toMatch(/│ stopped 20\d\d-/);
    expect(text.at(-1)).toBe('0 nodes up, 0 of them current; 1 node STALE');

    // --cluster with no live node: nothing is sent, one line, exit 1.
    const none = await runCli(['dispatcher', 'set-state', 'active', '1', 'all', '--cluster', '--db', db]);
    expect(none.code).toBe(1);
    expect(stderrLines(none)).toEqual([
      "sipctl: no node is running on this database (none has a fresh heartbeat; see 'sipctl cluster status'); nothing was sent",
    ]);
    expect(Number((await kind.raw(db, 'SELECT count(*) AS n FROM cluster_command'))[0]!.n)).toBe(0);

    expect(stdoutLines(await runCli(['cluster', 'forget', 'b', '--db', db]))).toEqual([
      'forgot node b (a node still running registers again at its next heartbeat)',
    ]);
    expect(Number((await kind.raw(db, "SELECT count(*) AS n FROM node_table WHERE node = 'b'"))[0]!.n)).toBe(0);
    const again = await runCli(['cluster', 'forget', 'b', '--db', db]);
    expect(again.code).toBe(1);
    expect(stderrLines(again)).toEqual([`sipctl: no node is named "b"; nothing removed (see 'sipctl cluster status')`]);
  });
});
