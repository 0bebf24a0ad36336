import { describe, expect, it } from 'vitest';
import { parseMessage } from '../../src/sip/parse.js';
import { SipParseError } from '../../src/sip/errors.js';

const crlf = (s: string): Buffer => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'utf8');

const INVITE = crlf(`INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds, SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bKabc;received=10.0.0.9
v: SIP/2.0/UDP [2001:db8::9]:5062;branch=z9hG4bKv6;rport
Max-Forwards: 70
To: Bob <sip:bob@biloxi.example.com>
f: "Alice \\"A\\" Liddell" <sip:alice@atlanta.example.com;transport=tcp>;tag=1928301774
i: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:alice@pc33.atlanta.example.com>, "Two, comma" <sip:two@[2001:db8::1]:5080;lr>;q=0.5
Route: <sip:p1.example.com;lr>,
 <sip:p2.example.com;lr>
Subject: I know you're
 there, pick up the phone
l: 4
Content-Type: text/plain

bodyEXTRA`);

describe('parseMessage', () => {
  const msg = parseMessage(INVITE);

  it('reads the request line', () => {
    expect(msg.isRequest).toBe(true);
    expect(msg.method).toBe('INVITE');
    expect(msg.requestUriText).toBe('sip:bob@biloxi.example.com');
    expect(msg.uri.user).toBe('bob');
    expect(msg.uri.host).toBe('biloxi.example.com');
    expect(msg.version).toBe('SIP/2.0');
  });

  it('understands compact forms and case-insensitive names', () => {
    expect(msg.header('Call-ID')).toBe('a84b4c76e66710@pc33.atlanta.example.com');
    expect(msg.header('i')).toBe('a84b4c76e66710@pc33.atlanta.example.com');
    expect(msg.header('CALL-id')).toBe('a84b4c76e66710@pc33.atlanta.example.com');
    expect(msg.from.tag).toBe('1928301774');
    expect(msg.from.displayName).toBe('Alice "A" Liddell');
    expect(msg.from.uri.transport).toBe('tcp');
    expect(msg.to.displayName).toBe('Bob');
    expect(msg.to.tag).toBeUndefined();
  });

  it('splits Via across fields and commas, with IPv6 and rport', () => {
    const vias = msg.vias;
    expect(vias.map((v) => v.transport)).toEqual(['UDP', 'TCP', 'UDP']);
    expect(vias[0]!.host).toBe('pc33.atlanta.example.com');
    expect(vias[1]!.port).toBe(5070);
    expect(vias[1]!.received).toBe('10.0.0.9');
    expect(vias[2]!.host).toBe('2001:db8::9');
    expect(vias[2]!.hostType).toBe('ipv6');
    expect(vias[2]!.rport).toBeNull();
    expect(msg.topVia!.branch).toBe('z9hG4bK776asdhds');
  });

  it('splits Contact and Route respecting quotes and brackets, and unfolds', () => {
    const contacts = msg.contacts;
    expect(contacts).not.toBe('*');
    if (contacts === '*') return;
    expect(contacts).toHaveLength(2);
    expect(contacts[1]!.displayName).toBe('Two, comma');
    expect(contacts[1]!.uri.host).toBe('2001:db8::1');
    expect(contacts[1]!.uri.port).toBe(5080);
    expect(contacts[1]!.params.get('q')).toBe('0.5');
    expect(msg.routes.map((r) => r.uri.host)).toEqual(['p1.example.com', 'p2.example.com']);
    expect(msg.header('subject')).toBe("I know you're there, pick up the phone");
  });

  it('takes the body by Content-Length and reads CSeq and Max-Forwards', () => {
    expect(msg.body.toString()).toBe('body');
    expect(msg.cseq).toEqual({ seq: 314159, method: 'INVITE' });
    expect(msg.maxForwards).toBe(70);
  });

  it('serializes unedited messages without copying, dropping bytes past the body', () => {
    expect(msg.serialize().toString()).toBe(INVITE.toString().replace(/EXTRA$/, ''));
  });

  it('applies edits to slices of the original bytes', () => {
    const m = parseMessage(INVITE);
    m.insertHeaderBefore('via', 'Via', 'SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKproxy');
    m.removeValue('route', 0);
    m.removeValue('via', 1);
    m.setHeader('max-forwards', '69');
    m.appendHeader('X-Proxied', 'You betcha');
    m.setRequestUri('sip:bob@10.0.0.21:5060');
    const out = parseMessage(m.serialize());
    expect(out.requestUriText).toBe('sip:bob@10.0.0.21:5060');
    expect(out.vias.map((v) => v.branch)).toEqual(['z9hG4bKproxy', 'z9hG4bK776asdhds', 'z9hG4bKv6']);
    expect(out.routes.map((r) => r.uri.host)).toEqual(['p2.example.com']);
    expect(out.maxForwards).toBe(69);
    expect(out.header('x-proxied')).toBe('You betcha');
    expect(out.body.toString()).toBe('body');
    // untouched headers are byte-identical
    expect(out.serialize().includes(Buffer.from('f: "Alice \\"A\\" Liddell"'))).toBe(true);
  });

  it('adds Content-Length when missing and takes the rest of a datagram as the body', () => {
    const m = parseMessage(crlf('OPTIONS sip:x@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\n\nhello'));
    expect(m.body.toString()).toBe('hello');
    expect(parseMessage(m.serialize()).contentLength).toBe(5);
  });

  it('parses responses', () => {
    const r = parseMessage(crlf('SIP/2.0 180 Ringing\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\nContent-Length: 0\n\n'));
    expect(r.isRequest).toBe(false);
    expect(r.status).toBe(180);
    expect(r.reason).toBe('Ringing');
  });

  it.each([
    ['garbage', 'hello world'],
    ['no blank line', 'INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n'],
    ['header without colon', 'INVITE sip:a@b SIP/2.0\r\nVia SIP/2.0/UDP h\r\n\r\n'],
    ['content-length too large', 'INVITE sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nabc'],
    ['content-length not a number', 'INVITE sip:a@b SIP/2.0\r\nContent-Length: ten\r\n\r\n'],
    ['bad status code', 'SIP/2.0 20 OK\r\n\r\n'],
    ['bad version', 'INVITE sip:a@b HTTP/1.1\r\n\r\n'],
  ])('rejects %s', (_name, text) => {
    expect(() => parseMessage(Buffer.from(text, 'latin1'))).toThrow(SipParseError);
  });

  it('throws on a bad value only when it is asked for', () => {
    const m = parseMessage(crlf('INVITE sip:a@b SIP/2.0\nCSeq: abc INVITE\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n\n'));
    expect(m.topVia!.host).toBe('h');
    expect(() => m.cseq).toThrow(SipParseError);
    expect(() => m.from).toThrow(/missing From/);
  });
});

describe('Via fast path', () => {
  // The common `SIP/2.0/UDP host:port` head takes a fast path; the same Via written with
  // white space around the slashes (equally valid, §25.1 SLASH = SWS "/" SWS) takes the
  // general one. Both must agree, value for value, or both refuse.
  const pieces = ['SIP/2.0/', 'sip/2.0/', 'SIP/2.0/'];
  const transports = ['UDP', 'tcp', 'Tls', 'SCTP', 'UDP2', 'U-DP', ''];
  const hosts = ['10.0.0.1', '256.1.1.1', '1.2.3', 'pc33.Atlanta.example.com', 'a..b', '-x.com', 'host_1', '10.0.0.1.', '[2001:db8::1]', 'h@st', ''];
  const ports = ['', ':5060', ':0', ':65535', ':65536', ':', ':5o60', ':123456'];
  const params = ['', ';branch=z9hG4bK1', ';rport;branch=z9hG4bK2', ';received=1.2.3.4;rport=5', ';branch=', ';ttl=300', ' ;branch=z9hG4bK3'];
  const parse = (v: string) => {
    try {
      const via = parseMessage(Buffer.from(`SIP/2.0 200 OK\r\nVia: ${v}\r\nContent-Length: 0\r\n\r\n`, 'latin1')).topVia!;
      return { transport: via.transport, host: via.host, hostType: via.hostType, port: via.port, params: [...via.params], rport: via.rport, start: via.start };
    } catch (err) {
      return (err as Error).name;
    }
  };
  it('agrees with the general parser on every combination', () => {
    let n = 0;
    for (const p of pieces)
      for (const t of transports)
        for (const h of hosts)
          for (const port of ports)
            for (const q of params) {
              const v = `${p}${t} ${h}${port}${q}`;
              const slow = v.replace(/^(sip)\/2\.0\//i, '$1 / 2.0 / ');
              const a = parse(v);
              const b = parse(slow);
              if (typeof a === 'object' && typeof b === 'object') b.start = a.start;
              expect(a, v).toEqual(b);
              n++;
            }
    expect(n).toBeGreaterThan(10_000);
  });
});

describe('secondVia', () => {
  // What a proxy relays a response to (§16.7 step 9, §18.2.2): the Via below the top one,
  // however the Vias are spread over fields, the same as vias[1] — without parsing the rest.
  const layouts: Array<[string, string[]]> = [
    ['one field, one value', ['SIP/2.0/UDP a.example.com:5060;branch=z9hG4bK1']],
    ['two fields', ['SIP/2.0/UDP a.example.com;branch=z9hG4bK1', 'SIP/2.0/TCP 10.0.0.2:5070;branch=z9hG4bK2']],
    ['one field, two values', ['SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP 10.0.0.2:5070;branch=z9hG4bK2']],
    ['two values then more fields', ['SIP/2.0/UDP a;branch=z9hG4bK1,SIP/2.0/UDP b:1;branch=z9hG4bK2', 'SIP/2.0/UDP c;branch=z9hG4bK3']],
    ['a comma only inside a quoted parameter', ['SIP/2.0/UDP a;branch=z9hG4bK1;x="1,2"', 'SIP/2.0/UDP [2001:db8::1]:5080;branch=z9hG4bK2;received=10.0.0.9']],
    ['three fields', ['SIP/2.0/UDP a;branch=z9hG4bK1', 'SIP/2.0/UDP b;branch=z9hG4bK2;rport=7', 'SIP/2.0/UDP c;branch=z9hG4bK3']],
  ];
  it.each(layouts)('%s: the same Via as vias[1]', (_name, fields) => {
    const text = `SIP/2.0 200 OK\r\n${fields.map((f) => `Via: ${f}\r\n`).join('')}Content-Length: 0\r\n\r\n`;
    const alone = parseMessage(Buffer.from(text, 'latin1')).secondVia;
    const all = parseMessage(Buffer.from(text, 'latin1')).vias;
    expect(alone).toEqual(all[1]);
  });

  it('is the new second Via after the top one is removed', () => {
    const msg = parseMessage(Buffer.from('SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2\r\nVia: SIP/2.0/UDP c;branch=z9hG4bK3\r\nContent-Length: 0\r\n\r\n', 'latin1'));
    expect(msg.secondVia?.host).toBe('b');
    msg.removeTopVia();
    expect(msg.secondVia?.host).toBe('c');
    msg.removeTopVia();
    expect(msg.secondVia).toBeUndefined();
  });
});

describe('removeTopVia', () => {
  const resp = (vias: string) => parseMessage(Buffer.from(`SIP/2.0 200 OK\r\n${vias}From: <sip:a@b>;tag=1\r\nContent-Length: 0\r\n\r\n`, 'latin1'));
  it.each([
    ['one value per field', 'Via: SIP/2.0/UDP a;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b;branch=z9hG4bK2\r\n'],
    ['two values in one field', 'Via: SIP/2.0/UDP a;branch=z9hG4bK1 , SIP/2.0/UDP b;branch=z9hG4bK2\r\n'],
    ['folded', 'Via: SIP/2.0/UDP a;branch=z9hG4bK1,\r\n SIP/2.0/UDP b;branch=z9hG4bK2\r\nVia: SIP/2.0/TCP c;branch=z9hG4bK3\r\n'],
    ['compact form', 'v: SIP/2.0/UDP a;branch=z9hG4bK1\r\nv: SIP/2.0/UDP b;branch=z9hG4bK2\r\n'],
  ])('does what removeValue(via, 0) does: %s', (_n, vias) => {
    const a = resp(vias);
    a.removeTopVia();
    const b = resp(vias);
    b.removeValue('via', 0);
    expect(parseMessage(a.serialize()).vias.map((v) => v.host)).toEqual(parseMessage(b.serialize()).vias.map((v) => v.host));
    expect(parseMessage(a.serialize()).vias[0]!.host).toBe('b');
  });
});
