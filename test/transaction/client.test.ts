/**
 * Client transactions (RFC 3261 §17.1, figures 5 and 6; RFC 6026 Accepted): every state and
 * timer with fake time, over UDP (retransmissions) and TCP (none; B/F still apply).
 */
import { describe, expect, it } from 'vitest';
import {
  createClientTransaction,
  type ClientTransaction,
  type ClientTransactionUser,
} from '../../src/transaction/client.js';
import type { SipMessage } from '../../src/sip/message.js';
import type { Protocol } from '../../src/transport/types.js';
import { Harness, outgoing, responseTo, target } from './helpers.js';

interface Event {
  kind: 'provisional' | 'final' | 'final-retransmission' | 'timeout' | 'transport-error' | 'terminated';
  status?: number;
  at: number;
}

function recorder(h: Harness): { user: ClientTransactionUser; events: Event[] } {
  const events: Event[] = [];
  const user: ClientTransactionUser = {
    onProvisional: (_tx, r) => events.push({ kind: 'provisional', status: r.status, at: h.now }),
    onFinal: (_tx, r, re) => events.push({ kind: re ? 'final-retransmission' : 'final', status: r.status, at: h.now }),
    onTimeout: () => events.push({ kind: 'timeout', at: h.now }),
    onTransportError: () => events.push({ kind: 'transport-error', at: h.now }),
    onClientTerminated: () => events.push({ kind: 'terminated', at: h.now }),
  };
  return { user, events };
}

function start(h: Harness, method: string, protocol: Protocol, opts: { routes?: string[] } = {}) {
  const { user, events } = recorder(h);
  const out = outgoing({ method, ourBranch: 'z9hG4bKbr1', routes: opts.routes });
  const tx = createClientTransaction(h.layer, { bytes: out.bytes, branch: 'z9hG4bKbr1', method, target: target(protocol), user });
  tx.start();
  return { tx, events, out: out.msg };
}

/** What the downstream sends back: a fresh parse each time, as a retransmission would be. */
function answer(h: Harness, tx: ClientTransaction, req: SipMessage, status: number, toTag = 'pbx-tag'): void {
  const r = responseTo(req, status, { toTag });
  expect(h.layer.table.matchResponse(r)).toBe(tx);
  tx.receive(r);
}

function kinds(events: Event[]): string[] {
  return events.map((e) => (e.status === undefined ? e.kind : `${e.kind} ${e.status}`));
}

const sendTimes = (h: Harness) => h.take().map((s) => s.at);

describe('INVITE client transaction (figure 5)', () => {
  it('Calling over UDP: Timer A doubles from T1 (no T2 cap), Timer B times out at 64·T1', () => {
    const h = new Harness();
    const { tx, events } = start(h, 'INVITE', 'udp');
    expect(tx.state).toBe('calling');
    h.advance(40_000);
    expect(sendTimes(h)).toEqual([0, 500, 1500, 3500, 7500, 15500, 31500]);
    expect(kinds(events)).toEqual(['timeout', 'terminated']);
    expect(events[0]!.at).toBe(32_000);
    expect(tx.state).toBe('terminated');
    expect(h.pendingTimers).toBe(0);
    expect(h.layer.table.clientCount).toBe(0);
  });

  it('Calling over TCP: sent once, Timer B still times out at 64·T1', () => {
    const h = new Harness();
    const { events } = start(h, 'INVITE', 'tcp');
    h.advance(40_000);
    expect(sendTimes(h)).toEqual([0]);
    expect(kinds(events)).toEqual(['timeout', 'terminated']);
    expect(events[0]!.at).toBe(32_000);
    expect(h.pendingTimers).toBe(0);
  });

  it('T1 is configurable: Timer A and B follow it', () => {
    const h = new Harness({ timers: { t1: 100 } });
    const { events } = start(h, 'INVITE', 'udp');
    h.advance(10_000);
    expect(sendTimes(h)).toEqual([0, 100, 300, 700, 1500, 3100, 6300]);
    expect(events[0]).toEqual({ kind: 'timeout', at: 6400 });
  });

  for (const protocol of ['udp', 'tcp'] as const) {
    it(`Calling --1xx--> Proceeding over ${protocol}: retransmissions stop, Timer B no longer applies, provisionals go to the TU`, () => {
      const h = new Harness();
      const { tx, events, out } = start(h, 'INVITE', protocol);
      h.advance(600);
      answer(h, tx, out, 100);
      expect(tx.state).toBe('proceeding');
      answer(h, tx, out, 180);
      h.advance(100_000);
      expect(sendTimes(h)).toEqual(protocol === 'udp' ? [0, 500] : [0]);
      expect(kinds(events)).toEqual(['provisional 100', 'provisional 180']);
      // In Proceeding the TU's Timer C (fr_inv_timer) bounds the wait, not the transaction.
      expect(h.pendingTimers).toBe(0);
      answer(h, tx, out, 200);
      expect(tx.state).toBe('accepted');
    });

    it(`2xx --> Accepted (RFC 6026) over ${protocol}: to the TU, retransmitted 2xx to the TU too, no ACK, Timer M ends it`, () => {
      const h = new Harness();
      const { tx, events, out } = start(h, 'INVITE', protocol);
      answer(h, tx, out, 180);
      answer(h, tx, out, 200);
      expect(tx.state).toBe('accepted');
      h.advance(4000);
      answer(h, tx, out, 200);
      h.advance(27_999);
      expect(tx.state).toBe('accepted');
      h.advance(1);
      expect(tx.state).toBe('terminated');
      expect(kinds(events)).toEqual(['provisional 180', 'final 200', 'final-retransmission 200', 'terminated']);
      expect(events.at(-1)!.at).toBe(32_000);
      // The ACK of a 2xx is the TU's (end to end), never the transaction's.
      expect(h.takeLines()).toEqual(['INVITE']);
      expect(h.pendingTimers).toBe(0);
      expect(h.layer.table.clientCount).toBe(0);
    });
  }

  it('2xx with RFC 6026 off: Terminated at once (RFC 3261 as published)', () => {
    const h = new Harness({ rfc6026: false });
    const { tx, events, out } = start(h, 'INVITE', 'udp');
    answer(h, tx, out, 200);
    expect(tx.state).toBe('terminated');
    expect(kinds(events)).toEqual(['final 200', 'terminated']);
    expect(h.pendingTimers).toBe(0);
    expect(h.layer.table.matchResponse(responseTo(out, 200, { toTag: 'x' }))).toBeUndefined();
  });

  it('300-699 --> Completed over UDP: ACK sent, response to the TU once, retransmissions ACKed again and absorbed, Timer D (32 s)', () => {
    const h = new Harness();
    const { tx, events, out } = start(h, 'INVITE', 'udp', { routes: ['<sip:10.0.0.99;lr>', '<sip:10.0.0.98;lr>'] });
    h.advance(100);
    answer(h, tx, out, 486);
    expect(tx.state).toBe('completed');
    answer(h, tx, out, 486);
    h.advance(1000);
    answer(h, tx, out, 486);
    const sent = h.take();
    expect(sent.map((s) => (s.msg.isRequest ? s.msg.method : s.msg.status))).toEqual(['INVITE', 'ACK', 'ACK', 'ACK']);
    expect(sent[1]!.bytes.equals(sent[2]!.bytes)).toBe(true);
    expect(sent[1]!.target).toEqual(target('udp'));
    expect(kinds(events)).toEqual(['final 486']);
    // Timer D runs from the first 486 (at 100 ms).
    h.advance(32_100 - 1100 - 1);
    expect(tx.state).toBe('completed');
    h.advance(1);
    expect(tx.state).toBe('terminated');
    expect(h.pendingTimers).toBe(0);
  });

  it('the ACK for a non-2xx final follows §17.1.1.3', () => {
    const h = new Harness();
    const { tx, out } = start(h, 'INVITE', 'udp', { routes: ['<sip:10.0.0.99;lr>', '<sip:10.0.0.98;lr>'] });
    answer(h, tx, out, 404, 'tag-404');
    const ack = h.take()[1]!.msg;
    expect(ack.method).toBe('ACK');
    expect(ack.requestUriText).toBe(out.requestUriText);
    expect(ack.callId).toBe(out.callId);
    expect(ack.from.tag).toBe(out.from.tag);
    expect(ack.header('from')).toBe(out.header('from'));
    expect(ack.cseq).toEqual({ seq: out.cseq.seq, method: 'ACK' });
    expect(ack.to.tag).toBe('tag-404');
    // only the INVITE's top Via (ours), so the next hop matches it to its INVITE transaction
    expect(ack.vias).toHaveLength(1);
    expect(ack.topVia!.branch).toBe('z9hG4bKbr1');
    expect(ack.headerValues('route')).toEqual(['<sip:10.0.0.99;lr>', '<sip:10.0.0.98;lr>']);
    expect(ack.maxForwards).toBe(70);
    expect(ack.contentLength).toBe(0);
  });

  it('300-699 over TCP: ACK sent once, Timer D is 0 (Terminated at once)', () => {
    const h = new Harness();
    const { tx, events, out } = start(h, 'INVITE', 'tcp');
    answer(h, tx, out, 180);
    answer(h, tx, out, 503);
    expect(h.takeLines()).toEqual(['INVITE', 'ACK']);
    expect(kinds(events)).toEqual(['provisional 180', 'final 503', 'terminated']);
    expect(tx.state).toBe('terminated');
    expect(h.pendingTimers).toBe(0);
  });

  it('a transport error in Calling informs the TU and terminates', () => {
    const h = new Harness();
    const { tx, events } = start(h, 'INVITE', 'udp');
    tx.transportError();
    expect(kinds(events)).toEqual(['transport-error', 'terminated']);
    expect(h.pendingTimers).toBe(0);
    expect(h.layer.table.clientCount).toBe(0);
  });

  it('abandon() in Calling stops Timer A; Timer B still ends it', () => {
    const h = new Harness();
    const { tx, events } = start(h, 'INVITE', 'udp');
    h.advance(600);
    tx.abandon();
    h.advance(40_000);
    expect(sendTimes(h)).toEqual([0, 500]);
    expect(kinds(events)).toEqual(['timeout', 'terminated']);
    expect(events[0]!.at).toBe(32_000);
  });

  it('abandon() in Proceeding bounds the wait for the final by 64·T1 (§9.1)', () => {
    const h = new Harness();
    const { tx, events, out } = start(h, 'INVITE', 'udp');
    answer(h, tx, out, 180);
    h.advance(10_000);
    tx.abandon();
    expect(h.pendingTimers).toBe(1);
    h.advance(32_000);
    expect(kinds(events)).toEqual(['provisional 180', 'timeout', 'terminated']);
    expect(events[1]!.at).toBe(42_000);
    expect(h.pendingTimers).toBe(0);
  });

  it('a 487 after abandon() completes it normally (ACK, Timer D)', () => {
    const h = new Harness();
    const { tx, events, out } = start(h, 'INVITE', 'udp');
    answer(h, tx, out, 180);
    tx.abandon();
    answer(h, tx, out, 487);
    expect(h.takeLines()).toEqual(['INVITE', 'ACK']);
    expect(kinds(events)).toEqual(['provisional 180', 'final 487']);
    h.advance(32_000);
    expect(tx.state).toBe('terminated');
    expect(h.pendingTimers).toBe(0);
  });

  it('terminate() releases every timer at any state', () => {
    const h = new Harness();
    const { tx } = start(h, 'INVITE', 'udp');
    expect(h.pendingTimers).toBe(2); // A and B
    tx.terminate();
    expect(h.pendingTimers).toBe(0);
    expect(h.layer.table.clientCount).toBe(0);
  });
});

describe('non-INVITE client transaction (figure 6)', () => {
  it('Trying over UDP: Timer E doubles from T1 up to T2, Timer F times out at 64·T1', () => {
    const h = new Harness();
    const { tx, events } = start(h, 'OPTIONS', 'udp');
    expect(tx.state).toBe('trying');
    h.advance(40_000);
    expect(sendTimes(h)).toEqual([0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
    expect(kinds(events)).toEqual(['timeout', 'terminated']);
    expect(events[0]!.at).toBe(32_000);
    expect(h.pendingTimers).toBe(0);
  });

  it('T2 is configurable: Timer E caps at it', () => {
    const h = new Harness({ timers: { t2: 1000 } });
    start(h, 'OPTIONS', 'udp');
    h.advance(5000);
    expect(sendTimes(h)).toEqual([0, 500, 1500, 2500, 3500, 4500]);
  });

  it('Proceeding over UDP: Timer E fires every T2; Timer F still times out', () => {
    const h = new Harness();
    const { tx, events, out } = start(h, 'REGISTER', 'udp');
    h.advance(600);
    answer(h, tx, out, 100);
    expect(tx.state).toBe('proceeding');
    h.advance(40_000);
    // E was armed for 1000 ms at 500; it fires at 1500 in Proceeding, then every T2 (4 s).
    expect(sendTimes(h)).toEqual([0, 500, 1500, 5500, 9500, 13500, 17500, 21500, 25500, 29500]);
    expect(kinds(events)).toEqual(['provisional 100', 'timeout', 'terminated']);
    expect(events[1]!.at).toBe(32_000);
  });

  it('over TCP: no retransmission in Trying or Proceeding; Timer F at 64·T1', () => {
    const h = new Harness();
    const { tx, events, out } = start(h, 'MESSAGE', 'tcp');
    h.advance(1000);
    answer(h, tx, out, 100);
    h.advance(40_000);
    expect(sendTimes(h)).toEqual([0]);
    expect(kinds(events)).toEqual(['provisional 100', 'timeout', 'terminated']);
    expect(events[1]!.at).toBe(32_000);
  });

  it('200-699 --> Completed over UDP: to the TU once, retransmissions absorbed, Timer K = T4', () => {
    const h = new Harness();
    const { tx, events, out } = start(h, 'OPTIONS', 'udp');
    h.advance(700);
    answer(h, tx, out, 200);
    expect(tx.state).toBe('completed');
    answer(h, tx, out, 200);
    h.advance(4999);
    expect(tx.state).toBe('completed');
    h.advance(1);
    expect(tx.state).toBe('terminated');
    expect(kinds(events)).toEqual(['final 200', 'terminated']);
    expect(sendTimes(h)).toEqual([0, 500]);
    expect(h.pendingTimers).toBe(0);
  });

  it('T4 is configurable: Timer K follows it', () => {
    const h = new Harness({ timers: { t4: 1000 } });
    const { tx, out } = start(h, 'OPTIONS', 'udp');
    answer(h, tx, out, 404);
    h.advance(999);
    expect(tx.state).toBe('completed');
    h.advance(1);
    expect(tx.state).toBe('terminated');
  });

  it('200-699 over TCP: Timer K is 0 (Terminated at once, after the TU had the response)', () => {
    const h = new Harness();
    const { tx, events, out } = start(h, 'OPTIONS', 'tcp');
    answer(h, tx, out, 180);
    answer(h, tx, out, 408);
    expect(kinds(events)).toEqual(['provisional 180', 'final 408', 'terminated']);
    expect(tx.state).toBe('terminated');
    expect(h.pendingTimers).toBe(0);
  });

  it('a transport error informs the TU and terminates', () => {
    const h = new Harness();
    const { tx, events } = start(h, 'OPTIONS', 'tcp');
    tx.transportError();
    expect(kinds(events)).toEqual(['transport-error', 'terminated']);
    expect(h.pendingTimers).toBe(0);
  });

  it('abandon() stops Timer E; Timer F still ends it', () => {
    const h = new Harness();
    const { tx, events } = start(h, 'OPTIONS', 'udp');
    h.advance(600);
    tx.abandon();
    h.advance(40_000);
    expect(sendTimes(h)).toEqual([0, 500]);
    expect(kinds(events)).toEqual(['timeout', 'terminated']);
  });
});

describe('timer values', () => {
  it('refuse nonsense with a clear message', async () => {
    const { resolveTimers } = await import('../../src/transaction/timers.js');
    expect(() => resolveTimers({ t1: 0 })).toThrow(/t1 must be a whole number of milliseconds/);
    expect(() => resolveTimers({ t2: 100, t1: 500 })).toThrow(/t2 \(100 ms\) must not be shorter than t1/);
    expect(() => resolveTimers({ t4: 1.5 })).toThrow(/t4/);
    expect(resolveTimers({ t1: 200 })).toEqual({ t1: 200, t2: 4000, t4: 5000, timerD: 32_000, accepted: 12_800 });
  });
});
