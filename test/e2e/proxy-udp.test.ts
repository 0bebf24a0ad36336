/**
 * The stateless proxy on the wire: a real `sipctl serve` process, real UDP datagrams from a
 * caller socket, two "PBX" sockets in dispatcher set 1 (round-robin), and the bytes that come
 * out checked against RFC 3261 §16 / RFC 3581.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { responseTo, sip, UdpPeer, unique, type Received } from '../helpers/sip-peer.js';

let proxy: ProxyProcess;
let port: number;
let uac: UdpPeer;
let pbx1: UdpPeer;
let pbx2: UdpPeer;
let stranger: UdpPeer;

function invite(opts: { callId?: string; branch?: string; extra?: string[]; maxForwards?: number | null; uri?: string; method?: string; toTag?: string } = {}): string {
  const method = opts.method ?? 'INVITE';
  const lines = [
    `${method} ${opts.uri ?? `sip:service@127.0.0.1:${port}`} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${uac.port};branch=${opts.branch ?? unique('z9hG4bK')};rport`,
    `From: "Caller" <sip:caller@127.0.0.1:${uac.port}>;tag=${unique('f')}`,
    `To: <sip:service@127.0.0.1:${port}>${opts.toTag ? `;tag=${opts.toTag}` : ''}`,
    `Call-ID: ${opts.callId ?? unique('call-')}`,
    `CSeq: 1 ${method}`,
    `Contact: <sip:caller@127.0.0.1:${uac.port}>`,
  ];
  if (opts.maxForwards !== null) lines.push(`Max-Forwards: ${opts.maxForwards ?? 70}`);
  lines.push(...(opts.extra ?? []));
  lines.push('Content-Type: application/sdp', 'Content-Length: 13', '', 'v=0\r\no=test 1');
  return lines.join('\r\n');
}

/** The next request either PBX receives that matches. */
async function atPbx(pred: (r: Received) => boolean, timeoutMs = 3000): Promise<Received & { pbx: UdpPeer }> {
  try {
    return await Promise.any([
      pbx1.next(pred, timeoutMs).then((r) => ({ ...r, pbx: pbx1 })),
      pbx2.next(pred, timeoutMs).then((r) => ({ ...r, pbx: pbx2 })),
    ]);
  } finally {
    pbx1.cancelWaits();
    pbx2.cancelWaits();
  }
}

const byCallId = (id: string) => (r: Received) => r.msg.header('call-id') === id;

beforeAll(async () => {
  uac = await UdpPeer.open();
  pbx1 = await UdpPeer.open();
  pbx2 = await UdpPeer.open();
  stranger = await UdpPeer.open('127.0.0.2');
  proxy = await startProxyProcess({
    args: ['--listen', 'udp:127.0.0.1:0'],
    setup: [
      ['address', 'add', '1', '127.0.0.1', '32'],
      ['dispatcher', 'add', '1', `sip:127.0.0.1:${pbx1.port}`],
      ['dispatcher', 'add', '1', `sip:127.0.0.1:${pbx2.port}`],
    ],
  });
  port = proxy.ports.udp!;
});

afterAll(async () => {
  await proxy?.stop();
  await Promise.all([uac?.close(), pbx1?.close(), pbx2?.close(), stranger?.close()]);
});

describe('forwarding a request (RFC 3261 §16.6)', () => {
  it('adds our Via with a stateless branch, fills received/rport, decrements Max-Forwards, record-routes, and leaves the rest byte for byte', async () => {
    const callId = unique('call-');
    const text = invite({ callId, extra: ['X-Odd:    spaced   value  '] });
    uac.send(text, port);
    const got = await atPbx(byCallId(callId));
    const vias = got.msg.vias;
    expect(vias).toHaveLength(2);
    expect(vias[0]!.host).toBe('127.0.0.1');
    expect(vias[0]!.port).toBe(port);
    expect(vias[0]!.branch).toMatch(/^z9hG4bK/);
    expect(vias[1]!.rport).toBe(uac.port);
    expect(vias[1]!.received).toBe('127.0.0.1');
    expect(got.msg.maxForwards).toBe(69);
    expect(got.msg.header('record-route')).toBe(`<sip:127.0.0.1:${port};transport=udp;lr>`);
    expect(got.raw.includes(Buffer.from('X-Odd:    spaced   value  \r\n'))).toBe(true);
    expect(got.msg.body.toString()).toBe('v=0\r\no=test 1');
    expect(got.msg.contentLength).toBe(13);
    // The Request-URI is unchanged; the destination came from the dispatcher ($du).
    expect(got.msg.requestUriText).toBe(`sip:service@127.0.0.1:${port}`);
    expect(got.address).toBe('127.0.0.1');
    expect(got.port).toBe(port);
  });

  it('gives a retransmission the same branch (§16.11) and the same destination', async () => {
    const callId = unique('call-');
    const text = invite({ callId });
    uac.send(text, port);
    const first = await atPbx(byCallId(callId));
    uac.send(text, port);
    const second = await atPbx(byCallId(callId));
    expect(second.msg.topVia!.branch).toBe(first.msg.topVia!.branch);
    expect(second.pbx).toBe(first.pbx);
  });

  it('adds Max-Forwards: 70 when missing and answers 483 to Max-Forwards: 0', async () => {
    const callId = unique('call-');
    uac.send(invite({ callId, maxForwards: null }), port);
    const got = await atPbx(byCallId(callId));
    expect(got.msg.maxForwards).toBe(70);

    const dead = unique('call-');
    uac.send(invite({ callId: dead, maxForwards: 0 }), port);
    const r = await uac.next(byCallId(dead));
    expect(r.msg.status).toBe(483);
    expect(await pbx1.nothing(byCallId(dead), 200)).toBe(true);
  });

  it('round-robins initial requests over set 1', async () => {
    const seen: UdpPeer[] = [];
    for (let i = 0; i < 4; i++) {
      const callId = unique('rr-');
      uac.send(invite({ callId }), port);
      seen.push((await atPbx(byCallId(callId))).pbx);
    }
    expect(seen[0]).not.toBe(seen[1]);
    expect(seen[0]).toBe(seen[2]);
    expect(seen[1]).toBe(seen[3]);
  });
});

describe('responses (§16.7, §18.2.2, RFC 3581)', () => {
  it('removes our Via and sends the response to the caller at received:rport', async () => {
    const callId = unique('call-');
    uac.send(invite({ callId }), port);
    const req = await atPbx(byCallId(callId));
    req.pbx.send(responseTo(req.msg, 180, 'Ringing'), port);
    const ringing = await uac.next((r) => r.msg.status === 180 && byCallId(callId)(r));
    expect(ringing.msg.vias).toHaveLength(1);
    expect(ringing.msg.topVia!.port).toBe(uac.port);
    expect(ringing.msg.header('record-route')).toBe(`<sip:127.0.0.1:${port};transport=udp;lr>`);
  });

  it('drops a response whose top Via is not ours', async () => {
    const callId = unique('foreign-');
    const resp = sip(`
SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:${uac.port};branch=z9hG4bKforeign
From: <sip:a@example.com>;tag=1
To: <sip:b@example.com>;tag=2
Call-ID: ${callId}
CSeq: 1 INVITE
Content-Length: 0

`);
    pbx1.send(resp, port);
    expect(await uac.nothing(byCallId(callId), 300)).toBe(true);
  });
});

describe('CANCEL and ACK follow their INVITE (§16.10, §17.1.1.3)', () => {
  it('sends the CANCEL to the PBX that got the INVITE, with the same branch, though round-robin moved on', async () => {
    const callId = unique('cancel-');
    const branch = unique('z9hG4bK');
    const inv = invite({ callId, branch });
    uac.send(inv, port);
    const got = await atPbx(byCallId(callId));
    // push the round-robin pointer on by one call
    const other = unique('filler-');
    uac.send(invite({ callId: other }), port);
    await atPbx(byCallId(other));
    const cancel = inv
      .replace(/^INVITE /, 'CANCEL ')
      .replace('CSeq: 1 INVITE', 'CSeq: 1 CANCEL')
      .replace(/Content-Type: application\/sdp\r\nContent-Length: 13\r\n\r\nv=0\r\no=test 1$/, 'Content-Length: 0\r\n\r\n');
    uac.send(cancel, port);
    const c = await got.pbx.next((r) => r.msg.method === 'CANCEL' && byCallId(callId)(r));
    expect(c.msg.topVia!.branch).toBe(got.msg.topVia!.branch);
    expect(c.msg.header('record-route')).toBeUndefined();
  });

  it('sends the ACK for a non-2xx response where the INVITE went, with the INVITE branch', async () => {
    const callId = unique('busy-');
    const branch = unique('z9hG4bK');
    const inv = invite({ callId, branch });
    uac.send(inv, port);
    const got = await atPbx(byCallId(callId));
    got.pbx.send(responseTo(got.msg, 486, 'Busy Here', [], 'busytag'), port);
    const busy = await uac.next((r) => r.msg.status === 486 && byCallId(callId)(r));
    expect(busy.msg.to.tag).toBe('busytag');
    const other = unique('filler-');
    uac.send(invite({ callId: other }), port);
    await atPbx(byCallId(other));
    const ack = inv
      .replace(/^INVITE /, 'ACK ')
      .replace('CSeq: 1 INVITE', 'CSeq: 1 ACK')
      .replace(/To: (<[^>]+>)/, 'To: $1;tag=busytag')
      .replace(/Content-Type: application\/sdp\r\nContent-Length: 13\r\n\r\nv=0\r\no=test 1$/, 'Content-Length: 0\r\n\r\n');
    uac.send(ack, port);
    const a = await got.pbx.next((r) => r.msg.method === 'ACK' && byCallId(callId)(r));
    expect(a.msg.topVia!.branch).toBe(got.msg.topVia!.branch);
  });
});

describe('loose and strict routing (§16.4, §16.6 step 6, §16.12)', () => {
  it('removes its own Route and sends an in-dialog request to the Request-URI', async () => {
    const callId = unique('bye-');
    uac.send(
      invite({
        method: 'BYE',
        callId,
        toTag: 'pbxtag',
        uri: `sip:pbx@127.0.0.1:${pbx2.port}`,
        extra: [`Route: <sip:127.0.0.1:${port};transport=udp;lr>`],
      }),
      port,
    );
    const got = await pbx2.next(byCallId(callId));
    expect(got.msg.method).toBe('BYE');
    expect(got.msg.header('route')).toBeUndefined();
    expect(got.msg.requestUriText).toBe(`sip:pbx@127.0.0.1:${pbx2.port}`);
  });

  it('restores the Request-URI after a strict router (the last Route value)', async () => {
    const callId = unique('strict-');
    uac.send(
      invite({
        method: 'BYE',
        callId,
        toTag: 'pbxtag',
        uri: `sip:127.0.0.1:${port};transport=udp;lr`,
        extra: [`Route: <sip:pbx@127.0.0.1:${pbx1.port}>`],
      }),
      port,
    );
    const got = await pbx1.next(byCallId(callId));
    expect(got.msg.requestUriText).toBe(`sip:pbx@127.0.0.1:${pbx1.port}`);
    expect(got.msg.header('route')).toBeUndefined();
  });

  it('fixes up the request for a strict router downstream (no lr)', async () => {
    const callId = unique('tostrict-');
    const original = `sip:pbx@127.0.0.1:${pbx1.port}`;
    uac.send(
      invite({
        method: 'BYE',
        callId,
        toTag: 'pbxtag',
        uri: original,
        extra: [`Route: <sip:127.0.0.1:${port};lr>, <sip:127.0.0.1:${pbx2.port}>`],
      }),
      port,
    );
    const got = await pbx2.next(byCallId(callId));
    expect(got.msg.requestUriText).toBe(`sip:127.0.0.1:${pbx2.port}`);
    expect(got.msg.headerValues('route')).toEqual([`<${original}>`]);
  });
});

describe('local replies (§8.2.6) and refusals', () => {
  it('answers OPTIONS addressed to itself with 200 OK', async () => {
    const callId = unique('opt-');
    uac.send(invite({ method: 'OPTIONS', callId, uri: `sip:127.0.0.1:${port}` }), port);
    const r = await uac.next(byCallId(callId));
    expect(r.msg.status).toBe(200);
    expect(r.msg.to.tag).toBeDefined();
    expect(r.msg.topVia!.received).toBe('127.0.0.1');
    expect(r.msg.topVia!.rport).toBe(uac.port);
  });

  it('refuses a sender that is not in the address table with 401 Address not authorised', async () => {
    const callId = unique('stranger-');
    stranger.send(invite({ callId }).replace(`127.0.0.1:${uac.port};branch`, `127.0.0.2:${stranger.port};branch`), port);
    const r = await stranger.next(byCallId(callId));
    expect(r.msg.status).toBe(401);
    expect(r.msg.reason).toBe('Address not authorised');
    expect(await pbx1.nothing(byCallId(callId), 200)).toBe(true);
    expect(await pbx2.nothing(byCallId(callId), 10)).toBe(true);
  });

  it('answers 400 to a request with a broken CSeq, and drops garbage', async () => {
    const callId = unique('bad-');
    uac.send(invite({ callId }).replace('CSeq: 1 INVITE', 'CSeq: one INVITE'), port);
    const r = await uac.next(byCallId(callId));
    expect(r.msg.status).toBe(400);
    uac.drain();
    uac.send('\x00\x01 not sip at all \r\n\r\n', port);
    expect(await uac.nothing((x) => x.msg.status === 400, 200)).toBe(true);
  });

  it('answers 416, 505 and 420 where §16.3 says so', async () => {
    const a = unique('scheme-');
    uac.send(invite({ callId: a, uri: 'http://example.com/x' }), port);
    expect((await uac.next(byCallId(a))).msg.status).toBe(416);
    const b = unique('ver-');
    uac.send(invite({ callId: b }).replace(' SIP/2.0\r\n', ' SIP/7.0\r\n'), port);
    expect((await uac.next(byCallId(b))).msg.status).toBe(505);
    const c = unique('ext-');
    uac.send(invite({ callId: c, extra: ['Proxy-Require: foo'] }), port);
    const r = await uac.next(byCallId(c));
    expect(r.msg.status).toBe(420);
    expect(r.msg.header('unsupported')).toBe('foo');
  });

  it('detects a loop: a request that comes back with our Via and the same branch gets 482', async () => {
    const callId = unique('loop-');
    uac.send(invite({ callId }), port);
    const got = await atPbx(byCallId(callId));
    // The PBX sends the request straight back to the proxy, unchanged.
    got.pbx.send(got.raw, port);
    const r = await uac.next((x) => x.msg.status === 482 && byCallId(callId)(x), 3000);
    expect(r.msg.reason).toBe('Loop Detected');
  });
});
