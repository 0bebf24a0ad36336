/**
 * Server transactions (RFC 3261 §17.2, figures 7 and 8; RFC 6026 Accepted): every state and
 * timer with fake time, over UDP (Timer G retransmissions) and TCP (none; H still applies).
 */
import { describe, expect, it } from 'vitest';
import { requestKey } from '../../src/transaction/key.js';
import { createServerTransaction, type ServerTransaction, type ServerTransactionUser } from '../../src/transaction/server.js';
import type { SipMessage } from '../../src/sip/message.js';
import type { Target } from '../../src/transport/types.js';
import { Harness, request, responseTo, UPSTREAM_TCP, UPSTREAM_UDP } from './helpers.js';

function recorder(h: Harness) {
  const events: string[] = [];
  const user: ServerTransactionUser = {
    onAckTimeout: () => events.push(`ack-timeout@${h.now}`),
    onServerTransportError: () => events.push('transport-error'),
    onServerTerminated: () => events.push(`terminated@${h.now}`),
  };
  return { user, events };
}

function create(h: Harness, req: SipMessage, upstream: Target) {
  const { user, events } = recorder(h);
  const tx = createServerTransaction(h.layer, { request: req, key: requestKey(req), source: { address: '192.0.2.1', port: 5062 }, upstream, user });
  if (tx === 'full') throw new Error('table full');
  return { tx, events };
}

/** A request arriving: matched through the table like the core will, then given to its transaction. */
function arrive(h: Harness, tx: ServerTransaction, msg: SipMessage): string {
  expect(h.layer.table.findServer(requestKey(msg))).toBe(tx);
  return tx.receive(msg);
}

/** A downstream-style response to the request, as the proxy would forward it. */
function respond(tx: ServerTransaction, req: SipMessage, status: number): boolean {
  return tx.respond(status, responseTo(req, status, { toTag: 'uas' }).buffer);
}

const upstreams = { udp: UPSTREAM_UDP, tcp: UPSTREAM_TCP } as const;

describe('INVITE server transaction (figure 7)', () => {
  for (const p of ['udp', 'tcp'] as const) {
    it(`Proceeding over ${p}: a retransmitted INVITE is absorbed, and gets the last provisional again`, () => {
      const h = new Harness();
      const inv = request();
      const { tx } = create(h, inv, upstreams[p]);
      expect(tx.state).toBe('proceeding');
      expect(arrive(h, tx, request())).toBe('absorbed');
      expect(h.takeLines()).toEqual([]);
      expect(tx.respondLocally(100)).toBe(true);
      expect(arrive(h, tx, request())).toBe('absorbed');
      expect(respond(tx, inv, 180)).toBe(true);
      expect(arrive(h, tx, request())).toBe('absorbed');
      const sent = h.take();
      expect(sent.map((s) => s.msg.status)).toEqual([100, 100, 180, 180]);
      expect(sent.every((s) => s.target === upstreams[p])).toBe(true);
      // No timer in Proceeding: the TU answers.
      expect(h.pendingTimers).toBe(0);
    });

    it(`2xx --> Accepted (RFC 6026) over ${p}: INVITEs absorbed without answer, ACK passed to the TU, more 2xx sent, Timer L`, () => {
      const h = new Harness();
      const inv = request();
      const { tx, events } = create(h, inv, upstreams[p]);
      respond(tx, inv, 200);
      expect(tx.state).toBe('accepted');
      expect(tx.request).toBeUndefined(); // released: no local response can follow
      expect(arrive(h, tx, request())).toBe('absorbed');
      expect(arrive(h, tx, request({ method: 'ACK', toTag: 'uas' }))).toBe('pass');
      expect(respond(tx, inv, 200)).toBe(true);
      expect(h.takeLines()).toEqual(['200', '200']);
      h.advance(31_999);
      expect(tx.state).toBe('accepted');
      h.advance(1);
      expect(events).toEqual(['terminated@32000']);
      expect(h.pendingTimers).toBe(0);
      expect(h.layer.table.serverCount).toBe(0);
    });
  }

  it('2xx with RFC 6026 off: Terminated at once', () => {
    const h = new Harness({ rfc6026: false });
    const inv = request();
    const { tx, events } = create(h, inv, UPSTREAM_UDP);
    respond(tx, inv, 200);
    expect(tx.state).toBe('terminated');
    expect(events).toEqual(['terminated@0']);
    expect(h.pendingTimers).toBe(0);
    // A later 2xx (another branch) is still sent: §16.7 step 5.
    expect(respond(tx, inv, 200)).toBe(true);
    expect(h.takeLines()).toEqual(['200', '200']);
  });

  it('300-699 --> Completed over UDP: Timer G from T1 doubling to T2, retransmitted INVITE answered again, Timer H without ACK', () => {
    const h = new Harness();
    const inv = request();
    const { tx, events } = create(h, inv, UPSTREAM_UDP);
    respond(tx, inv, 486);
    expect(tx.state).toBe('completed');
    h.advance(2000);
    expect(arrive(h, tx, request())).toBe('absorbed');
    h.advance(40_000);
    const sent = h.take();
    expect(sent.every((s) => s.msg.status === 486)).toBe(true);
    expect(sent.map((s) => s.at)).toEqual([0, 500, 1500, 2000, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
    expect(events).toEqual(['ack-timeout@32000', 'terminated@32000']);
    expect(h.pendingTimers).toBe(0);
    expect(h.layer.table.serverCount).toBe(0);
  });

  it('Completed --ACK--> Confirmed over UDP: retransmissions stop, more ACKs absorbed, Timer I = T4', () => {
    const h = new Harness();
    const inv = request();
    const { tx, events } = create(h, inv, UPSTREAM_UDP);
    respond(tx, inv, 404);
    h.advance(600);
    expect(arrive(h, tx, request({ method: 'ACK', toTag: 'uas' }))).toBe('absorbed');
    expect(tx.state).toBe('confirmed');
    expect(arrive(h, tx, request({ method: 'ACK', toTag: 'uas' }))).toBe('absorbed');
    h.advance(4999);
    expect(tx.state).toBe('confirmed');
    h.advance(1);
    expect(events).toEqual(['terminated@5600']);
    expect(h.take().map((s) => s.at)).toEqual([0, 500]);
    expect(h.pendingTimers).toBe(0);
  });

  it('over TCP: no Timer G; Timer H still applies; the ACK ends it at once (Timer I = 0)', () => {
    const h = new Harness();
    const inv = request({ transport: 'TCP' });
    const { tx, events } = create(h, inv, UPSTREAM_TCP);
    respond(tx, inv, 603);
    h.advance(10_000);
    expect(h.take().map((s) => s.at)).toEqual([0]);
    expect(arrive(h, tx, request({ method: 'ACK', toTag: 'uas', transport: 'TCP' }))).toBe('absorbed');
    expect(events).toEqual(['terminated@10000']);
    expect(h.pendingTimers).toBe(0);

    const h2 = new Harness();
    const { tx: tx2, events: ev2 } = create(h2, inv, UPSTREAM_TCP);
    respond(tx2, inv, 603);
    h2.advance(40_000);
    expect(ev2).toEqual(['ack-timeout@32000', 'terminated@32000']);
    expect(h2.takeLines()).toEqual(['603']);
  });

  it('refuses a second final response, and a provisional after the final', () => {
    const h = new Harness();
    const inv = request();
    const { tx } = create(h, inv, UPSTREAM_UDP);
    expect(respond(tx, inv, 486)).toBe(true);
    expect(respond(tx, inv, 404)).toBe(false);
    expect(respond(tx, inv, 180)).toBe(false);
    expect(h.takeLines()).toEqual(['486']);
  });

  it('a transport error informs the TU and terminates', () => {
    const h = new Harness();
    const inv = request();
    const { tx, events } = create(h, inv, UPSTREAM_UDP);
    respond(tx, inv, 486);
    tx.transportError();
    expect(events).toEqual(['transport-error', 'terminated@0']);
    expect(h.pendingTimers).toBe(0);
  });

  it('local responses carry received/rport, and a To tag above 100 only (§8.2.6)', () => {
    const h = new Harness();
    const inv = request();
    const { tx } = create(h, inv, UPSTREAM_UDP);
    tx.respondLocally(100);
    tx.respondLocally(408);
    const [trying, timeout] = h.take().map((s) => s.msg);
    expect(trying!.status).toBe(100);
    expect(trying!.to.tag).toBeUndefined();
    expect(trying!.topVia!.received).toBe('192.0.2.1');
    expect(trying!.topVia!.rport).toBe(5062);
    expect(trying!.topVia!.branch).toBe('z9hG4bKcaller1');
    expect(trying!.callId).toBe(inv.callId);
    expect(trying!.cseq).toEqual({ seq: 1, method: 'INVITE' });
    expect(timeout!.status).toBe(408);
    expect(timeout!.reason).toBe('Request Timeout');
    expect(timeout!.to.tag).toBeTruthy();
  });
});

describe('non-INVITE server transaction (figure 8)', () => {
  for (const p of ['udp', 'tcp'] as const) {
    it(`Trying and Proceeding over ${p}: retransmissions absorbed, answered with the last provisional once there is one`, () => {
      const h = new Harness();
      const req = request({ method: 'REGISTER' });
      const { tx } = create(h, req, upstreams[p]);
      expect(tx.state).toBe('trying');
      expect(arrive(h, tx, request({ method: 'REGISTER' }))).toBe('absorbed');
      expect(h.takeLines()).toEqual([]);
      respond(tx, req, 183);
      expect(tx.state).toBe('proceeding');
      expect(arrive(h, tx, request({ method: 'REGISTER' }))).toBe('absorbed');
      expect(h.takeLines()).toEqual(['183', '183']);
      expect(h.pendingTimers).toBe(0);
    });
  }

  it('200-699 --> Completed over UDP: retransmissions answered with the final, Timer J = 64·T1', () => {
    const h = new Harness();
    const req = request({ method: 'OPTIONS' });
    const { tx, events } = create(h, req, UPSTREAM_UDP);
    respond(tx, req, 200);
    expect(tx.state).toBe('completed');
    h.advance(10_000);
    expect(arrive(h, tx, request({ method: 'OPTIONS' }))).toBe('absorbed');
    expect(respond(tx, req, 500)).toBe(false);
    h.advance(21_999);
    expect(tx.state).toBe('completed');
    h.advance(1);
    expect(events).toEqual(['terminated@32000']);
    expect(h.take().map((s) => `${s.msg.status}@${s.at}`)).toEqual(['200@0', '200@10000']);
    expect(h.pendingTimers).toBe(0);
  });

  it('200-699 over TCP: Timer J is 0 (Terminated at once)', () => {
    const h = new Harness();
    const req = request({ method: 'MESSAGE', transport: 'TCP' });
    const { tx, events } = create(h, req, UPSTREAM_TCP);
    respond(tx, req, 202);
    expect(tx.state).toBe('terminated');
    expect(events).toEqual(['terminated@0']);
    expect(h.pendingTimers).toBe(0);
    expect(h.layer.table.serverCount).toBe(0);
  });

  it('T1 is configurable: Timer J follows it', () => {
    const h = new Harness({ timers: { t1: 50 } });
    const req = request({ method: 'OPTIONS' });
    const { tx } = create(h, req, UPSTREAM_UDP);
    respond(tx, req, 200);
    h.advance(3199);
    expect(tx.state).toBe('completed');
    h.advance(1);
    expect(tx.state).toBe('terminated');
  });
});
