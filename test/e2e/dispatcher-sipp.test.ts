/**
 * The dispatcher end to end with real SIPp PBXs: exact round-robin over two PBXs, and
 * failover — a PBX that stops answering OPTIONS is marked inactive and gets no more calls,
 * and is marked active again when it is back.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { freePort, RUN_SIPP, runUac, startUas, type Uas } from '../helpers/sipp.js';

interface DumpDestination {
  uri: string;
  state: string;
  requestsSent: number;
}

async function states(proxy: ProxyProcess): Promise<Map<string, DumpDestination>> {
  const r = await proxy.cli(['dispatcher', 'dump', '--json']);
  if (r.code !== 0) throw new Error(r.stderr);
  const dump = JSON.parse(r.stdout) as { sets: Array<{ setid: number; destinations: DumpDestination[] }> };
  return new Map(dump.sets.flatMap((s) => s.destinations).map((d) => [d.uri, d]));
}

async function waitForState(proxy: ProxyProcess, uri: string, state: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await states(proxy)).get(uri)?.state === state) return;
    if (Date.now() > deadline) throw new Error(`${uri} did not become ${state} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.skipIf(!RUN_SIPP)('dispatcher with SIPp PBXs', () => {
  let proxy: ProxyProcess | undefined;
  const pbxs: Uas[] = [];

  afterEach(async () => {
    await proxy?.stop();
    for (const p of pbxs.splice(0)) await p.stop();
    proxy = undefined;
  });

  it('round-robins 2,000 calls over two PBXs: 1,000 ± 1 each, 0 failed', async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    pbxs.push(await startUas(p1), await startUas(p2));
    proxy = await startProxyProcess({
      setup: [
        ['address', 'add', '1', '127.0.0.1', '32'],
        ['dispatcher', 'add', '1', `sip:127.0.0.1:${p1}`],
        ['dispatcher', 'add', '1', `sip:127.0.0.1:${p2}`],
      ],
      args: ['--listen', 'udp:127.0.0.1:0'],
    });
    const r = await runUac({ proxyPort: proxy.ports.udp!, calls: 2000, rate: 250 });
    expect(r.failed).toBe(0);
    expect(r.successful).toBe(2000);
    await new Promise((res) => setTimeout(res, 1500)); // let the PBXs write their figures
    const [a, b] = pbxs.map((p) => p.stats().successful);
    expect(Math.abs(a! - 1000)).toBeLessThanOrEqual(1);
    expect(Math.abs(b! - 1000)).toBeLessThanOrEqual(1);
  });

  it('stops sending to a PBX whose probes fail, and takes it back when it answers again', async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    const configDir = mkdtempSync(join(tmpdir(), 'sipctl-probe-'));
    const uri1 = `sip:127.0.0.1:${p1}`;
    const uri2 = `sip:127.0.0.1:${p2}`;
    const pbx1 = await startUas(p1, 'u1', '127.0.0.1', { answerOptions: true });
    let pbx2 = await startUas(p2, 'u1', '127.0.0.1', { answerOptions: true });
    pbxs.push(pbx1);
    proxy = await startProxyProcess({
      setup: [
        ['address', 'add', '1', '127.0.0.1', '32'],
        ['dispatcher', 'add', '1', uri1],
        ['dispatcher', 'add', '1', uri2],
      ],
      args: ['--listen', 'udp:127.0.0.1:0', '--config', writeConfig()],
    });
    await waitForState(proxy, uri2, 'active');

    // Calls flow while PBX 2 dies.
    const during = runUac({ proxyPort: proxy.ports.udp!, calls: 400, rate: 100 });
    await new Promise((r) => setTimeout(r, 1500));
    await pbx2.stop();
    await waitForState(proxy, uri2, 'inactive');
    const duringResult = await during;
    expect(duringResult.successful).toBeGreaterThan(200);

    // Marked inactive: every new call goes to PBX 1 and succeeds.
    const sentBefore = (await states(proxy)).get(uri2)!.requestsSent;
    const after = await runUac({ proxyPort: proxy.ports.udp!, calls: 200, rate: 100 });
    expect(after.failed).toBe(0);
    expect(after.successful).toBe(200);
    expect((await states(proxy)).get(uri2)!.requestsSent).toBe(sentBefore);

    // Back: probes succeed, it is active again and gets calls.
    pbx2 = await startUas(p2, 'u1', '127.0.0.1', { answerOptions: true });
    pbxs.push(pbx2);
    await waitForState(proxy, uri2, 'active');
    const back = await runUac({ proxyPort: proxy.ports.udp!, calls: 100, rate: 100 });
    expect(back.failed).toBe(0);
    expect((await states(proxy)).get(uri2)!.requestsSent).toBeGreaterThan(sentBefore);
    expect(proxy.stderr()).toMatch(/destination state changed.*to=inactive/);
    expect(proxy.stderr()).toMatch(/destination state changed.*to=active/);
    rmSync(configDir, { recursive: true, force: true });

    function writeConfig(): string {
      const file = join(configDir, 'probe.yaml');
      writeFileSync(file, 'dispatcher:\n  probe: { interval: 1, failures: 2, successes: 1, t1Ms: 100, timeoutMs: 800 }\n');
      return file;
    }
  });
});
