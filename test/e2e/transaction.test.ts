/**
 * Transaction mode on the wire (issue 9): a real `sipctl serve` with `mode: transaction`, two
 * PBX sockets in dispatcher set 1 (round-robin, failover on 408 and 5xx), a caller socket.
 * Every behaviour of RFC 3261 §16.7–§16.10 and §17 the proxy must show, checked in the bytes
 * that come out: 100 Trying, retransmissions absorbed, failover on 503 and on silence,
 * 503 → 500, CANCEL, the hop-by-hop ACK, per-transaction state, non-INVITE transactions.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { byCallId, startLab, type Lab } from '../helpers/lab.js';
import { responseTo } from '../helpers/sip-peer.js';

let lab: Lab;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sipctl-tx-'));
  writeFileSync(
    join(dir, 'tx.yaml'),
    ['mode: transaction', 'transaction:', '  frTimerMs: 1500', '  frInvTimerMs: 4000', 'dispatcher:', '  failover: { on: [408, 500-599], attempts: 2 }', ''].join('\n'),
  );
  lab = await startLab({ args: ['--config', join(dir, 'tx.yaml')] });
});
afterAll(async () => {
  await lab?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('transaction mode (mode: transaction)', () => {
  it('answers 100 Trying at once and relays 180 and 200 upstream without our Via', async () => {
    const { text, callId } = lab.request();
    lab.caller.send(text, lab.port);
    expect((await lab.caller.next((r) => byCallId(callId)(r) && r.msg.status === 100)).msg.status).toBe(100);
    const got = await lab.atPbx(byCallId(callId));
    got.pbx.send(responseTo(got.msg, 180, 'Ringing'), lab.port);
    got.pbx.send(responseTo(got.msg, 200, 'OK'), lab.port);
    const r180 = await lab.caller.next((r) => byCallId(callId)(r) && r.msg.status === 180);
    expect(r180.msg.vias).toHaveLength(1);
    expect((await lab.caller.next((r) => byCallId(callId)(r) && r.msg.status === 200)).msg.vias).toHaveLength(1);
  });

  it('absorbs a retransmitted INVITE: the PBX sees one, the caller gets the last response again', async () => {
    const { text, callId } = lab.request();
    lab.caller.send(text, lab.port);
    const got = await lab.atPbx(byCallId(callId));
    got.pbx.send(responseTo(got.msg, 180, 'Ringing'), lab.port);
    await lab.caller.next((r) => byCallId(callId)(r) && r.msg.status === 180);
    lab.caller.send(text, lab.port);
    expect((await lab.caller.next((r) => byCallId(callId)(r) && r.msg.status === 180)).msg.status).toBe(180);
    expect(await got.pbx.nothing(byCallId(callId), 300)).toBe(true);
    got.pbx.send(responseTo(got.msg, 200, 'OK'), lab.port);
    await lab.caller.next((r) => byCallId(callId)(r) && r.msg.status === 200);
  });

  it('fails over on 503: the other PBX gets the INVITE, the caller never sees the 503', async () => {
    const { text, callId } = lab.request();
    lab.caller.send(text, lab.port);
    const first = await lab.atPbx(byCallId(callId));
    const other = first.pbx === lab.pbx1 ? lab.pbx2 : lab.pbx1;
    first.pbx.send(responseTo(first.msg, 503, 'Service Unavailable'), lab.port);
    // The proxy acknowledges the 503 hop by hop (§17.1.1.3) ...
    const ack = await first.pbx.next((r) => byCallId(callId)(r) && r.msg.method === 'ACK');
    expect(ack.msg.topVia!.branch).toBe(first.msg.topVia!.branch);
    // ... and the other PBX gets the INVITE, on a branch of its own.
    const second = await other.next(byCallId(callId));
    expect(second.msg.method).toBe('INVITE');
    expect(second.msg.topVia!.branch).toBe(`${first.msg.topVia!.branch}-1`);
    other.send(responseTo(second.msg, 200, 'OK'), lab.port);
    const final = await lab.caller.next((r) => byCallId(callId)(r) && r.msg.status >= 200);
    expect(final.msg.status).toBe(200);
  });

  it('fails over when a PBX says nothing (fr_timer), and answers 500 for a 503 when every destination failed', async () => {
    const { text, callId } = lab.request();
    lab.caller.send(text, lab.port);
    const first = await lab.atPbx(byCallId(callId));
    const other = first.pbx === lab.pbx1 ? lab.pbx2 : lab.pbx1;
    // first stays silent: after fr_timer (1.5 s) the request goes to the other one.
    const second = await other.next(byCallId(callId), 5000);
    other.send(responseTo(second.msg, 503, 'Service Unavailable'), lab.port);
    // attempts: 2 — no third try; the best of [408, 503] goes upstream: 408 ranks with 4xx, above 5xx.
    const final = await lab.caller.next((r) => byCallId(callId)(r) && r.msg.status >= 200, 5000);
    expect(final.msg.status).toBe(408);
    const { text: t2, callId: c2 } = lab.request();
    lab.caller.send(t2, lab.port);
    const a = await lab.atPbx(byCallId(c2));
    a.pbx.send(responseTo(a.msg, 503, 'Service Unavailable'), lab.port);
    const otherPbx = a.pbx === lab.pbx1 ? lab.pbx2 : lab.pbx1;
    const b = await otherPbx.next(byCallId(c2));
    otherPbx.send(responseTo(b.msg, 503, 'Service Unavailable'), lab.port);
    // §16.7 step 6: a 503 from downstream goes upstream as 500.
    expect((await lab.caller.next((r) => byCallId(c2)(r) && r.msg.status >= 200)).msg.status).toBe(500);
  });

  it('does not fail over on 486: the caller gets it, the PBX gets the ACK from the proxy, the caller’s ACK goes no further', async () => {
    const { text, callId } = lab.request();
    lab.caller.send(text, lab.port);
    const got = await lab.atPbx(byCallId(callId));
    got.pbx.send(responseTo(got.msg, 486, 'Busy Here'), lab.port);
    const busy = await lab.caller.next((r) => byCallId(callId)(r) && r.msg.status === 486);
    expect((await got.pbx.next((r) => byCallId(callId)(r) && r.msg.method === 'ACK')).msg.method).toBe('ACK');
    // The caller's ACK for the 486 (same branch as its INVITE, §17.1.1.3) is absorbed.
    const ack = text
      .replace(/^INVITE /, 'ACK ')
      .replace('CSeq: 1 INVITE', 'CSeq: 1 ACK')
      .replace(/^(To: [^\r]*)$/m, `$1;tag=${busy.msg.to.tag}`);
    lab.caller.send(ack, lab.port);
    expect(await got.pbx.nothing((r) => byCallId(callId)(r) && r.msg.method === 'ACK', 300)).toBe(true);
    expect(await lab.pbx1.nothing(byCallId(callId), 50)).toBe(true);
    expect(await lab.pbx2.nothing(byCallId(callId), 50)).toBe(true);
  });

  it('CANCEL while ringing: 200 for the CANCEL, the PBX sees the CANCEL, its 487 reaches the caller', async () => {
    const { text, callId } = lab.request();
    lab.caller.send(text, lab.port);
    const got = await lab.atPbx(byCallId(callId));
    got.pbx.send(responseTo(got.msg, 180, 'Ringing'), lab.port);
    await lab.caller.next((r) => byCallId(callId)(r) && r.msg.status === 180);
    const cancel = text.replace(/^INVITE /, 'CANCEL ').replace('CSeq: 1 INVITE', 'CSeq: 1 CANCEL').replace(/\r\nContact: [^\r]*/, '');
    lab.caller.send(cancel, lab.port);
    const ok = await lab.caller.next((r) => byCallId(callId)(r) && r.msg.status === 200);
    expect(ok.msg.cseq.method).toBe('CANCEL');
    const c = await got.pbx.next((r) => byCallId(callId)(r) && r.msg.method === 'CANCEL');
    expect(c.msg.topVia!.branch).toBe(got.msg.topVia!.branch);
    got.pbx.send(responseTo(c.msg, 200, 'OK'), lab.port);
    got.pbx.send(responseTo(got.msg, 487, 'Request Terminated'), lab.port);
    expect((await lab.caller.next((r) => byCallId(callId)(r) && r.msg.status === 487)).msg.cseq.method).toBe('INVITE');
    expect((await got.pbx.next((r) => byCallId(callId)(r) && r.msg.method === 'ACK')).msg.method).toBe('ACK');
  });

  it('relays non-INVITE requests statefully, with failover too (MESSAGE: no 100, 503 → next PBX)', async () => {
    const { text, callId } = lab.request({ method: 'MESSAGE' });
    lab.caller.send(text, lab.port);
    const first = await lab.atPbx(byCallId(callId));
    first.pbx.send(responseTo(first.msg, 503, 'Service Unavailable'), lab.port);
    const other = first.pbx === lab.pbx1 ? lab.pbx2 : lab.pbx1;
    const second = await other.next(byCallId(callId));
    other.send(responseTo(second.msg, 202, 'Accepted'), lab.port);
    const r = await lab.caller.next(byCallId(callId));
    expect(r.msg.status).toBe(202);
    expect(await lab.caller.nothing((x) => byCallId(callId)(x) && x.msg.status === 100, 100)).toBe(true);
  });
});
