/**
 * Dialogs and CDRs on the wire (issue 12): SIPp callers through the real `sipctl serve` with
 * `dialog.enabled`, SIPp PBXs in dispatcher set 1. Every way a call ends gives its CDR row
 * (read back with `sipctl cdr list --json`), call lengths are measured to within 100 ms, and
 * the call-load count of every destination goes back to zero whatever the ending.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/client.js';
import { REPO_ROOT, runCli } from '../helpers/cli.js';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { freePort, RUN_SIPP, runUac, startUas, type Uas } from '../helpers/sipp.js';
import { withTestStore } from '../helpers/stores.js';

const SCENARIO = (name: string) => join(REPO_ROOT, 'test', 'fixtures', 'sipp', name);

interface Cdr {
  call_id: string;
  from_uri: string;
  to_uri: string;
  source: string;
  setid: number | null;
  destination: string | null;
  start: string;
  answer: string | null;
  end: string;
  duration: number;
  billable: number;
  code: number;
  reason: string;
  ended_by: string;
  node: string;
}

describe.skipIf(!RUN_SIPP)('dialogs and CDRs with SIPp calls', () => {
  let dir: string;
  let proxy: ProxyProcess | undefined;
  const pbxs: Uas[] = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sipctl-dialog-'));
  });
  afterEach(async () => {
    await proxy?.stop();
    await Promise.all(pbxs.splice(0).map((p) => p.stop()));
    proxy = undefined;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A proxy with dialogs on (flushes every 100 ms) in front of `ports` (set 1). */
  async function setUp(config: string, ports: number[], dialogOptions = '', db?: string): Promise<ProxyProcess> {
    const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, `dialog:\n  enabled: true\n${dialogOptions}cdr:\n  flushMs: 100\n${config}`);
    proxy = await startProxyProcess({
      db,
      args: ['--listen', 'udp:127.0.0.1:0', '--config', file],
      setup: [['address', 'add', '1', '127.0.0.1', '32'], ...ports.map((p) => ['dispatcher', 'add', '1', `sip:127.0.0.1:${p}`])],
    });
    return proxy;
  }

  async function pbx(scenario: string, opts: { pauseMs?: number } = {}): Promise<number> {
    const port = await freePort();
    pbxs.push(await startUas(port, 'u1', '127.0.0.1', { scenario: SCENARIO(scenario), ...opts }));
    return port;
  }

  /** The CDR rows once `n` are written (polled: they are written every flushMs). */
  async function cdrs(n: number, timeoutMs = 5000): Promise<Cdr[]> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const r = await proxy!.cli(['cdr', 'list', '--json', '--limit', '100000']);
      expect(r.code, r.stderr).toBe(0);
      const rows = (JSON.parse(r.stdout) as { cdrs: Cdr[] }).cdrs;
      if (rows.length >= n || Date.now() > until) return rows;
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  async function activeCalls(): Promise<Record<number, number>> {
    const dump = (await controlRequest(proxy!.control, 'dispatcher.dump', {})) as {
      sets: { destinations: { uri: string; activeCalls: number }[] }[];
    };
    const out: Record<number, number> = {};
    for (const d of dump.sets[0]!.destinations) out[Number(/:([0-9]+)$/.exec(d.uri)![1])] = d.activeCalls;
    return out;
  }

  async function liveDialogs(): Promise<{ total: number; dialogs: { id: number; state: string }[] }> {
    return (await controlRequest(proxy!.control, 'dialog.list', {})) as { total: number; dialogs: { id: number; state: string }[] };
  }

  it('caller hangs up after 1.5 s: one row per call, ended by the caller, lengths within 100 ms; counts back to 0', async () => {
    const port = await pbx('uas.xml');
    await setUp('', [port]);
    const r = await runUac({ proxyPort: proxy!.ports.udp!, calls: 5, rate: 5, pauseMs: 1500 });
    expect(r.failed, r.errors).toBe(0);
    expect(r.successful).toBe(5);
    const rows = await cdrs(5);
    expect(rows).toHaveLength(5);
    for (const row of rows) {
      expect(row).toMatchObject({ code: 200, ended_by: 'caller', setid: 1, destination: `sip:127.0.0.1:${port}` });
      expect(row.answer).not.toBeNull();
      expect(Math.abs(row.billable - 1.5)).toBeLessThan(0.1);
      expect(row.duration).toBeGreaterThanOrEqual(row.billable);
      expect(Math.abs(row.duration - 1.5)).toBeLessThan(0.1);
      expect(row.source).toMatch(/^udp:127\.0\.0\.1:[0-9]+$/);
      expect(row.from_uri).toMatch(/^sip:caller[0-9]+@127\.0\.0\.1:/);
    }
    expect(new Set(rows.map((x) => x.call_id)).size).toBe(5);
    expect(await activeCalls()).toEqual({ [port]: 0 });
    expect((await liveDialogs()).total).toBe(0);
  });

  it('the PBX hangs up after 1 s: ended by the callee, billable within 100 ms', async () => {
    const port = await pbx('uas_bye.xml', { pauseMs: 1000 });
    await setUp('', [port]);
    const r = await runUac({ proxyPort: proxy!.ports.udp!, calls: 3, rate: 3, scenario: SCENARIO('uac_callee_bye.xml') });
    expect(r.failed, r.errors).toBe(0);
    const rows = await cdrs(3);
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      expect(row).toMatchObject({ code: 200, ended_by: 'callee' });
      expect(Math.abs(row.billable - 1.0)).toBeLessThan(0.1);
    }
    expect(await activeCalls()).toEqual({ [port]: 0 });
  });

  it('busy (486): a failed row with the code and reason, nothing billable; count back to 0', async () => {
    const port = await pbx('uas_486.xml');
    await setUp('', [port]);
    const r = await runUac({ proxyPort: proxy!.ports.udp!, calls: 4, rate: 4, scenario: SCENARIO('uac_fail.xml') });
    expect(r.failed, r.errors).toBe(0);
    const rows = await cdrs(4);
    expect(rows).toHaveLength(4);
    for (const row of rows) {
      expect(row).toMatchObject({ code: 486, reason: 'Busy Here', ended_by: 'failed', answer: null, billable: 0 });
    }
    expect(await activeCalls()).toEqual({ [port]: 0 });
  });

  for (const mode of ['stateless', 'transaction'] as const) {
    it(`CANCEL while ringing (${mode}): a cancel row with 487; count back to 0`, async () => {
      const port = await pbx('uas_ring_wait.xml');
      await setUp(`mode: ${mode}\n`, [port]);
      const r = await runUac({ proxyPort: proxy!.ports.udp!, calls: 3, rate: 3, pauseMs: 300, scenario: SCENARIO('uac_cancel.xml') });
      expect(r.failed, r.errors).toBe(0);
      const rows = await cdrs(3);
      expect(rows).toHaveLength(3);
      for (const row of rows) expect(row).toMatchObject({ code: 487, ended_by: 'cancel', answer: null, billable: 0 });
      expect(await activeCalls()).toEqual({ [port]: 0 });
    });
  }

  it('PBX down (transaction mode, fr_timer 1 s): a failed row with 408 naming the PBX; count back to 0', async () => {
    const down = await freePort();
    await setUp('mode: transaction\ntransaction:\n  frTimerMs: 1000\n', [down]);
    const r = await runUac({ proxyPort: proxy!.ports.udp!, calls: 2, rate: 2, scenario: SCENARIO('uac_fail.xml'), timeoutS: 20 });
    expect(r.failed, r.errors).toBe(0);
    const rows = await cdrs(2);
    expect(rows).toHaveLength(2);
    for (const row of rows) expect(row).toMatchObject({ code: 408, ended_by: 'failed', destination: `sip:127.0.0.1:${down}`, answer: null });
    expect(await activeCalls()).toEqual({ [down]: 0 });
  });

  it('PBX down (stateless): Timer C (dialog.timerCS 2 s) ends the early call; count back to 0', async () => {
    const down = await freePort();
    await setUp('', [down], '  timerCS: 2\n');
    const caller = runUac({ proxyPort: proxy!.ports.udp!, calls: 1, rate: 1, scenario: SCENARIO('uac_fail.xml'), timeoutS: 4 });
    // Counted from the INVITE on (SIPp takes a moment to start).
    for (let i = 0; i < 15 && (await activeCalls())[down] === 0; i++) await new Promise((res) => setTimeout(res, 100));
    expect(await activeCalls()).toEqual({ [down]: 1 });
    expect((await liveDialogs()).dialogs[0]!.state).toBe('trying');
    const rows = await cdrs(1, 6000);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ code: 408, ended_by: 'failed' });
    expect(Math.abs(rows[0]!.duration - 2)).toBeLessThan(0.2);
    expect(await activeCalls()).toEqual({ [down]: 0 });
    await caller;
  });

  it('call-load (algorithm 10) with failover: PBX A answers 503, every call completes on B; both counts back to 0', async () => {
    const a = await pbx('uas_503.xml');
    const b = await pbx('uas.xml');
    await setUp('mode: transaction\ndispatcher:\n  rules: [{ set: 1, algorithm: call-load }]\n', [a, b]);
    const r = await runUac({ proxyPort: proxy!.ports.udp!, calls: 10, rate: 10, pauseMs: 1000 });
    expect(r.failed, r.errors).toBe(0);
    const rows = await cdrs(10);
    expect(rows).toHaveLength(10);
    for (const row of rows) expect(row).toMatchObject({ code: 200, ended_by: 'caller', destination: `sip:127.0.0.1:${b}` });
    expect(await activeCalls()).toEqual({ [a]: 0, [b]: 0 });
  });

  it('call-load spreads live calls by maxload and counts them while they last', async () => {
    const a = await pbx('uas.xml');
    const b = await pbx('uas.xml');
    const file = join(dir, 'load.yaml');
    writeFileSync(file, 'dialog:\n  enabled: true\ncdr:\n  flushMs: 100\ndispatcher:\n  rules: [{ set: 1, algorithm: 10 }]\n');
    proxy = await startProxyProcess({
      args: ['--listen', 'udp:127.0.0.1:0', '--config', file],
      setup: [
        ['address', 'add', '1', '127.0.0.1', '32'],
        ['dispatcher', 'add', '1', `sip:127.0.0.1:${a}`, '--attrs', 'maxload=2'],
        ['dispatcher', 'add', '1', `sip:127.0.0.1:${b}`, '--attrs', 'maxload=6'],
      ],
    });
    const calls = runUac({ proxyPort: proxy.ports.udp!, calls: 8, rate: 40, pauseMs: 2500 });
    await new Promise((res) => setTimeout(res, 1200));
    // 8 calls over capacities 2 and 6: A is full at 2, B carries 6.
    expect(await activeCalls()).toEqual({ [a]: 2, [b]: 6 });
    expect((await liveDialogs()).total).toBe(8);
    const r = await calls;
    expect(r.failed, r.errors).toBe(0);
    await cdrs(8);
    expect(await activeCalls()).toEqual({ [a]: 0, [b]: 0 });
  });

  it('dialog.timeoutS: a call that outlives it gets BYE on both sides and a timeout row', async () => {
    const port = await pbx('uas.xml');
    await setUp('', [port], '  timeoutS: 1\n');
    const r = await runUac({ proxyPort: proxy!.ports.udp!, calls: 2, rate: 2, scenario: SCENARIO('uac_callee_bye.xml'), timeoutS: 10 });
    expect(r.failed, r.errors).toBe(0);
    // The PBX got its BYE too (SIPp writes its statistics once a second).
    for (let i = 0; i < 30 && pbxs[0]!.stats().successful < 2; i++) await new Promise((res) => setTimeout(res, 100));
    expect(pbxs[0]!.stats().successful).toBe(2);
    const rows = await cdrs(2);
    for (const row of rows) {
      expect(row).toMatchObject({ ended_by: 'timeout' });
      expect(Math.abs(row.billable - 1)).toBeLessThan(0.1);
    }
    expect(await activeCalls()).toEqual({ [port]: 0 });
  });

  it('sipctl dialog list shows the live call; sipctl dialog end sends BYE to both sides', async () => {
    const port = await pbx('uas.xml');
    await setUp('', [port]);
    const call = runUac({ proxyPort: proxy!.ports.udp!, calls: 1, rate: 1, scenario: SCENARIO('uac_callee_bye.xml'), timeoutS: 15 });
    let listed: { id: number; state: string } | undefined;
    for (let i = 0; i < 50 && listed?.state !== 'confirmed'; i++) {
      await new Promise((res) => setTimeout(res, 100));
      listed = (await liveDialogs()).dialogs[0];
    }
    expect(listed?.state).toBe('confirmed');
    const text = await runCli(['dialog', 'list', '--control', proxy!.control]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/confirmed/);
    expect(text.stdout).toContain(`sip:127.0.0.1:${port}`);
    const ended = await runCli(['dialog', 'end', String(listed!.id), '--control', proxy!.control]);
    expect(ended.code, ended.stderr).toBe(0);
    const r = await call;
    expect(r.failed, r.errors).toBe(0);
    expect(r.successful).toBe(1);
    const rows = await cdrs(1);
    expect(rows[0]).toMatchObject({ ended_by: 'admin', code: 200 });
    const again = await runCli(['dialog', 'end', String(listed!.id), '--control', proxy!.control]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/no live dialog has id/);
  });

  it('a call still up at SIGTERM gets its row before the proxy exits: ended_by shutdown, end = the shutdown time', async () => {
    const port = await pbx('uas.xml');
    const db = join(dir, 'shutdown.db'); // outlives the proxy's own temp dir, which stop() removes
    await setUp('', [port], '', db);
    const p = proxy!;
    // One call that would last a minute; SIPp gives up by its own global timeout once the proxy is gone.
    const call = runUac({ proxyPort: p.ports.udp!, calls: 1, rate: 1, pauseMs: 60_000, timeoutS: 8 });
    let listed: { id: number; state: string } | undefined;
    for (let i = 0; i < 50 && listed?.state !== 'confirmed'; i++) {
      await new Promise((res) => setTimeout(res, 100));
      listed = (await liveDialogs()).dialogs[0];
    }
    expect(listed?.state).toBe('confirmed');
    await new Promise((res) => setTimeout(res, 500));
    const before = Date.now();
    expect(await p.stop()).toBe(0); // SIGTERM
    const after = Date.now();
    proxy = undefined;
    const rows = await withTestStore(db, (s) => s.cdr.list(), { readonly: true });
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    expect(row).toMatchObject({ ended_by: 'shutdown', code: 200, setid: 1, destination: `sip:127.0.0.1:${port}` });
    expect(row.answer_ms).not.toBeNull();
    expect(row.end_ms).toBeGreaterThanOrEqual(before);
    expect(row.end_ms).toBeLessThanOrEqual(after);
    expect(row.billable).toBeGreaterThanOrEqual(0.5);
    await call;
  }, 30_000);

  it('1,000 calls give 1,000 rows', async () => {
    const port = await pbx('uas.xml');
    await setUp('', [port]);
    const r = await runUac({ proxyPort: proxy!.ports.udp!, calls: 1000, rate: 200, timeoutS: 60 });
    expect(r.failed, r.errors).toBe(0);
    const rows = await cdrs(1000, 10_000);
    expect(rows).toHaveLength(1000);
    expect(new Set(rows.map((x) => x.call_id)).size).toBe(1000);
    expect(rows.every((x) => x.ended_by === 'caller' && x.code === 200)).toBe(true);
    expect(await activeCalls()).toEqual({ [port]: 0 });
  }, 90_000);
});
