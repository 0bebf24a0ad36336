/**
 * The address table end to end, with real SIPp calls: unknown senders get 401 and are never
 * forwarded; `address add` changes only the database; `address reload` lets the calls
 * through; and 50 reloads of a 100,000-entry table under 2,000 calls fail none of them.
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI_PATH, REPO_ROOT } from '../helpers/cli.js';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { sipRequest, UdpPeer, unique } from '../helpers/sip-peer.js';
import { freePort, RUN_SIPP, runUac, startUas, type Uas } from '../helpers/sipp.js';

describe.skipIf(!RUN_SIPP)('address table with SIPp calls', () => {
  let proxy: ProxyProcess | undefined;
  let uas: Uas | undefined;

  afterEach(async () => {
    await proxy?.stop();
    await uas?.stop();
    proxy = undefined;
    uas = undefined;
  });

  it('refuses 127.0.0.1 with 401 until the entry is added and reloaded', async () => {
    const uasPort = await freePort();
    uas = await startUas(uasPort, 'u1');
    proxy = await startProxyProcess({
      setup: [['address', 'add', '1', '127.0.0.2', '32'], ['dispatcher', 'add', '1', `sip:127.0.0.1:${uasPort}`]],
      args: ['--listen', 'udp:127.0.0.1:0'],
    });
    const port = proxy.ports.udp!;

    // The answer is 401 Address not authorised, and nothing reaches the PBX.
    const peer = await UdpPeer.open();
    try {
      const callId = unique('acl-');
      peer.send(sipRequest({ uri: `sip:service@127.0.0.1:${port}`, via: { host: '127.0.0.1', port: peer.port }, callId }), port);
      const r = await peer.next((x) => x.msg.header('call-id') === callId);
      expect(r.msg.status).toBe(401);
      expect(r.msg.reason).toBe('Address not authorised');
    } finally {
      await peer.close();
    }

    const refused = await runUac({ proxyPort: port, calls: 10, rate: 50, timeoutS: 5 });
    expect(refused.successful).toBe(0);
    expect(refused.failed).toBe(10);
    expect(uas.stats().successful).toBe(0);

    // In the database only: still refused.
    expect((await proxy.cli(['address', 'add', '1', '127.0.0.1', '32'])).code).toBe(0);
    const stillRefused = await runUac({ proxyPort: port, calls: 10, rate: 50, timeoutS: 5 });
    expect(stillRefused.successful).toBe(0);
    expect(stillRefused.failed).toBe(10);

    const reload = await proxy.cli(['address', 'reload']);
    expect(reload.code).toBe(0);
    const ok = await runUac({ proxyPort: port, calls: 200, rate: 100 });
    expect(ok.failed).toBe(0);
    expect(ok.successful).toBe(200);
    expect(proxy.stderr()).toMatch(/request from an address not in the address table/);
  });

  it('loses no call while a 100,000-entry table is reloaded 50 times under 2,000 calls', async () => {
    const uasPort = await freePort();
    uas = await startUas(uasPort, 'u1');
    proxy = await startProxyProcess({
      setup: [['dispatcher', 'add', '1', `sip:127.0.0.1:${uasPort}`]],
      args: ['--listen', 'udp:127.0.0.1:0'],
    });
    // 100,000 entries in several groups, written straight into the proxy's SQLite file;
    // 127.0.0.1 is admitted by one of them.
    const db = new Database(proxy.db);
    const insert = db.prepare('INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (?, ?, ?, ?, ?)');
    db.transaction(() => {
      for (let i = 0; i < 99_999; i++) {
        const a = 10 + (i % 200);
        insert.run(i % 7, `${a}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 32, 0, null);
      }
      insert.run(3, '127.0.0.0', 8, 0, 'loopback');
    })();
    db.close();
    const first = await proxy.cli(['address', 'reload', '--json']);
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout).total).toBe(100_000);

    const calls = runUac({ proxyPort: proxy.ports.udp!, calls: 2000, rate: 200 });
    const reloads = (async () => {
      let done = 0;
      // Bounded: a reload of 100,000 entries takes 0.3 s on a quiet machine, over 1 s on a
      // busy one; the calls keep running for as long as the reloads take.
      const deadline = Date.now() + 150_000;
      while (done < 50 && Date.now() < deadline) {
        const code = await new Promise<number | null>((resolve) => {
          const c = spawn(process.execPath, [CLI_PATH, 'address', 'reload', '--control', proxy!.control], { cwd: REPO_ROOT, stdio: 'ignore' });
          c.on('exit', resolve);
        });
        if (code !== 0) throw new Error(`reload ${done + 1} exited ${code}`);
        done++;
      }
      return done;
    })();
    const [r, n] = await Promise.all([calls, reloads]);
    expect(n).toBe(50);
    expect(r.failed).toBe(0);
    expect(r.successful).toBe(2000);
  }, 180_000);
});
