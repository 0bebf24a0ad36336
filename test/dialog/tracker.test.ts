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

/** A response from `source` (the PBX unless said) to one of the tracker's own requests in `sent`. */
function answerTo(request: string, status: number, from: string = PBX.address): { msg: ReturnType<typeof parseMessage>; inbound: Inbound } {
  const req = parseMessage(Buffer.from(request, 'latin1'));
  const text =
    `SIP/2.0 ${status} X\r\nVia: ${req.headerFields('via')[0]}\r\nFrom: ${req.header('from')}\r\nTo: ${req.header('to')}\r\n` +
    `Call-ID: ${req.header('call-id')}\r\nCSeq: ${req.header('cseq')}\r\nContent-Length: 0\r\n\r\n`;
  return { msg: parseMessage(Buffer.from(text, 'latin1')), inbound: { sourceAddress: from, sourcePort: 5060, protocol: 'udp' } as Inbound };
}

function setUp(config: Partial<{ timeoutS: number; max: number; timerCS: number; keepaliveS: number; keepaliveFailures: number }> = {}) {
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
    isOwnUri: (u) => u.host === '192.0.2.1',
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
    expect(tracker.endById(tracker.list()[0]!.id)).toEqual({ ended: true, how: 'bye' });
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

  it('counts live calls by state on every transition', () => {
    const { tracker, pick } = setUp();
    tracker.invite(invite('s1'), CALLER, PBX, pick);
    tracker.invite(invite('s2'), CALLER, PBX, pick);
    tracker.invite(invite('s3'), CALLER, PBX, pick);
    expect(tracker.counts).toEqual({ trying: 3, early: 0, confirmed: 0 });
    tracker.response(response('s1', 180, 'ttag'));
    tracker.response(response('s2', 180, 'ttag'));
    tracker.response(response('s2', 200, 'ttag'));
    tracker.response(response('s3', 200, 'ttag')); // trying straight to confirmed
    expect(tracker.counts).toEqual({ trying: 0, early: 1, confirmed: 2 });
    tracker.response(response('s1', 486, 'ttag'));
    tracker.request(fromCallee('s2', 'BYE'));
    expect(tracker.counts).toEqual({ trying: 0, early: 0, confirmed: 1 });
    tracker.shutdown();
    expect(tracker.counts).toEqual({ trying: 0, early: 0, confirmed: 0 });
  });

  it('shutdown: a row for every call still up (ended_by shutdown, end = now; 200 answered, 0 unanswered), counts back to zero', () => {
    const { clock, tracker, pick, ended, counter, sent } = setUp();
    tracker.invite(invite('u1'), CALLER, PBX, pick);
    tracker.response(response('u1', 200, 'ttag'));
    tracker.invite(invite('u2'), CALLER, PBX, pick);
    clock.advance(3000);
    tracker.shutdown();
    expect(ended.map((r) => [r.callId, r.endedBy, r.code, r.answerMs === null ? null : r.endMs - r.answerMs])).toEqual([
      ['u1', 'shutdown', 200, 3000],
      ['u2', 'shutdown', 0, null],
    ]);
    expect(ended[1]!.endMs).toBe(clock.now());
    expect(counter.active).toBe(0);
    expect(tracker.size).toBe(0);
    expect(sent).toHaveLength(0); // no BYE at a shutdown
  });

  it('keepalives: OPTIONS to both ends each round; answers keep the call; keepaliveFailures silent rounds end it with BYE to both', () => {
    const { clock, tracker, pick, ended, counter, sent } = setUp({ keepaliveS: 10, keepaliveFailures: 2 });
    tracker.invite(invite('k1', { cseq: 5 }), CALLER, PBX, pick);
    tracker.invite(invite('k2'), CALLER, PBX, pick); // never answered: gets no keepalive
    tracker.response(response('k1', 200, 'ttag', 'INVITE', 5));
    clock.advance(10_000);
    expect(sent).toHaveLength(2);
    expect(sent[0]).toMatch(/^OPTIONS sip:bob@192\.0\.2\.20 SIP\/2\.0\r\nVia: SIP\/2\.0\/UDP 192\.0\.2\.1:5060;branch=z9hG4bK-sipctl-ka-/);
    expect(sent[0]).toMatch(/\r\nFrom: <sip:alice@192\.0\.2\.10>;tag=ftag\r\nTo: <sip:bob@192\.0\.2\.20>;tag=ttag\r\nCall-ID: k1\r\nCSeq: 5 OPTIONS\r\n/);
    expect(sent[1]).toMatch(/^OPTIONS sip:alice@192\.0\.2\.10 SIP\/2\.0\r\n/);
    expect(sent[1]).toMatch(/\r\nFrom: <sip:bob@192\.0\.2\.20>;tag=ttag\r\nTo: <sip:alice@192\.0\.2\.10>;tag=ftag\r\n.*CSeq: 1 OPTIONS\r\n/s);
    // Both answer: absorbed, and the call stays.
    for (const [i, from] of [[0, PBX.address], [1, CALLER.sourceAddress]] as const) {
      const a = answerTo(sent[i]!, 200, from);
      expect(tracker.ownResponse(a.msg, a.inbound)).toBe(true);
    }
    clock.advance(10_000);
    expect(sent).toHaveLength(4);
    // Now only the caller answers; the PBX is silent, and someone else answers in its place.
    for (let round = 0; round < 1; round++) {
      const caller = answerTo(sent[3]!, 200, CALLER.sourceAddress);
      tracker.ownResponse(caller.msg, caller.inbound);
      const forged = answerTo(sent[2]!, 200, '198.51.100.66'); // not where the OPTIONS went
      expect(tracker.ownResponse(forged.msg, forged.inbound)).toBe(true); // absorbed, not believed
    }
    clock.advance(10_000); // one miss: another OPTIONS
    expect(sent).toHaveLength(6);
    expect(ended).toHaveLength(0);
    const caller = answerTo(sent[5]!, 200, CALLER.sourceAddress);
    tracker.ownResponse(caller.msg, caller.inbound);
    clock.advance(10_000); // two in a row: the call ends, BYE to both
    expect(sent.slice(6).map((t) => t.slice(0, 4))).toEqual(['BYE ', 'BYE ']);
    expect(ended.map((r) => [r.callId, r.endedBy, r.code])).toEqual([['k1', 'keepalive', 408]]);
    expect(ended[0]!.reason).toMatch(/callee did not answer 2 OPTIONS in a row/);
    expect(counter.active).toBe(1); // k2 only
  });

  it('keepalives: a 481 or 408 answer ends the call at once; a branch without our secret, or a 1xx, counts for nothing', () => {
    const { clock, tracker, pick, ended, sent } = setUp({ keepaliveS: 5, keepaliveFailures: 10 });
    tracker.invite(invite('r1'), CALLER, PBX, pick);
    tracker.response(response('r1', 200, 'ttag'));
    clock.advance(5000);
    const guessed = answerTo(sent[0]!.replace(/branch=z9hG4bK-sipctl-ka-[0-9a-f]+\./, 'branch=z9hG4bK-sipctl-ka-000000000000.'), 481);
    expect(tracker.ownResponse(guessed.msg, guessed.inbound)).toBe(true);
    expect(tracker.ownResponse(answerTo(sent[0]!, 100).msg, answerTo(sent[0]!, 100).inbound)).toBe(true);
    expect(ended).toHaveLength(0);
    const gone = answerTo(sent[1]!, 481, CALLER.sourceAddress);
    tracker.ownResponse(gone.msg, gone.inbound);
    expect(ended.map((r) => [r.endedBy, r.code, r.reason])).toEqual([['keepalive', 481, 'keepalive: the caller answered 481']]);
    expect(sent.slice(2).map((t) => t.slice(0, 4))).toEqual(['BYE ', 'BYE ']);
  });

  it('keepalive route sets: the Record-Route entries beyond ours, towards each end', () => {
    const { clock, tracker, pick, sent } = setUp({ keepaliveS: 1 });
    tracker.invite(invite('rr'), CALLER, PBX, pick);
    const ok = response('rr', 200, 'ttag').buffer.toString('latin1').replace(
      'Content-Length',
      'Record-Route: <sip:p2.example;lr>, <sip:p1.example;lr>\r\nRecord-Route: <sip:192.0.2.1:5060;lr>, <sip:q1.example;lr>\r\nContent-Length',
    );
    tracker.response(parseMessage(Buffer.from(ok, 'latin1')));
    clock.advance(1000);
    expect(sent[0]).toMatch(/\r\nRoute: <sip:p1\.example;lr>, <sip:p2\.example;lr>\r\n/);
    expect(sent[1]).toMatch(/\r\nRoute: <sip:q1\.example;lr>\r\n/);
  });

  it('dialog end on an early call (stateless): CANCEL built from the INVITE as sent (§9.1), only after a provisional', () => {
    const { tracker, pick, ended, sent } = setUp();
    const asSent =
      'INVITE sip:bob@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKours\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKc\r\n' +
      'Record-Route: <sip:192.0.2.1:5060;lr>\r\nFrom: <sip:alice@192.0.2.10>;tag=ftag\r\nTo: <sip:bob@192.0.2.20>\r\nCall-ID: e1\r\nCSeq: 4 INVITE\r\n' +
      'Max-Forwards: 69\r\nContent-Length: 0\r\n\r\n';
    tracker.invite(invite('e1', { cseq: 4 }), CALLER, PBX, pick, Buffer.from(asSent, 'latin1'));
    const id = tracker.list()[0]!.id;
    expect(tracker.endById(id)).toMatchObject({ ended: false, why: expect.stringMatching(/§9\.1/) });
    tracker.response(response('e1', 100, undefined, 'INVITE', 4));
    expect(tracker.endById(id)).toEqual({ ended: true, how: 'cancel' });
    expect(sent).toHaveLength(1);
    expect(sent[0]).toBe(
      'CANCEL sip:bob@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKours\r\nMax-Forwards: 70\r\n' +
        'From: <sip:alice@192.0.2.10>;tag=ftag\r\nTo: <sip:bob@192.0.2.20>\r\nCall-ID: e1\r\nCSeq: 4 CANCEL\r\nContent-Length: 0\r\n\r\n',
    );
    expect(tracker.endById(id)).toMatchObject({ ended: false, why: expect.stringMatching(/being cancelled/) });
    tracker.response(response('e1', 487, 'ttag', 'INVITE', 4));
    expect(ended.map((r) => [r.endedBy, r.code])).toEqual([['admin', 487]]);
  });
});
