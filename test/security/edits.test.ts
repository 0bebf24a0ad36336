/**
 * Issue 8, finding 9: edits that silently vanished.
 *
 * A SipMessage records a route's and the core's changes as edits applied by serialize().
 * Before the fix, a second edit to the same header or to the Request-URI was dropped: a
 * route's Max-Forwards lost the core's decrement, the second setRequestUri was lost while
 * currentUriText reported it, a removal did not see a field an edit had added, and the
 * accessors kept describing the message as received. The rules now (src/sip/message.ts):
 * the last write wins, every write composes with the ones before it (the core's included),
 * and what the accessors say is what a parser reads from the serialized bytes.
 *
 * Every test checks both: the specific result on the wire (the serialized bytes parsed
 * again), and that the edited message's accessors say the same (`sentEqualsSaid`). The last
 * block runs the real proxy core on real UDP sockets with a route that edits.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/schema.js';
import { Logger } from '../../src/log/logger.js';
import { ProxyCore } from '../../src/proxy/core.js';
import { NO_DISPATCH } from '../../src/proxy/services.js';
import { AddressTable } from '../../src/acl/table.js';
import { receivedEdits } from '../../src/proxy/via.js';
import { defineRoute, type RequestContext, type RequestDecision } from '../../src/route/api.js';
import type { SipMessage } from '../../src/sip/message.js';
import { parseMessage } from '../../src/sip/parse.js';
import { createTransport, parseListenSpec } from '../../src/transport/index.js';
import type { Transport } from '../../src/transport/types.js';
import { sip, UdpPeer, unique, type Received } from '../helpers/sip-peer.js';

const REQUEST = sip(`
INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKuac1;rport
Max-Forwards: 70
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>
From: <sip:alice@atlanta.example.com>;tag=a1
To: <sip:bob@biloxi.example.com>
Call-ID: edits-1@192.0.2.1
CSeq: 1 INVITE
X-Test: original
Content-Length: 0

`);

const RESPONSE = sip(`
SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsc.ours
Via: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bKmid, SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKuac1
From: <sip:alice@atlanta.example.com>;tag=a1
To: <sip:bob@biloxi.example.com>;tag=b1
Call-ID: edits-1@192.0.2.1
CSeq: 1 INVITE
Content-Length: 0

`);

const request = (): SipMessage => parseMessage(Buffer.from(REQUEST, 'latin1'));
const response = (): SipMessage => parseMessage(Buffer.from(RESPONSE, 'latin1'));

function attempt<T>(f: () => T): T | string {
  try {
    return f();
  } catch (err) {
    return `throws ${(err as Error).name}`;
  }
}

/** What a message says about itself, through the accessors a route or the core reads. */
function view(m: SipMessage): Record<string, unknown> {
  const fields = m.fieldsAsSent().map((f) => `${f.name}: ${f.raw}`);
  return {
    uri: m.isRequest ? m.currentUriText : undefined,
    uriHost: m.isRequest ? attempt(() => m.uri.host) : undefined,
    fields,
    maxForwards: attempt(() => m.maxForwards),
    vias: attempt(() => m.vias.map((v) => `${v.host} ${v.branch} received=${v.received} rport=${v.rport}`)),
    topVia: attempt(() => m.topVia?.branch),
    routes: attempt(() => m.routes.map((r) => r.uriText)),
    to: attempt(() => m.to.uriText),
    xTest: m.headerFields('x-test'),
  };
}

/** The edited message's accessors describe exactly the bytes it serializes to; returns those, parsed. */
function sentEqualsSaid(m: SipMessage): SipMessage {
  const sent = parseMessage(m.serialize());
  expect(view(m), 'the accessors of the edited message').toEqual(view(sent));
  return sent;
}

describe('two edits of one header field: the last write wins (finding 9)', () => {
  it('set, then set again: the second value goes out', () => {
    const m = request();
    m.setHeader('X-Test', 'first');
    m.setHeader('x-test', 'second');
    expect(sentEqualsSaid(m).headerFields('X-Test')).toEqual(['second']);
  });

  it("the core's Max-Forwards decrement composes with a route's Max-Forwards (§16.6 step 3)", () => {
    const m = request();
    m.setHeader('Max-Forwards', '10'); // the route
    m.setHeader('max-forwards', String(m.maxForwards! - 1)); // the core, reading what the route left
    expect(m.maxForwards).toBe(9);
    expect(sentEqualsSaid(m).maxForwards).toBe(9);
  });

  it("a route's Max-Forwards after the core's: the route's value goes out", () => {
    const m = request();
    m.setHeader('max-forwards', '69'); // the core
    m.setHeader('Max-Forwards', '10'); // a route (a reply route, a later hook)
    expect(sentEqualsSaid(m).maxForwards).toBe(10);
  });

  it('set, then remove: the field is gone', () => {
    const m = request();
    m.setHeader('X-Test', 'changed');
    expect(m.removeHeader('X-Test')).toBe(1);
    expect(sentEqualsSaid(m).header('x-test')).toBeUndefined();
  });

  it('remove, then set: the field is back, with the new value, once', () => {
    const m = request();
    m.removeHeader('Max-Forwards');
    expect(m.maxForwards).toBeUndefined();
    m.setHeader('Max-Forwards', '5');
    expect(m.maxForwards).toBe(5);
    expect(sentEqualsSaid(m).headerFields('max-forwards')).toEqual(['5']);
  });

  it('remove twice: the second finds nothing', () => {
    const m = request();
    expect(m.removeHeader('X-Test')).toBe(1);
    expect(m.removeHeader('X-Test')).toBe(0);
    expect(sentEqualsSaid(m).header('x-test')).toBeUndefined();
  });

  it('insert, then remove by name: the inserted field goes too', () => {
    const m = request();
    m.insertHeaderBefore('x-test', 'X-Test', 'inserted');
    m.prependHeader('X-Test', 'prepended');
    m.appendHeader('X-Test', 'appended');
    expect(m.headerFields('x-test')).toEqual(['prepended', 'inserted', 'original', 'appended']);
    expect(m.removeHeader('x-test')).toBe(4);
    expect(sentEqualsSaid(m).headerFields('x-test')).toEqual([]);
  });

  it('append, then set: the appended field is the one replaced (no second field)', () => {
    const m = request();
    m.removeHeader('X-Test');
    m.appendHeader('X-Test', 'appended');
    m.setHeader('X-Test', 'set');
    expect(sentEqualsSaid(m).headerFields('x-test')).toEqual(['set']);
  });

  it('set, then append the same name: two fields, in that order', () => {
    const m = request();
    m.setHeader('X-Test', 'set');
    m.appendHeader('X-Test', 'appended');
    expect(sentEqualsSaid(m).headerFields('x-test')).toEqual(['set', 'appended']);
  });

  it("insert before Via twice: the later insert is on top (the core's own Via over a route's)", () => {
    const m = request();
    m.insertHeaderBefore('via', 'Via', 'SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bKroute');
    m.insertHeaderBefore('via', 'Via', 'SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsc.core');
    expect(m.topVia?.branch).toBe('z9hG4bKsc.core');
    expect(sentEqualsSaid(m).vias.map((v) => v.branch)).toEqual(['z9hG4bKsc.core', 'z9hG4bKroute', 'z9hG4bKuac1']);
  });

  it('removeField takes an index as received (fieldIndex): after an insert above it, it still removes that field', () => {
    const m = request();
    m.prependHeader('X-First', '1');
    expect(m.removeField(m.fieldIndex('x-test'))).toBe(true);
    expect(m.removeField(m.fieldIndex('x-test'))).toBe(false); // gone already
    const sent = sentEqualsSaid(m);
    expect(sent.header('x-test')).toBeUndefined();
    expect(sent.header('x-first')).toBe('1');
  });
});

describe('two edits of the Request-URI (finding 9)', () => {
  it('setRequestUri twice: the second goes out, and currentUriText and uri say so', () => {
    const m = request();
    m.setRequestUri('sip:first@10.0.0.1');
    m.setRequestUri('sip:second@10.0.0.2:5070');
    expect(m.currentUriText).toBe('sip:second@10.0.0.2:5070');
    expect(m.uri.host).toBe('10.0.0.2');
    const sent = sentEqualsSaid(m);
    expect(sent.requestUriText).toBe('sip:second@10.0.0.2:5070');
    // requestUriText stays the Request-URI as received
    expect(m.requestUriText).toBe('sip:bob@biloxi.example.com');
  });

  it('a Request-URI with white space or a line break is refused, and the message is unchanged', () => {
    const m = request();
    expect(() => m.setRequestUri('sip:a@b SIP/2.0\r\nX-Injected: 1')).toThrow(/CR and LF|white space/);
    expect(() => m.setRequestUri('sip:a b@c')).toThrow(/white space/);
    expect(m.serialize().equals(Buffer.from(REQUEST, 'latin1'))).toBe(true);
  });
});

describe('values of a list header, and edits across insert / remove / replace (finding 9)', () => {
  it('removeValue by index counts the values as received: 0 then 1 removes both, and 0 again finds nothing', () => {
    const m = request();
    expect(m.removeValue('route', 0)).toBe(true);
    expect(m.routes.map((r) => r.uri.host)).toEqual(['p2.example.com']);
    expect(m.removeValue('route', 1)).toBe(true);
    expect(m.removeValue('route', 0)).toBe(false);
    expect(sentEqualsSaid(m).routes).toEqual([]);
  });

  it('values read once and removed one after another (loose routing) all go', () => {
    const m = request();
    const [p1, p2] = m.routes;
    expect(m.removeValue('route', p1!)).toBe(true);
    m.setRequestUri('sip:bob@10.0.0.9'); // edits in between do not move them
    m.appendHeader('X-Between', 'x');
    expect(m.removeValue('route', p2!)).toBe(true);
    expect(m.removeValue('route', p2!)).toBe(false); // already gone
    expect(sentEqualsSaid(m).routes).toEqual([]);
  });

  it('setHeader, then removeValue of a value read before it: the replacement stands', () => {
    const m = request();
    const old = m.routes[0]!;
    m.setHeader('Route', '<sip:new.example.com;lr>');
    expect(m.removeValue('route', old)).toBe(false);
    expect(sentEqualsSaid(m).routes.map((r) => r.uri.host)).toEqual(['new.example.com']);
  });

  it('setHeader, then removeValue: a value of the new field read after it goes; the old value #0 is gone already', () => {
    const m = request();
    m.setHeader('Route', '<sip:a.example.com;lr>, <sip:b.example.com;lr>');
    expect(m.removeValue('route', 0)).toBe(false);
    expect(m.removeValue('route', m.routes[0]!)).toBe(true);
    expect(sentEqualsSaid(m).routes.map((r) => r.uri.host)).toEqual(['b.example.com']);
  });

  it('removeValue, then setHeader on the same field: the whole new value goes out', () => {
    const m = request();
    m.removeValue('route', 0);
    m.setHeader('Route', '<sip:c.example.com;lr>');
    expect(sentEqualsSaid(m).routes.map((r) => r.uri.host)).toEqual(['c.example.com']);
  });

  it('appendHeader, then removeValue of the appended value', () => {
    const m = request();
    m.appendHeader('Route', '<sip:appended.example.com;lr>');
    expect(m.routes.map((r) => r.uri.host)).toEqual(['p1.example.com', 'p2.example.com', 'appended.example.com']);
    expect(m.removeValue('route', m.routes[2]!)).toBe(true);
    expect(sentEqualsSaid(m).routes.map((r) => r.uri.host)).toEqual(['p1.example.com', 'p2.example.com']);
  });

  it('removeTopVia twice on a response removes two values', () => {
    const m = response();
    m.removeTopVia();
    expect(m.topVia?.branch).toBe('z9hG4bKmid');
    m.removeTopVia();
    expect(sentEqualsSaid(m).vias.map((v) => v.branch)).toEqual(['z9hG4bKuac1']);
  });
});

describe('edits inside a value compose with edits of the whole field (finding 9)', () => {
  const source = { address: '198.51.100.7', port: 40000 };

  it('received and rport (RFC 3581) show in topVia, and stay when our Via goes on top', () => {
    const m = request();
    for (const e of receivedEdits(m.topVia!, source.address, source.port)) m.replaceRange(e.start, e.end, e.text);
    expect([m.topVia?.received, m.topVia?.rport]).toEqual([source.address, source.port]);
    m.insertHeaderBefore('via', 'Via', 'SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsc.core');
    const sent = sentEqualsSaid(m);
    expect(sent.vias[1]!.received).toBe(source.address);
    expect(sent.vias[1]!.rport).toBe(source.port);
  });

  it('an edit inside a value, then a replacement of the whole field: the replacement wins', () => {
    const m = request();
    const top = m.topVia!;
    m.insertAt(top.end, ';received=198.51.100.7');
    m.setHeader('Via', 'SIP/2.0/UDP 192.0.2.77;branch=z9hG4bKreplaced');
    const sent = sentEqualsSaid(m);
    expect(sent.header('via')).toBe('SIP/2.0/UDP 192.0.2.77;branch=z9hG4bKreplaced');
  });

  it('a replacement, then an edit at offsets read before it: refused with a clear Error; read again, it applies', () => {
    const m = request();
    const stale = m.topVia!;
    m.setHeader('Via', 'SIP/2.0/UDP 192.0.2.77;branch=z9hG4bKreplaced;rport');
    expect(() => m.insertAt(stale.end, ';received=198.51.100.7')).toThrow(/no longer.*read the value again/);
    for (const e of receivedEdits(m.topVia!, source.address, source.port)) m.replaceRange(e.start, e.end, e.text);
    const sent = sentEqualsSaid(m);
    expect(sent.header('via')).toBe(`SIP/2.0/UDP 192.0.2.77;branch=z9hG4bKreplaced;rport=${source.port};received=${source.address}`);
  });

  it('two insertions at the same offset go out in the order they were made', () => {
    const m = request();
    const end = m.topVia!.end;
    m.insertAt(end, ';a=1');
    m.insertAt(end, ';b=2');
    expect(sentEqualsSaid(m).topVia?.params.get('a')).toBe('1');
    expect(m.header('via')).toMatch(/;rport;a=1;b=2$/);
  });

  it('removeValue of a Via after received was added to it', () => {
    const m = response();
    const mid = m.vias[1]!;
    m.insertAt(mid.end, ';received=192.0.2.99');
    expect(m.vias[1]!.received).toBe('192.0.2.99');
    expect(m.removeValue('via', mid)).toBe(true);
    expect(sentEqualsSaid(m).vias.map((v) => v.branch)).toEqual(['z9hG4bKsc.ours', 'z9hG4bKuac1']);
  });
});

describe('what an edit may not do', () => {
  it('no header injection: CR or LF in a value, or a name that is not a token, is refused', () => {
    const m = request();
    expect(() => m.setHeader('X-Test', 'a\r\nVia: SIP/2.0/UDP evil')).toThrow(/CR and LF/);
    expect(() => m.appendHeader('X-Test', 'a\nb')).toThrow(/CR and LF/);
    expect(() => m.appendHeader('X Test', 'a')).toThrow(/not a header name/);
    expect(() => m.insertAt(m.topVia!.end, ';x\r\nVia: evil')).toThrow(/CR and LF/);
    expect(m.edited).toBe(false);
    expect(m.serialize().equals(Buffer.from(REQUEST, 'latin1'))).toBe(true);
  });

  it('Content-Length is the framing serialize() owns: editing it throws', () => {
    const m = request();
    expect(() => m.setHeader('Content-Length', '100')).toThrow(/Content-Length/);
    expect(() => m.removeHeader('l')).toThrow(/Content-Length/);
    expect(() => m.appendHeader('Content-Length', '1')).toThrow(/Content-Length/);
  });

  it('the message as received is read-only and does not show the edits', () => {
    const m = request();
    m.setHeader('X-Test', 'changed');
    expect(m.received.header('x-test')).toBe('original');
    expect(() => m.received.setHeader('X-Test', 'x')).toThrow(/read-only/);
  });

  it('an unedited message serializes to its own buffer, without a copy', () => {
    const bytes = Buffer.from(REQUEST, 'latin1');
    const m = parseMessage(bytes);
    void m.routes;
    expect(m.serialize()).toBe(bytes);
  });
});

// ---------------------------------------------------------------------------------------------
// On the wire: the real proxy core on real UDP sockets, with a route that edits.

describe('a route that edits, through the proxy core on loopback UDP (finding 9)', () => {
  let transport: Transport;
  let uac: UdpPeer;
  let pbx: UdpPeer;
  let port: number;
  let route: (ctx: RequestContext) => RequestDecision = (ctx) => ctx.drop('no test running');

  beforeAll(async () => {
    uac = await UdpPeer.open();
    pbx = await UdpPeer.open();
    const config = defaultConfig();
    const admitted = AddressTable.build([{ id: 1, grp: 1, ip_addr: '127.0.0.1', mask: 32, port: 0, tag: null }]);
    const core = new ProxyCore({
      config,
      route: defineRoute({ request: (ctx) => route(ctx) }),
      acl: { match: (address, port, groups) => admitted.match(address, port, groups) },
      dispatch: NO_DISPATCH,
      logger: new Logger({ level: 'error' }),
    });
    transport = await createTransport({ listen: [parseListenSpec('udp:127.0.0.1:0')], onMessage: core.onInbound });
    core.attach(transport);
    port = transport.listeners[0]!.port;
  });

  afterAll(async () => {
    await transport?.close();
    await Promise.all([uac?.close(), pbx?.close()]);
  });

  function invite(callId: string, extra: string[] = []): string {
    return sip(`
INVITE sip:service@127.0.0.1:${port} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:${uac.port};branch=${unique('z9hG4bK')};rport
Max-Forwards: 70
From: <sip:caller@127.0.0.1:${uac.port}>;tag=${unique('f')}
To: <sip:service@127.0.0.1:${port}>
Call-ID: ${callId}
CSeq: 1 INVITE
${extra.map((l) => `${l}\n`).join('')}Content-Length: 0

`);
  }

  const byCallId = (id: string) => (r: Received) => r.msg.header('call-id') === id;

  it("the route's Max-Forwards is decremented, its second Request-URI goes out, its header edits hold", async () => {
    const callId = unique('edits-');
    route = (ctx) => {
      ctx.msg.setHeader('Max-Forwards', '10');
      ctx.msg.setRequestUri('sip:first@127.0.0.1');
      ctx.msg.setRequestUri(`sip:second@127.0.0.1:${pbx.port}`);
      ctx.msg.removeHeader('X-Drop');
      ctx.msg.appendHeader('X-Added', 'route');
      ctx.msg.setHeader('X-Added', 'route, set again');
      return ctx.relay();
    };
    uac.send(invite(callId, ['X-Drop: secret']), port);
    const got = await pbx.next(byCallId(callId));
    expect(got.msg.maxForwards).toBe(9);
    expect(got.msg.requestUriText).toBe(`sip:second@127.0.0.1:${pbx.port}`);
    expect(got.msg.header('x-drop')).toBeUndefined();
    expect(got.msg.headerFields('x-added')).toEqual(['route, set again']);
    // our Via on top, the sender's below it with received and rport (RFC 3581)
    expect(got.msg.vias[0]!.port).toBe(port);
    expect(got.msg.vias[1]!.rport).toBe(uac.port);
  });

  it("a route cannot edit Via (the core's, §16.6 step 8): it throws and the request gets 500", async () => {
    const callId = unique('edits-');
    route = (ctx) => {
      ctx.msg.insertHeaderBefore('via', 'Via', 'SIP/2.0/UDP 192.0.2.99:5999;branch=z9hG4bKnot-the-sender');
      return ctx.reply(486, 'Busy Here');
    };
    uac.send(invite(callId), port);
    const got = await uac.next(byCallId(callId));
    expect(got.msg.status).toBe(500);
    expect(got.msg.vias).toHaveLength(1);
    expect(got.msg.topVia!.port).toBe(uac.port);
  });

  it("a route may lower Max-Forwards but not raise it: 70 set on a request that came with 5 goes out as 4", async () => {
    const callId = unique('edits-');
    route = (ctx) => {
      ctx.msg.setHeader('Max-Forwards', '70');
      ctx.msg.setRequestUri(`sip:second@127.0.0.1:${pbx.port}`);
      return ctx.relay();
    };
    uac.send(invite(callId).replace('Max-Forwards: 70', 'Max-Forwards: 5'), port);
    const got = await pbx.next(byCallId(callId));
    expect(got.msg.maxForwards).toBe(4);
  });

  it('a stateless reply after the route edited To answers the request as received (§8.2.6.2)', async () => {
    const callId = unique('edits-');
    route = (ctx) => {
      ctx.msg.setHeader('To', '<sip:someone-else@192.0.2.99>');
      return ctx.reply(486, 'Busy Here');
    };
    uac.send(invite(callId), port);
    const got = await uac.next(byCallId(callId));
    expect(got.msg.status).toBe(486);
    expect(got.msg.vias.map((v) => v.branch)).toHaveLength(1);
    expect(got.msg.topVia!.port).toBe(uac.port);
    expect(got.msg.to.uri.user).toBe('service');
  });
});
