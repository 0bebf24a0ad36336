/**
 * Matching (RFC 3261 §17.1.3, §17.2.3, §9.2) and the table's cap.
 */
import { describe, expect, it } from 'vitest';
import { createClientTransaction } from '../../src/transaction/client.js';
import { isRfc3261Branch, requestKey } from '../../src/transaction/key.js';
import { createServerTransaction, type ServerTransaction } from '../../src/transaction/server.js';
import { MAX_BUCKET } from '../../src/transaction/table.js';
import type { SipMessage } from '../../src/sip/message.js';
import { Harness, outgoing, request, responseTo, sip, target, UPSTREAM_UDP, type RequestOpts } from './helpers.js';

function serverFor(h: Harness, req: SipMessage): ServerTransaction {
  const tx = createServerTransaction(h.layer, { request: req, key: requestKey(req), source: { address: '192.0.2.1', port: 5062 }, upstream: UPSTREAM_UDP });
  if (tx === 'full') throw new Error('full');
  return tx;
}

const find = (h: Harness, o: RequestOpts) => h.layer.table.findServer(requestKey(request(o)));

describe('server transaction matching, RFC 3261 branches (§17.2.3)', () => {
  it('a retransmission matches by branch, sent-by and method; anything else does not', () => {
    const h = new Harness();
    const inv = serverFor(h, request());
    expect(find(h, {})).toBe(inv);
    expect(find(h, { branch: 'z9hG4bKother' })).toBeUndefined();
    expect(find(h, { sentBy: '192.0.2.99:5062' })).toBeUndefined();
    expect(find(h, { sentBy: '192.0.2.1:5099' })).toBeUndefined();
    expect(find(h, { method: 'OPTIONS' })).toBeUndefined();
    // Only the branch, sent-by and method count (§17.2.3): a changed Call-ID still matches.
    expect(find(h, { callId: 'changed@x' })).toBe(inv);
  });

  it('a sent-by without a port is the transport default (5060)', () => {
    const h = new Harness();
    const inv = serverFor(h, request({ sentBy: 'pc33.example.com' }));
    expect(find(h, { sentBy: 'pc33.example.com:5060' })).toBe(inv);
    expect(find(h, { sentBy: 'PC33.Example.COM' })).toBe(inv);
  });

  it('an ACK matches its INVITE\'s transaction (same branch); the ACK of a 2xx (new branch) matches none', () => {
    const h = new Harness();
    const inv = serverFor(h, request());
    expect(find(h, { method: 'ACK', toTag: 'x' })).toBe(inv);
    expect(find(h, { method: 'ACK', toTag: 'x', branch: 'z9hG4bKack2xx' })).toBeUndefined();
  });

  it('a CANCEL matches its own transaction, and finds its INVITE\'s through findInvite (§9.2)', () => {
    const h = new Harness();
    const inv = serverFor(h, request());
    const cancelKey = requestKey(request({ method: 'CANCEL' }));
    expect(h.layer.table.findServer(cancelKey)).toBeUndefined();
    expect(h.layer.table.findInvite(cancelKey)).toBe(inv);
    const cancel = serverFor(h, request({ method: 'CANCEL' }));
    expect(find(h, { method: 'CANCEL' })).toBe(cancel);
    expect(find(h, {})).toBe(inv);
    // A CANCEL from elsewhere with the same branch cancels nothing.
    expect(h.layer.table.findInvite(requestKey(request({ method: 'CANCEL', sentBy: '192.0.2.77:5060' })))).toBeUndefined();
    // Both leave the table when they end.
    cancel.terminate();
    inv.terminate();
    expect(h.layer.table.serverCount).toBe(0);
    expect(find(h, {})).toBeUndefined();
  });

  it('removing one transaction of a shared bucket keeps the others', () => {
    const h = new Harness();
    const a = serverFor(h, request());
    const b = serverFor(h, request({ sentBy: '192.0.2.2:5062' }));
    const c = serverFor(h, request({ sentBy: '192.0.2.3:5062' }));
    b.terminate();
    expect(find(h, {})).toBe(a);
    expect(find(h, { sentBy: '192.0.2.3:5062' })).toBe(c);
    expect(find(h, { sentBy: '192.0.2.2:5062' })).toBeUndefined();
    a.terminate();
    expect(find(h, { sentBy: '192.0.2.3:5062' })).toBe(c);
    expect(h.layer.table.serverCount).toBe(1);
  });
});

describe('server transaction matching, RFC 2543 fallback (§17.2.3)', () => {
  it('is used without the magic cookie, and for a branch that is only the cookie', () => {
    expect(isRfc3261Branch('z9hG4bK')).toBe(false);
    expect(isRfc3261Branch('z9hG4bKx')).toBe(true);
    expect(isRfc3261Branch('abc123')).toBe(false);
    expect(isRfc3261Branch(undefined)).toBe(false);
    expect(requestKey(request({ branch: 'z9hG4bK' })).rfc3261).toBe(false);
    expect(requestKey(request({ branch: '' })).rfc3261).toBe(false);
  });

  for (const branch of ['', '1234old', 'z9hG4bK']) {
    it(`a request matches on Request-URI, To tag, From tag, Call-ID, CSeq and top Via (branch "${branch}")`, () => {
      const h = new Harness();
      const base: RequestOpts = { branch };
      const inv = serverFor(h, request(base));
      expect(find(h, base)).toBe(inv);
      expect(find(h, { ...base, uri: 'sip:carol@example.com' })).toBeUndefined();
      expect(find(h, { ...base, fromTag: 'other' })).toBeUndefined();
      expect(find(h, { ...base, toTag: 'other' })).toBeUndefined();
      expect(find(h, { ...base, callId: 'other@x' })).toBeUndefined();
      expect(find(h, { ...base, cseq: 2 })).toBeUndefined();
      expect(find(h, { ...base, sentBy: '192.0.2.1:5099' })).toBeUndefined();
      expect(find(h, { ...base, method: 'OPTIONS' })).toBeUndefined();
    });
  }

  it('the ACK matches when its To tag is the To tag of the final response the transaction sent', () => {
    const h = new Harness();
    const req = request({ branch: '' });
    const inv = serverFor(h, req);
    inv.respond(486, responseTo(req, 486, { toTag: 'busy' }).buffer, 'busy');
    expect(find(h, { branch: '', method: 'ACK', toTag: 'busy' })).toBe(inv);
    expect(find(h, { branch: '', method: 'ACK', toTag: 'other' })).toBeUndefined();
    expect(inv.receive(request({ branch: '', method: 'ACK', toTag: 'busy' }))).toBe('absorbed');
    expect(inv.state).toBe('confirmed');
  });

  it('a local final carries its To tag for the same purpose', () => {
    const h = new Harness();
    const req = request({ branch: '' });
    const inv = serverFor(h, req);
    inv.respondLocally(404);
    const tag = h.take()[0]!.msg.to.tag!;
    expect(find(h, { branch: '', method: 'ACK', toTag: tag })).toBe(inv);
  });

  it('a CANCEL finds its INVITE (same Request-URI, tags, Call-ID, CSeq number, top Via)', () => {
    const h = new Harness();
    const inv = serverFor(h, request({ branch: '' }));
    expect(h.layer.table.findInvite(requestKey(request({ branch: '', method: 'CANCEL' })))).toBe(inv);
    expect(h.layer.table.findInvite(requestKey(request({ branch: '', method: 'CANCEL', cseq: 9 })))).toBeUndefined();
    const cancel = serverFor(h, request({ branch: '', method: 'CANCEL' }));
    expect(find(h, { branch: '', method: 'CANCEL' })).toBe(cancel);
  });
});

describe('client transaction matching (§17.1.3)', () => {
  it('a response matches by top Via branch and CSeq method; the INVITE and its CANCEL share the branch', () => {
    const h = new Harness();
    const inv = outgoing({ ourBranch: 'z9hG4bKb1' });
    const invTx = createClientTransaction(h.layer, { bytes: inv.bytes, branch: 'z9hG4bKb1', method: 'INVITE', target: target('udp') });
    invTx.start();
    const cancel = outgoing({ ourBranch: 'z9hG4bKb1', method: 'CANCEL' });
    const cancelTx = createClientTransaction(h.layer, { bytes: cancel.bytes, branch: 'z9hG4bKb1', method: 'CANCEL', target: target('udp') });
    cancelTx.start();
    const table = h.layer.table;
    expect(table.matchResponse(responseTo(inv.msg, 180))).toBe(invTx);
    expect(table.matchResponse(responseTo(cancel.msg, 200))).toBe(cancelTx);
    expect(table.matchResponse(responseTo(outgoing({ ourBranch: 'z9hG4bKb2' }).msg, 180))).toBeUndefined();
    expect(table.matchResponse(responseTo(inv.msg, 200, { method: 'OPTIONS' }))).toBeUndefined();
    expect(table.clientCount).toBe(2);
    cancelTx.terminate();
    expect(table.matchResponse(responseTo(inv.msg, 180))).toBe(invTx);
    expect(table.matchResponse(responseTo(cancel.msg, 200))).toBeUndefined();
  });

  it('a response whose Via or CSeq cannot be read matches nothing (and does not throw)', () => {
    const h = new Harness();
    const inv = outgoing({ ourBranch: 'z9hG4bKb1' });
    createClientTransaction(h.layer, { bytes: inv.bytes, branch: 'z9hG4bKb1', method: 'INVITE', target: target('udp') }).start();
    const bad = sip('SIP/2.0 180 Ringing\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKb1\nCSeq: banana\nContent-Length: 0\n\n');
    expect(h.layer.table.matchResponse(bad)).toBeUndefined();
    const noVia = sip('SIP/2.0 180 Ringing\nCSeq: 1 INVITE\nContent-Length: 0\n\n');
    expect(h.layer.table.matchResponse(noVia)).toBeUndefined();
  });
});

describe('the cap on live transactions', () => {
  it('beyond maxTransactions the table is full; a terminated transaction makes room', () => {
    const h = new Harness({ maxTransactions: 3 });
    const txs = [1, 2, 3].map((i) => serverFor(h, request({ branch: `z9hG4bKcap${i}` })));
    expect(h.layer.table.full).toBe(true);
    const req = request({ branch: 'z9hG4bKcap4' });
    expect(createServerTransaction(h.layer, { request: req, key: requestKey(req), source: { address: '192.0.2.1', port: 5062 }, upstream: UPSTREAM_UDP })).toBe('full');
    expect(h.layer.stats.refusedFull).toBe(1);
    // A retransmission of a live one still finds it.
    expect(find(h, { branch: 'z9hG4bKcap2' })).toBe(txs[1]);
    txs[0]!.terminate();
    expect(h.layer.table.full).toBe(false);
    expect(serverFor(h, req).state).toBe('proceeding');
  });

  it(`one key files at most ${MAX_BUCKET} transactions (a forged branch reused from many sent-bys)`, () => {
    const h = new Harness();
    for (let i = 0; i < MAX_BUCKET; i++) serverFor(h, request({ sentBy: `192.0.2.${i + 1}:5060` }));
    const req = request({ sentBy: '192.0.2.200:5060' });
    expect(createServerTransaction(h.layer, { request: req, key: requestKey(req), source: { address: '192.0.2.200', port: 5060 }, upstream: UPSTREAM_UDP })).toBe('full');
    expect(h.layer.table.full).toBe(false);
    expect(serverFor(h, request({ branch: 'z9hG4bKfresh' })).state).toBe('proceeding');
  });
});
