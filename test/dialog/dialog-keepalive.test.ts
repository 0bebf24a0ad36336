/**
 * In-dialog keepalives, `dialog end` on a call not answered yet, and `status` with dialogs,
 * on the wire (issue 12): the real `sipctl serve` with UDP peers on loopback as caller and
 * PBX (test/helpers/lab.ts).
 *
 * - keepalives: every confirmed call gets an OPTIONS to both ends each `dialog.keepaliveS`
 *   (§12.2.1.1: Request-URI = the end's Contact, From/To with the dialog's tags, its
 *   Call-ID, the route set beyond us); ends that answer keep the call; a callee that stops
 *   answering ends it (BYE to both, CDR 'keepalive', call-load back to 0), and answers
 *   forged by a sender the address table does not admit change nothing;
 * - `dialog end` on an early call CANCELs the INVITE towards the PBX (§9.1), statelessly and
 *   in transaction mode, and the caller gets the PBX's 487;
 * - `sipctl status` counts live calls by state.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/client.js';
import type { SipMessage } from '../../src/sip/message.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { byCallId, startLab, type Lab } from '../helpers/lab.js';
import { responseTo, type Received, type UdpPeer } from '../helpers/sip-peer.js';

let dir: string;
let lab: Lab | undefined;
const stops: Array<() => void> = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sipctl-dlgka-'));
});
afterEach(async () => {
  for (const s of stops.splice(0)) s();
  await lab?.close();
  lab = undefined;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function withConfig(yaml: string): Promise<Lab> {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  lab = await startLab({ args: ['--config', file] });
  return lab;
}

const isOptions = (callId: string) => (r: Received): boolean => byCallId(callId)(r) && r.msg.method === 'OPTIONS';
const isBye = (callId: string) => (r: Received): boolean => byCallId(callId)(r) && r.msg.method === 'BYE';

/**
 * Answers every in-dialog OPTIONS of `callId` that reaches `peer` with `status` (bounded:
 * at most 100 answers), and keeps what it answered; stopped after the test.
 */
function answerOptions(peer: UdpPeer, port: number, callId: string, status = 200): SipMessage[] {
  const seen: SipMessage[] = [];
  let stopped = false;
  stops.push(() => {
    stopped = true;
  });
  void (async () => {
    for (let i = 0; i < 100 && !stopped; i++) {
      let r: Received;
      try {
        r = await peer.next(isOptions(callId), 1000);
      } catch {
        continue;
      }
      seen.push(r.msg);
      peer.send(responseTo(r.msg, status, status === 200 ? 'OK' : 'Whatever', [], r.msg.to.tag ?? 'x'), port);
    }
  })();
  return seen;
}

/** A call from the lab's caller, answered by whichever PBX got it; the PBX's 200 carries `calleeRr` above the proxy's Record-Route. */
async function answeredCall(l: Lab, opts: { callerRr?: string; calleeRr?: string } = {}) {
  const { text, callId } = l.request({ extra: opts.callerRr === undefined ? [] : [`Record-Route: ${opts.callerRr}`] });
  l.caller.send(text, l.port);
  const got = await l.atPbx(byCallId(callId));
  const pbx = got.pbx;
  let ok = responseTo(got.msg, 200, 'OK', [`Contact: <sip:pbx@127.0.0.1:${pbx.port}>`]);
  if (opts.calleeRr !== undefined) ok = ok.replace('Record-Route: ', `Record-Route: ${opts.calleeRr}\r\nRecord-Route: `);
  pbx.send(ok, l.port);
  const answer = await l.caller.next((r) => byCallId(callId)(r) && r.msg.status === 200);
  return { callId, pbx, invite: got.msg, answer: answer.msg };
}

/** A sipctl command that talks to the proxy's control socket. */
function ctl(l: Lab, args: readonly string[]): Promise<CliResult> {
  return runCli([...args, '--control', l.proxy.control]);
}

async function dialogs(l: Lab): Promise<{ total: number; dialogs: { id: number; state: string; callId: string }[] }> {
  return (await controlRequest(l.proxy.control, 'dialog.list', {})) as { total: number; dialogs: { id: number; state: string; callId: string }[] };
}

async function activeCalls(l: Lab): Promise<number[]> {
  const dump = (await controlRequest(l.proxy.control, 'dispatcher.dump', {})) as { sets: { destinations: { activeCalls: number }[] }[] };
  return dump.sets[0]!.destinations.map((d) => d.activeCalls);
}

interface CdrRow {
  call_id: string;
  code: number;
  reason: string;
  ended_by: string;
  answer: string | null;
}

async function cdrRows(l: Lab, n: number): Promise<CdrRow[]> {
  const until = Date.now() + 5000;
  for (;;) {
    const r = await l.proxy.cli(['cdr', 'list', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rows = (JSON.parse(r.stdout) as { cdrs: CdrRow[] }).cdrs;
    if (rows.length >= n || Date.now() > until) return rows;
    await new Promise((res) => setTimeout(res, 100));
  }
}

describe('in-dialog keepalives (dialog.keepaliveS)', () => {
  it('sends OPTIONS to both ends each interval, as RFC 3261 §12.2.1.1 builds them; ends that answer keep the call', async () => {
    const l = await withConfig('dialog:\n  enabled: true\n  keepaliveS: 1\ncdr:\n  flushMs: 100\n');
    // A proxy between the caller and us (10.8.8.8) and one between us and the PBX (10.9.9.9) record-routed too.
    const call = await answeredCall(l, { callerRr: '<sip:10.8.8.8;lr>', calleeRr: '<sip:10.9.9.9;lr>' });
    const atPbx = answerOptions(call.pbx, l.port, call.callId);
    const atCaller = answerOptions(l.caller, l.port, call.callId);
    // Three rounds (1 s apart); the call must survive them all.
    await new Promise((res) => setTimeout(res, 3600));
    expect(atPbx.length).toBeGreaterThanOrEqual(2);
    expect(atCaller.length).toBeGreaterThanOrEqual(2);
    const live = await dialogs(l);
    expect(live.dialogs.map((d) => [d.callId, d.state])).toEqual([[call.callId, 'confirmed']]);

    const toPbx = atPbx[0]!;
    expect(toPbx.requestUriText).toBe(`sip:pbx@127.0.0.1:${call.pbx.port}`); // the callee's Contact
    expect(toPbx.header('from')).toBe(call.invite.header('from')); // as the caller, with its tag
    expect(toPbx.to.tag).toBe('uas1');
    expect(toPbx.header('call-id')).toBe(call.callId);
    expect(toPbx.header('cseq')).toBe('1 OPTIONS'); // the caller's CSeq, not above it (§12.2.2)
    expect(toPbx.header('route')).toBe('<sip:10.9.9.9;lr>'); // the route set beyond us, towards the callee
    expect(toPbx.headerFields('via')).toHaveLength(1);
    expect(toPbx.topVia!.host).toBe('127.0.0.1');
    expect(toPbx.topVia!.port).toBe(l.port);
    expect(toPbx.topVia!.branch).toMatch(/^z9hG4bK/);
    expect(atPbx[1]!.topVia!.branch).not.toBe(toPbx.topVia!.branch); // a fresh branch each time

    const toCaller = atCaller[0]!;
    expect(toCaller.requestUriText).toBe(`sip:caller@127.0.0.1:${l.caller.port}`);
    expect(toCaller.from.tag).toBe('uas1'); // as the callee
    expect(toCaller.to.tag).toBe(call.invite.from.tag);
    expect(toCaller.header('route')).toBe('<sip:10.8.8.8;lr>'); // towards the caller
    expect(toCaller.cseq.method).toBe('OPTIONS');

    // The answers were absorbed by the proxy: nothing of them reached the other end.
    expect(l.caller.drain().filter((r) => !r.msg.isRequest && r.msg.cseq.method === 'OPTIONS')).toEqual([]);
    expect(call.pbx.drain().filter((r) => !r.msg.isRequest && r.msg.cseq.method === 'OPTIONS')).toEqual([]);
    // No BYE went anywhere.
    expect(await call.pbx.nothing(isBye(call.callId), 100)).toBe(true);

    const st = await ctl(l, ['status', '--json']);
    expect(st.code, st.stderr).toBe(0);
    expect((JSON.parse(st.stdout) as { dialogs: { confirmed: number } }).dialogs.confirmed).toBe(1);
  }, 15_000);

  it('a callee that stops answering ends the call: BYE to both ends, CDR row ended_by keepalive, call-load back to 0; forged answers change nothing', async () => {
    const l = await withConfig('dialog:\n  enabled: true\n  keepaliveS: 1\n  keepaliveFailures: 2\ncdr:\n  flushMs: 100\n');
    const call = await answeredCall(l);
    expect(await activeCalls(l)).toContain(1);
    answerOptions(l.caller, l.port, call.callId);
    // The PBX is silent; a sender the address table does not admit (127.0.0.2) answers in its
    // place, with the very branch the PBX's OPTIONS carried.
    let forged = 0;
    let stopped = false;
    stops.push(() => {
      stopped = true;
    });
    void (async () => {
      for (let i = 0; i < 20 && !stopped; i++) {
        let r: Received;
        try {
          r = await call.pbx.next(isOptions(call.callId), 1000);
        } catch {
          continue;
        }
        forged++;
        l.stranger.send(responseTo(r.msg, 200, 'OK', [], r.msg.to.tag ?? 'x'), l.port);
      }
    })();
    const byeAtPbx = await call.pbx.next(isBye(call.callId), 8000);
    const byeAtCaller = await l.caller.next(isBye(call.callId), 2000);
    expect(forged).toBeGreaterThanOrEqual(2);
    expect(byeAtPbx.msg.requestUriText).toBe(`sip:pbx@127.0.0.1:${call.pbx.port}`);
    expect(byeAtPbx.msg.to.tag).toBe('uas1');
    expect(byeAtCaller.msg.to.tag).toBe(call.invite.from.tag);
    const rows = await cdrRows(l, 1);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ call_id: call.callId, ended_by: 'keepalive', code: 408 });
    expect(rows[0]!.reason).toMatch(/callee did not answer 2 OPTIONS/);
    expect(rows[0]!.answer).not.toBeNull();
    expect(await activeCalls(l)).toEqual([0, 0]);
    expect((await dialogs(l)).total).toBe(0);
  }, 20_000);

  it('an end that answers 481 (it no longer knows the dialog) ends the call at once', async () => {
    const l = await withConfig('dialog:\n  enabled: true\n  keepaliveS: 1\n  keepaliveFailures: 5\ncdr:\n  flushMs: 100\n');
    const call = await answeredCall(l);
    answerOptions(call.pbx, l.port, call.callId);
    answerOptions(l.caller, l.port, call.callId, 481);
    await call.pbx.next(isBye(call.callId), 4000);
    const rows = await cdrRows(l, 1);
    expect(rows[0]).toMatchObject({ call_id: call.callId, ended_by: 'keepalive', code: 481 });
    expect(await activeCalls(l)).toEqual([0, 0]);
  }, 15_000);

  it('keepaliveS 0 (the default) sends nothing', async () => {
    const l = await withConfig('dialog:\n  enabled: true\n');
    const call = await answeredCall(l);
    expect(await call.pbx.nothing(isOptions(call.callId), 1500)).toBe(true);
    expect((await dialogs(l)).total).toBe(1);
  });
});

describe('sipctl dialog end on a call not answered yet', () => {
  for (const mode of ['stateless', 'transaction'] as const) {
    it(`${mode}: CANCEL towards the PBX (§9.1), the caller gets the PBX's 487, the row says admin`, async () => {
      const l = await withConfig(`mode: ${mode}\ndialog:\n  enabled: true\ncdr:\n  flushMs: 100\n`);
      const { text, callId } = l.request();
      l.caller.send(text, l.port);
      const got = await l.atPbx(byCallId(callId));
      const pbx = got.pbx;
      pbx.send(responseTo(got.msg, 180, 'Ringing'), l.port);
      await l.caller.next((r) => byCallId(callId)(r) && r.msg.status === 180);
      const live = await dialogs(l);
      expect(live.dialogs.map((d) => d.state)).toEqual(['early']);

      const st = await ctl(l, ['status']);
      expect(st.code, st.stderr).toBe(0);
      expect(st.stdout).toMatch(/dialogs: +0 confirmed, 1 early, 0 trying/);

      const end = await ctl(l, ['dialog', 'end', String(live.dialogs[0]!.id)]);
      expect(end.code, end.stderr).toBe(0);
      expect(end.stdout).toMatch(/CANCEL sent towards the callee/);
      const cancel = await pbx.next((r) => byCallId(callId)(r) && r.msg.method === 'CANCEL');
      // §9.1: Request-URI, Call-ID, From, To (no tag) and the CSeq number of the INVITE; its
      // top Via as sent (so the PBX matches the INVITE); one Via.
      expect(cancel.msg.requestUriText).toBe(got.msg.requestUriText);
      expect(cancel.msg.header('from')).toBe(got.msg.header('from'));
      expect(cancel.msg.header('to')).toBe(got.msg.header('to'));
      expect(cancel.msg.to.tag).toBeUndefined();
      expect(cancel.msg.header('cseq')).toBe('1 CANCEL');
      expect(cancel.msg.headerFields('via')).toEqual([got.msg.headerFields('via')[0]]);
      pbx.send(responseTo(cancel.msg, 200, 'OK'), l.port);
      pbx.send(responseTo(got.msg, 487, 'Request Terminated'), l.port);
      const final = await l.caller.next((r) => byCallId(callId)(r) && r.msg.status >= 200);
      expect(final.msg.status).toBe(487);
      const rows = await cdrRows(l, 1);
      expect(rows[0]).toMatchObject({ call_id: callId, ended_by: 'admin', code: 487 });
      expect(await activeCalls(l)).toEqual([0, 0]);
      // The 200 for our own CANCEL was absorbed, not relayed to the caller.
      expect(l.caller.drain().filter((r) => !r.msg.isRequest && r.msg.cseq.method === 'CANCEL')).toEqual([]);
    }, 15_000);
  }

  it('stateless: before any provisional response the CANCEL must wait (§9.1): refused with why, nothing sent', async () => {
    const l = await withConfig('dialog:\n  enabled: true\n');
    const { text, callId } = l.request();
    l.caller.send(text, l.port);
    const got = await l.atPbx(byCallId(callId));
    const live = await dialogs(l);
    expect(live.dialogs.map((d) => d.state)).toEqual(['trying']);
    const end = await ctl(l, ['dialog', 'end', String(live.dialogs[0]!.id)]);
    expect(end.code).toBe(1);
    expect(end.stderr).toMatch(/no provisional response yet.*§9\.1/);
    expect(await got.pbx.nothing((r) => byCallId(callId)(r) && r.msg.method === 'CANCEL', 300)).toBe(true);
  });
});

describe('sipctl status with dialogs', () => {
  it('counts live calls by state; says off without dialog tracking', async () => {
    const l = await withConfig('dialog:\n  enabled: true\n');
    await answeredCall(l);
    const ringing = l.request();
    l.caller.send(ringing.text, l.port);
    const got = await l.atPbx(byCallId(ringing.callId));
    got.pbx.send(responseTo(got.msg, 180, 'Ringing'), l.port);
    await l.caller.next((r) => byCallId(ringing.callId)(r) && r.msg.status === 180);
    const j = await ctl(l, ['status', '--json']);
    expect(j.code, j.stderr).toBe(0);
    expect((JSON.parse(j.stdout) as { dialogs: unknown }).dialogs).toMatchObject({ active: 2, confirmed: 1, early: 1, trying: 0, created: 2 });
    const t = await ctl(l, ['status']);
    expect(t.stdout).toMatch(/^dialogs: +1 confirmed, 1 early, 0 trying \(2 live calls\); 2 created since start/m);
    await l.close();
    lab = undefined;

    const off = await withConfig('log:\n  level: warn\n');
    const t2 = await ctl(off, ['status']);
    expect(t2.stdout).toMatch(/^dialogs: +off/m);
    const j2 = await ctl(off, ['status', '--json']);
    expect((JSON.parse(j2.stdout) as { dialogs: unknown }).dialogs).toBeNull();
  }, 15_000);
});
