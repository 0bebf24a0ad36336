/**
 * The dialog tracker (RFC 3261 §12) fed parsed messages, with fake time: forking, re-INVITE
 * and UPDATE, BYE from either side, unknown dialogs, every way a call ends, the call-load
 * count, dialog.max, and the memory a dialog costs.
 */
import { describe, expect, it } from 'vitest';
import { DialogTracker, type CallRecord } from '../../src/dialog/index.js';
import { parseMessage } from '../../src/sip/parse.js';
import type { Inbound, Target } from '../../src/transport/types.js';
import { FakeClock } from '../dispatcher/helpers.js';

const CALLER: Inbound = { sourceAddress: '192.0.2.10', sourcePort: 5060, protocol: 'udp' } as Inbound;
const PBX: Target = { protocol: 'udp', address: '192.0.2.20', port: 5060 };

function invite(callId: string, opts: { cseq?: number; toTag?: string; method?: string } = {}) {
  const m = opts.method ?? 'INVITE';
  return parseMessage(
    Buffer.from(
      `${m} sip:bob@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK${callId}${opts.cseq ?? 1}\r\n` +
        `From: <sip:alice@192.0.2.10>;tag=ftag\r\nTo: <sip:bob@192.0.2.20>${opts.toTag ? `;tag=${opts.toTag}` : ''}\r\n` +
        `Call-ID: ${callId}\r\nCSeq: ${opts.cseq ?? 1} ${m}\r\nContact: <sip:alice@192.0.2.10>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n`,
    ),
  );
}

function fromCallee(callId: string, method: string, cseq = 1) {
  return parseMessage(
    Buffer.from(
      `${method} sip:alice@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.20;branch=z9hG4bKb${cseq}\r\n` +
        `From: <sip:bob@192.0.2.20>;tag=ttag\r\nTo: <sip:alice@192.0.2.10>;tag=ftag\r\n` +
        `Call-ID: ${callId}\r\nCSeq: ${cseq} ${method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n`,
    ),
  );
}

function response(callId: string, status: number, toTag: string | undefined, method = 'INVITE', cseq = 1) {
  return parseMessage(
    Buffer.from(
      `SIP/2.0 ${status} X\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKx\r\n` +
        `From: <sip:alice@192.0.2.10>;tag=ftag\r\nTo: <sip:bob@192.0.2.20>${toTag ? `;tag=${toTag}` : ''}\r\n` +
        `Call-ID: ${callId}\r\nCSeq: ${cseq} ${method}\r\nContact: <sip:bob@192.0.2.20>\r\nContent-Length: 0\r\n\r\n`,
    ),
  );
}

function setUp(config: Partial<{ timeoutS: number; max: number; timerCS: number }> = {}) {
  const clock = new FakeClock();
  const ended: CallRecord[] = [];
  const counter = { active: 0 };
  const sent: string[] = [];
  const tracker = new DialogTracker({
    config: { enabled: true, timeoutS: 43_200, max: 100, timerCS: 180, ...config },
    clock,
    wallNow: () => clock.now(),
    onEnd: (r) => ended.push(r),
    counterOf: () => counter,
    send: (_t, bytes) => sent.push(bytes.toString()),
    via: () => 'SIP/2.0/UDP 192.0.2.1:5060',
  });
  const pick = { uri: 'sip:192.0.2.20', targets: [PBX], setid: 1, handle: {} };
  return { clock, ended, counter, tracker, pick, sent };
}

describe('dialog tracker', () => {
  it('early on a 1xx with a To tag, confirmed on 2xx, ended by the caller BYE; lengths from the clock', () => {
    const { clock, ended, counter, tracker, pick } = setUp();
    tracker.invite(invite('c1'), CALLER, PBX, pick);
    expect(counter.active).toBe(1);
    expect(tracker.list()[0]!.state).toBe('trying');
    tracker.response(response('c1', 100, undefined));
    expect(tracker.list()[0]!.state).toBe('trying');
    tracker.response(response('c1', 180, 'ttag'));
    expect(tracker.list()[0]!.state).toBe('early');
    clock.advance(2000);
    tracker.response(response('c1', 200, 'ttag'));
    expect(tracker.list()[0]!.state).toBe('confirmed');
    clock.advance(5000);
    tracker.request(invite('c1', { method: 'BYE', cseq: 2, toTag: 'ttag' }));
    expect(tracker.size).toBe(0);
    expect(counter.active).toBe(0);
    expect(ended).toHaveLength(1);
    expect(ended[0]).toMatchObject({ callId: 'c1', endedBy: 'caller', code: 200, source: 'udp:192.0.2.10:5060', setid: 1 });
    expect(ended[0]!.endMs - ended[0]!.answerMs!).toBe(5000);
    expect(ended[0]!.endMs - ended[0]!.startMs).toBe(7000);
  });

  it('forks (several early To tags) stay one call; the 2xx of one confirms it; a BYE from the callee ends it', () => {
    const { ended, tracker, pick } = setUp();
    tracker.invite(invite('c2'), CALLER, PBX, pick);
    tracker.response(response('c2', 180, 'fork1'));
    tracker.response(response('c2', 183, 'fork2'));
    expect(tracker.size).toBe(1);
    tracker.response(response('c2', 200, 'ttag'));
    tracker.response(response('c2', 200, 'fork2')); // another fork's 2xx: the call stays as it is
    expect(tracker.size).toBe(1);
    tracker.request(fromCallee('c2', 'BYE'));
    expect(ended[0]).toMatchObject({ endedBy: 'callee' });
  });

  it('a re-INVITE and an UPDATE keep the dialog and refresh its timeout', () => {
    const { clock, ended, tracker, pick } = setUp({ timeoutS: 10 });
    tracker.invite(invite('c3'), CALLER, PBX, pick);
    tracker.response(response('c3', 200, 'ttag'));
    clock.advance(8000);
    tracker.request(invite('c3', { cseq: 2, toTag: 'ttag' }));
    tracker.response(response('c3', 200, 'ttag', 'INVITE', 2));
    clock.advance(8000);
    tracker.request(fromCallee('c3', 'UPDATE'));
    clock.advance(8000);
    expect(tracker.size).toBe(1);
    expect(ended).toHaveLength(0);
    clock.advance(2001);
    expect(ended[0]).toMatchObject({ endedBy: 'timeout' });
  });

  it('on timeout of a confirmed dialog sends BYE to both ends (callee: caller CSeq + 1; caller: callee CSeq + 1)', () => {
    const { clock, tracker, pick, sent } = setUp({ timeoutS: 1 });
    tracker.invite(invite('c4', { cseq: 7 }), CALLER, PBX, pick);
    tracker.response(response('c4', 200, 'ttag', 'INVITE', 7));
    clock.advance(1000);
    expect(sent).toHaveLength(2);
    expect(sent[0]).toMatch(/^BYE sip:bob@192\.0\.2\.20 SIP\/2\.0\r\n/);
    expect(sent[0]).toMatch(/\r\nCSeq: 8 BYE\r\n/);
    expect(sent[0]).toMatch(/\r\nFrom: <sip:alice@192\.0\.2\.10>;tag=ftag\r\nTo: <sip:bob@192\.0\.2\.20>;tag=ttag\r\n/);
    expect(sent[1]).toMatch(/^BYE sip:alice@192\.0\.2\.10 SIP\/2\.0\r\n/);
    expect(sent[1]).toMatch(/\r\nFrom: <sip:bob@192\.0\.2\.20>;tag=ttag\r\nTo: <sip:alice@192\.0\.2\.10>;tag=ftag\r\n/);
    expect(sent[1]).toMatch(/\r\nCSeq: 1 BYE\r\n/);
  });

  it('a BYE for an unknown dialog, and responses to nothing, change nothing', () => {
    const { ended, tracker } = setUp();
    tracker.request(invite('nope', { method: 'BYE', toTag: 'x' }));
    tracker.response(response('nope', 200, 'x'));
    expect(ended).toHaveLength(0);
    expect(tracker.size).toBe(0);
  });

  it('every ending brings the call-load count back to zero: failed, cancelled, Timer C, failover, operator', () => {
    const { clock, ended, counter, tracker, pick } = setUp({ timerCS: 180 });
    const other = { active: 0 };
    // failed
    tracker.invite(invite('f'), CALLER, PBX, pick);
    tracker.response(response('f', 486, 'ttag'));
    // cancelled: the 487 after a CANCEL
    tracker.invite(invite('k'), CALLER, PBX, pick);
    tracker.response(response('k', 180, 'ttag'));
    tracker.request(invite('k', { method: 'CANCEL' }));
    tracker.response(response('k', 487, 'ttag'));
    // cancelled, and the 487 never comes
    tracker.invite(invite('k2'), CALLER, PBX, pick);
    tracker.request(invite('k2', { method: 'CANCEL' }));
    // failed over (transaction mode): moves to the other destination, ends there
    tracker.invite(invite('o'), CALLER, PBX, pick);
    expect(counter.active).toBe(2); // k2 and o; f and k have ended
    const opts = (tracker as unknown as { opts: { counterOf: (p: unknown) => unknown } }).opts;
    opts.counterOf = (p) => ((p as { uri: string }).uri === 'sip:other' ? other : counter);
    tracker.retarget(invite('o'), PBX, { uri: 'sip:other', targets: [PBX], setid: 1, handle: {} });
    expect(counter.active).toBe(1);
    expect(other.active).toBe(1);
    tracker.final(invite('o'), 408, 'Request Timeout');
    expect(other.active).toBe(0);
    // Timer C and the CANCEL grace
    tracker.invite(invite('t'), CALLER, PBX, pick);
    clock.advance(180_000);
    // operator
    tracker.invite(invite('a'), CALLER, PBX, pick);
    tracker.response(response('a', 200, 'ttag'));
    expect(tracker.endById(tracker.list()[0]!.id)).toEqual({ ended: true });
    expect(counter.active).toBe(0);
    expect(tracker.size).toBe(0);
    expect(ended.map((r) => [r.callId, r.endedBy, r.code])).toEqual([
      ['f', 'failed', 486],
      ['k', 'cancel', 487],
      ['o', 'failed', 408],
      ['k2', 'cancel', 487],
      ['t', 'failed', 408],
      ['a', 'admin', 200],
    ]);
  });

  it('dialog.max: full() says so for a new call, not for a retransmission of a tracked one', () => {
    const { tracker, pick } = setUp({ max: 2 });
    tracker.invite(invite('m1'), CALLER, PBX, pick);
    tracker.invite(invite('m2'), CALLER, PBX, pick);
    expect(tracker.full(invite('m3'))).toBe(true);
    expect(tracker.full(invite('m1'))).toBe(false);
    tracker.invite(invite('m3'), CALLER, PBX, pick);
    expect(tracker.size).toBe(2);
    expect(tracker.stats.refusedFull).toBe(1);
  });
});
