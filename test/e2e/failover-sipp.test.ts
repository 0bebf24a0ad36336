/**
 * Failover with real calls (issue 9): SIPp callers through `sipctl serve` to two SIPp PBXs,
 * one of which misbehaves — answers 503, is not running at all, or rings and then fails. In
 * transaction mode every call completes on the good PBX; in stateless mode the same set-up
 * loses about half the calls, which is why transaction mode exists.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/client.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { freePort, RUN_SIPP, runUac, startUas, type Uas } from '../helpers/sipp.js';

const SCENARIO = (name: string) => join(REPO_ROOT, 'test', 'fixtures', 'sipp', name);

describe.skipIf(!RUN_SIPP)('failover with SIPp PBXs', () => {
  let dir: string;
  let proxy: ProxyProcess | undefined;
  const pbxs: Uas[] = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sipctl-failover-'));
  });
  afterEach(async () => {
    await proxy?.stop();
    await Promise.all(pbxs.splice(0).map((p) => p.stop()));
    proxy = undefined;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function setUp(config: string, bad: string | 'none'): Promise<{ goodPort: number; badPort: number }> {
    const goodPort = await freePort();
    const badPort = await freePort();
    pbxs.push(await startUas(goodPort, 'u1'));
    if (bad !== 'none') pbxs.push(await startUas(badPort, 'u1', '127.0.0.1', { scenario: SCENARIO(bad) }));
    const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, config);
    proxy = await startProxyProcess({
      args: ['--listen', 'udp:127.0.0.1:0', '--config', file],
      setup: [
        ['address', 'add', '1', '127.0.0.1', '32'],
        ['dispatcher', 'add', '1', `sip:127.0.0.1:${goodPort}`],
        ['dispatcher', 'add', '1', `sip:127.0.0.1:${badPort}`],
      ],
    });
    return { goodPort, badPort };
  }

  async function destination(port: number): Promise<{ state: string; requestsSent: number; timeouts: number; failovers: number }> {
    const dump = (await controlRequest(proxy!.control, 'dispatcher.dump', {})) as {
      sets: { destinations: { uri: string; state: string; requestsSent: number; timeouts: number; failovers: number }[] }[];
    };
    return dump.sets[0]!.destinations.find((d) => new RegExp(`:${port}(;|$)`).test(d.uri))!;
  }

  it('PBX B answers every INVITE with 503: transaction mode completes every call on A', async () => {
    const { badPort } = await setUp('mode: transaction\n', 'uas_503.xml');
    const r = await runUac({ proxyPort: proxy!.ports.udp!, calls: 100, rate: 20 });
    expect(r.failed, r.errors).toBe(0);
    expect(r.successful).toBe(100);
    // Round-robin sent about half the calls to B first; each failed over, counted there.
    const b = await destination(badPort);
    expect(b.failovers).toBeGreaterThanOrEqual(40);
    expect(b.failovers).toBe(b.requestsSent);
  });

  it('the same PBX B in stateless mode loses about half the calls', async () => {
    await setUp('mode: stateless\n', 'uas_503.xml');
    const r = await runUac({ proxyPort: proxy!.ports.udp!, calls: 100, rate: 20 });
    expect(r.failed).toBeGreaterThanOrEqual(30);
    expect(r.failed).toBeLessThanOrEqual(70);
  });

  it('PBX B not running, fr_timer 2 s: every call completes on A; B is marked inactive after 3 timeouts and gets no more', async () => {
    const { badPort } = await setUp('mode: transaction\ntransaction:\n  frTimerMs: 2000\n', 'none');
    const first = await runUac({ proxyPort: proxy!.ports.udp!, calls: 20, rate: 5, timeoutS: 60 });
    expect(first.failed, first.errors).toBe(0);
    expect(first.successful).toBe(20);
    const b = await destination(badPort);
    expect(b.state).toBe('inactive');
    // Every request sent to B timed out and went on to A; the calls in flight when the third
    // timeout took B out still time out, so there may be more than 3.
    expect(b.timeouts).toBeGreaterThanOrEqual(3);
    expect(b.timeouts).toBe(b.requestsSent);
    expect(b.failovers).toBe(b.requestsSent);
    expect(proxy!.stderr()).toMatch(/destination state changed .* from=active to=inactive reason="3 transaction timeouts in a row"/);
    // The same timeouts, as status (and /metrics) count them: fr_timer ended each branch.
    const status = (await controlRequest(proxy!.control, 'status', {})) as { transactions: { timedOut: number } };
    expect(status.transactions.timedOut).toBe(b.timeouts);
    // Out of rotation: the next calls go to A alone, at once.
    const second = await runUac({ proxyPort: proxy!.ports.udp!, calls: 20, rate: 10 });
    expect(second.failed, second.errors).toBe(0);
    expect((await destination(badPort)).requestsSent).toBe(b.requestsSent);
  });

  it('PBX B over TCP refuses connections: its branches fail at once (§17.1.4) and every call completes on A, long before fr_timer', async () => {
    const goodPort = await freePort();
    const badPort = await freePort(); // nothing listens there
    pbxs.push(await startUas(goodPort, 'u1'));
    const file = join(dir, 'tcp-refused.yaml');
    writeFileSync(file, 'mode: transaction\n'); // fr_timer stays at its 30 s default
    proxy = await startProxyProcess({
      args: ['--listen', 'udp:127.0.0.1:0', '--listen', 'tcp:127.0.0.1:0', '--config', file],
      setup: [
        ['address', 'add', '1', '127.0.0.1', '32'],
        ['dispatcher', 'add', '1', `sip:127.0.0.1:${goodPort}`],
        ['dispatcher', 'add', '1', `sip:127.0.0.1:${badPort};transport=tcp`],
      ],
    });
    // SIPp gives each call 15 s: a call that waited for fr_timer (30 s) would fail.
    const r = await runUac({ proxyPort: proxy.ports.udp!, calls: 20, rate: 10, timeoutS: 15 });
    expect(r.failed, r.errors).toBe(0);
    expect(r.successful).toBe(20);
    const b = await destination(badPort);
    expect(b.requestsSent).toBeGreaterThanOrEqual(5);
    expect(b.failovers).toBe(b.requestsSent);
    expect(b.timeouts).toBe(0);
  });

  it('PBX B rings and then fails: the call completes on A', async () => {
    await setUp('mode: transaction\n', 'uas_ring_fail.xml');
    const r = await runUac({ proxyPort: proxy!.ports.udp!, calls: 40, rate: 10 });
    expect(r.failed, r.errors).toBe(0);
    expect(r.successful).toBe(40);
  });
});
