/**
 * Hostile SIP input for tests: valid messages of every kind a proxy sees (initial and
 * in-dialog requests, responses to our Via and to a foreign one) and mutations of them —
 * truncation, bit flips, inserted / deleted bytes, oversized datagrams, huge header values
 * and counts, missing and duplicated headers, bad Content-Length, invalid URIs, non-UTF-8,
 * NULs, LF-only / CR-only line ends, folds in odd places, empty datagrams, pure garbage.
 *
 * Everything is drawn from a seeded PRNG, and message #i depends only on (seed, i, context):
 * a failure at index i is regenerated with mutationAt(seed, i, ctx) without replaying the
 * 99,999 messages before it.
 */

/** The largest UDP payload over IPv4 (65,535 − 8 UDP − 20 IP header bytes). */
export const UDP_MAX_PAYLOAD = 65_507;

// ------------------------------------------------------------------ PRNG

/** mulberry32: small, fast, good enough to drive a fuzzer, and identical on every platform. */
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.next() / 4294967296) * n);
  }

  /** Uniform in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() / 4294967296 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.next() & 0xff;
    return b;
  }

  /** A token of [a-z0-9] characters. */
  token(len = 10): string {
    let s = '';
    for (let i = 0; i < len; i++) s += TOKEN_CHARS[this.int(TOKEN_CHARS.length)];
    return s;
  }
}

const TOKEN_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** The PRNG for message #index of a run: splitmix32-style mixing of seed and index. */
export function prngFor(seed: number, index: number): Prng {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return new Prng((h ^ (h >>> 16)) >>> 0);
}

// ------------------------------------------------------------------ valid messages

export interface MutationContext {
  /** The transport named in the request's own Via (what it is sent over). */
  transport: 'UDP' | 'TCP';
  /** The proxy's UDP listener: the Via it puts on requests, which responses carry back. */
  proxyUdpPort: number;
  /** The proxy listener these messages are sent to (Request-URIs and Routes name it). */
  proxyPort: number;
  /** The sender's port: requests' Via sent-by, where the proxy's replies go. */
  senderPort: number;
  /** Where responses to our Via go next (their second Via). */
  sinkPort: number;
  /** The PBX: in-dialog requests are routed to it. */
  pbxPort: number;
  /** Upper bound on one message's size (UDP_MAX_PAYLOAD for datagrams). */
  maxBytes: number;
}

export interface BaseMessage {
  name: string;
  /** Builds the message text (drawing its tokens from the rng) only when it is picked. */
  build(): string;
}

const CRLF = '\r\n';

function join(lines: string[], body = ''): string {
  return lines.join(CRLF) + CRLF + `Content-Length: ${Buffer.byteLength(body, 'latin1')}` + CRLF + CRLF + body;
}

const SDP = ['v=0', 'o=alice 2890844526 2890844526 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 49170 RTP/AVP 0 8 101', 'a=rtpmap:0 PCMU/8000', ''].join(CRLF);

/**
 * One valid message of each kind, with fresh tokens from rng when built. Every request's top Via is
 * the sender's (with rport, so replies come back to the sending socket); every response to
 * our Via has the proxy's Via on top and the sink's below it.
 */
export function baseMessages(rng: Prng, ctx: MutationContext): BaseMessage[] {
  const t = ctx.transport;
  const tl = t.toLowerCase();
  const me = `127.0.0.1:${ctx.senderPort}`;
  const proxy = `127.0.0.1:${ctx.proxyPort}`;
  const pbx = `127.0.0.1:${ctx.pbxPort}`;
  const via = (): string => `Via: SIP/2.0/${t} ${me};branch=z9hG4bK${rng.token(12)};rport`;
  const callId = (): string => `Call-ID: ${rng.token(16)}@127.0.0.1`;
  const from = (): string => `From: "Alice Ä" <sip:alice@${me}>;tag=${rng.token(8)}`;
  const toPbx = (tag?: string): string => `To: <sip:service@${proxy}>${tag ? `;tag=${tag}` : ''}`;
  const contact = `Contact: <sip:alice@${me};transport=${tl}>`;
  const cseq = (n: number, m: string): string => `CSeq: ${n} ${m}`;
  const mf = 'Max-Forwards: 70';
  const inviteBranch = `z9hG4bK${rng.token(12)}`;
  const ourVia = `Via: SIP/2.0/UDP 127.0.0.1:${ctx.proxyUdpPort};branch=z9hG4bKsc.${rng.token(16)}`;
  const sinkVia = `Via: SIP/2.0/UDP 127.0.0.1:${ctx.sinkPort};branch=z9hG4bK${rng.token(12)};rport=${ctx.sinkPort};received=127.0.0.1`;
  const respCommon = (status: string, method: string, n = 1): string[] => [
    `SIP/2.0 ${status}`,
    ourVia,
    sinkVia,
    `From: <sip:alice@127.0.0.1:${ctx.sinkPort}>;tag=${rng.token(8)}`,
    `To: <sip:service@${proxy}>;tag=${rng.token(8)}`,
    callId(),
    cseq(n, method),
  ];
  const routeToPbx = `Route: <sip:${proxy};transport=${tl};lr>, <sip:${pbx};lr>`;
  return [
    {
      name: 'INVITE',
      build: () => join(
        [`INVITE sip:service@${proxy} SIP/2.0`, via(), mf, from(), toPbx(), callId(), cseq(1, 'INVITE'), contact,
          'Allow: INVITE, ACK, CANCEL, BYE, OPTIONS', 'Supported: replaces, timer', 'User-Agent: hostile/1.0',
          'Subject: hello', 'Content-Type: application/sdp'],
        SDP,
      ),
    },
    {
      name: 'INVITE compact folded',
      build: () => join(
        [`INVITE sip:service@${proxy};user=phone SIP/2.0`, `v: SIP/2.0/${t} ${me};rport;branch=z9hG4bK${rng.token(12)}`,
          `f: Alice <sip:alice@${me}>;tag=${rng.token(8)}`, `t: "Service" <sip:service@${proxy}>`,
          `i: ${rng.token(20)}`, `CSeq: 7\r\n  INVITE`, 'Max-Forwards:   69', `m: <sip:alice@${me}>;expires=60`,
          'Subject: first line,\r\n\tsecond line', 'c: application/sdp'],
        SDP,
      ),
    },
    {
      name: 'ACK in dialog',
      build: () => join([`ACK sip:service@${pbx} SIP/2.0`, via(), mf, routeToPbx, from(), toPbx(rng.token(6)), callId(), cseq(1, 'ACK'), contact]),
    },
    {
      name: 'ACK non-2xx',
      build: () => join([`ACK sip:service@${proxy} SIP/2.0`, `Via: SIP/2.0/${t} ${me};branch=${inviteBranch};rport`, mf, from(), toPbx(rng.token(6)), callId(), cseq(1, 'ACK')]),
    },
    {
      name: 'CANCEL',
      build: () => join([`CANCEL sip:service@${proxy} SIP/2.0`, `Via: SIP/2.0/${t} ${me};branch=${inviteBranch};rport`, mf, from(), toPbx(), callId(), cseq(1, 'CANCEL')]),
    },
    {
      name: 'BYE in dialog',
      build: () => join([`BYE sip:service@${pbx} SIP/2.0`, via(), mf, routeToPbx, from(), toPbx(rng.token(6)), callId(), cseq(2, 'BYE'), 'Reason: Q.850;cause=16;text="Normal call clearing"']),
    },
    {
      name: 'OPTIONS to the proxy',
      build: () => join([`OPTIONS sip:${proxy} SIP/2.0`, via(), mf, from(), `To: <sip:${proxy}>`, callId(), cseq(1, 'OPTIONS'), 'Accept: application/sdp']),
    },
    {
      name: 'OPTIONS onward',
      build: () => join([`OPTIONS sip:service@${proxy} SIP/2.0`, via(), mf, from(), toPbx(), callId(), cseq(3, 'OPTIONS')]),
    },
    {
      name: 'REGISTER',
      build: () => join([`REGISTER sip:127.0.0.1 SIP/2.0`, via(), mf, `From: <sip:alice@127.0.0.1>;tag=${rng.token(8)}`, 'To: <sip:alice@127.0.0.1>', callId(), cseq(1, 'REGISTER'),
        `Contact: <sip:alice@${me};transport=${tl}>;expires=3600;+sip.instance="<urn:uuid:00000000-0000-1000-8000-${rng.token(12)}>"`,
        'Authorization: Digest username="alice", realm="example.com", nonce="abc", uri="sip:127.0.0.1", response="0123456789abcdef0123456789abcdef"',
        'Expires: 3600']),
    },
    {
      name: 'MESSAGE utf-8',
      build: () => join([`MESSAGE sip:service@${proxy} SIP/2.0`, via(), mf, from(), toPbx(), callId(), cseq(1, 'MESSAGE'), 'Content-Type: text/plain;charset=utf-8'],
        Buffer.from('Grüße, 世界 ✓', 'utf8').toString('latin1')),
    },
    { name: '100 to our Via', build: () => join(respCommon('100 Trying', 'INVITE')) },
    { name: '180 to our Via', build: () => join([...respCommon('180 Ringing', 'INVITE'), `Contact: <sip:service@${pbx}>`, `Record-Route: <sip:${proxy};lr>`]) },
    { name: '200 to our Via', build: () => join([...respCommon('200 OK', 'INVITE'), `Contact: <sip:service@${pbx}>`, `Record-Route: <sip:${proxy};lr>`, 'Content-Type: application/sdp'], SDP) },
    { name: '486 to our Via', build: () => join(respCommon('486 Busy Here', 'INVITE')) },
    { name: '200 BYE to our Via', build: () => join(respCommon('200 OK', 'BYE', 2)) },
    {
      name: 'response to a foreign Via',
      build: () => join(['SIP/2.0 200 OK', `Via: SIP/2.0/UDP 127.0.0.1:${ctx.sinkPort};branch=z9hG4bK${rng.token(12)}`, `From: <sip:a@127.0.0.1>;tag=${rng.token(6)}`,
        `To: <sip:b@127.0.0.1>;tag=${rng.token(6)}`, callId(), cseq(1, 'INVITE')]),
    },
  ];
}

// ------------------------------------------------------------------ mutators

type Mutator = (msg: Buffer, rng: Prng, ctx: MutationContext) => Buffer;

const latin1 = (b: Buffer): string => b.toString('latin1');
const bytesOf = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Split into head lines and body at the first CRLFCRLF (the whole thing is head if none). */
function split(msg: Buffer): { lines: string[]; body: string } {
  const text = latin1(msg);
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  return { lines: head.split('\r\n'), body: end < 0 ? '' : text.slice(end + 4) };
}

function assemble(lines: string[], body: string, terminated = true): Buffer {
  return bytesOf(lines.join('\r\n') + (terminated ? '\r\n\r\n' : '') + body);
}

const HEADER_FORMS: Record<string, RegExp> = {
  via: /^(via|v)\s*:/i,
  from: /^(from|f)\s*:/i,
  to: /^(to|t)\s*:/i,
  'call-id': /^(call-id|i)\s*:/i,
  cseq: /^cseq\s*:/i,
  'max-forwards': /^max-forwards\s*:/i,
  'content-length': /^(content-length|l)\s*:/i,
  contact: /^(contact|m)\s*:/i,
  route: /^route\s*:/i,
};

function headerIndexes(lines: string[], name: string): number[] {
  const re = HEADER_FORMS[name]!;
  const out: number[] = [];
  for (let i = 1; i < lines.length; i++) if (re.test(lines[i]!)) out.push(i);
  return out;
}

/** Replace the value of the first header named `name` (or add the header). */
function setValue(lines: string[], name: string, value: string, display = name): void {
  const at = headerIndexes(lines, name)[0];
  if (at === undefined) lines.push(`${display}: ${value}`);
  else lines[at] = lines[at]!.slice(0, lines[at]!.indexOf(':') + 1) + ' ' + value;
}

/** Bytes a parser has to be careful about. */
const SPECIAL = [0x00, 0x09, 0x0a, 0x0d, 0x20, 0x22, 0x25, 0x2c, 0x3a, 0x3b, 0x3c, 0x3e, 0x3d, 0x40, 0x5b, 0x5d, 0x5c, 0x7f, 0x80, 0xc0, 0xff, 0x3f, 0x26];

const INVALID_UTF8 = ['\xc3\x28', '\xa0\xa1', '\xe2\x28\xa1', '\xe2\x82\x28', '\xf0\x28\x8c\xbc', '\xf8\xa1\xa1\xa1\xa1', '\xc0\xaf', '\xed\xa0\x80', '\xff\xfe\xfd', '\xef\xbf\xbf', '\xc3'];

const BAD_URIS = [
  'sip:[::1', 'sip:[::1:5060', 'sip:::1]:5060', 'sip:[]', 'sip:[::1]]', 'sip:[[::1]]', 'sip:[::1]x', 'sip:[::1]:', 'sip:[zz::1]',
  'sip:a@[2001:db8::1%eth0]', 'sip:host:65536', 'sip:host:99999', 'sip:host:123456789012', 'sip:host:-1', 'sip:host:0x50',
  'sip:host:', 'sip:', 'sip:@', 'sip:@host', 'sip:user@', 'sip:user:pass@', 'sip::5060', 'sip:a@b@c', 'sip:%', 'sip:%zz@host',
  'sip:%c3%28@host', 'sip:host;', 'sip:host;=x', 'sip:host;;;', 'sip:host?', 'sip:host?&', 'sip:host?=x', 'sip:host?a',
  'sip:ho st', 'sip:host..example', 'sip:.host', 'sip:-', 'sip:999.999.999.999', 'sip:1.2.3.4.5', 'sips:', 'SIP:HOST', 'sip:127.0.0.1:0',
  'tel:', 'tel:+', 'tel:;phone-context=x', 'tel:abc', 'tel:+1%zz', 'http://example.com/', 'mailto:a@b', 'urn:uuid:x', 'x:',
  ':', '::', 'sip', '<sip:host>', 'sip:host>', '<', '>', '*', 'z' + 'z'.repeat(300) + ':x', 'sip:' + 'a.'.repeat(200) + 'com',
  'sip:' + '9'.repeat(40), 'sip:[' + '1:'.repeat(40) + ']', 'sip:host;maddr=', 'sip:host;transport=', 'sip:host;transport=sctp;lr',
  'sip:a\x00b@host', 'sip:h\x7fost', 'sip:\xc3\x28@host', 'sip:user@host:5060;lr=%',
];

const CONTENT_LENGTHS = ['-1', '-0', '99999999999', '4294967296', '9007199254740993', 'abc', '', ' ', '1.5', '0x10', '+5', '1 2', '١٢', '00000000000013', '0 ', '1e3', 'NaN', '\x00', '5,5'];

const MAX_FORWARDS = ['-1', '256', '99999999999', '', 'abc', '70 70', '0', '1', '+1', '0x46', '7\x000'];

const CSEQS = ['', '1', 'INVITE', '-1 INVITE', '4294967296 INVITE', '2147483648 INVITE', '99999999999999999999 INVITE', '1 BYE', '1  INVITE x', 'x INVITE', '1\tINVITE', '1 \xc3\x28', '0 INVITE'];

const START_LINES = (ctx: MutationContext): string[] => [
  `INVITE sip:service@127.0.0.1:${ctx.proxyPort} SIP/2.1`, `INVITE sip:service@127.0.0.1:${ctx.proxyPort} SIP/20`, `INVITE sip:service@127.0.0.1:${ctx.proxyPort} sip/2.0`,
  `INVITE sip:service@127.0.0.1:${ctx.proxyPort} HTTP/1.1`, `INVITE sip:service@127.0.0.1:${ctx.proxyPort}`, `INVITE  sip:service@127.0.0.1:${ctx.proxyPort} SIP/2.0`,
  `INVITE\tsip:service@127.0.0.1:${ctx.proxyPort}\tSIP/2.0`, `INVITE sip:service@127.0.0.1:${ctx.proxyPort} SIP/2.0 `, ` INVITE sip:x@127.0.0.1 SIP/2.0`,
  `INV(ITE sip:x@127.0.0.1 SIP/2.0`, `invite sip:x@127.0.0.1 SIP/2.0`, `I sip:x@127.0.0.1 SIP/2.0`, ` sip:x@127.0.0.1 SIP/2.0`, `INVITE  SIP/2.0`,
  'SIP/2.0 000 Zero', 'SIP/2.0 099 Low', 'SIP/2.0 700 High', 'SIP/2.0 1000 Long', 'SIP/2.0 2x0 OK', 'SIP/2.0 200', 'SIP/2.0 200 ', 'SIP/2.0  200 OK',
  'SIP/2.0', 'SIP/', 'SIP/2.0 20', 'SIP/2.0 200 \xc3\x28', 'SIP/2.0 200 OK\x00', 'SIP/3.0 200 OK', 'GET / HTTP/1.1', '\x00\x00\x00\x00',
];

const VIA_VALUES = (ctx: MutationContext): string[] => {
  const me = `127.0.0.1:${ctx.senderPort}`;
  return [
    `SIP/2.0/UDP ${me};branch=`, `SIP/2.0/UDP ${me};branch`, `SIP/2.0/UDP ${me};rport=99999`, `SIP/2.0/UDP ${me};rport=abc`, `SIP/2.0/UDP ${me};rport=-1`,
    `SIP/2.0/UDP ${me};rport=0`, `SIP/2.0/UDP ${me};received=`, `SIP/2.0/UDP ${me};received`, `SIP/2.0/UDP ${me};received=not..an..ip;rport`,
    `SIP/2.0/UDP ${me};ttl=256`, `SIP/2.0/UDP ${me};ttl=x`, `SIP/2.0/UDP ${me};maddr=not-an-ip;rport`, `SIP/2.0/UDP ${me};maddr=;rport`,
    `SIP/2.0/UDP [::1;branch=z9hG4bKx`, `SIP/2.0/UDP [::1]]:5060;branch=z9hG4bKx`, `SIP/2.0/UDP ::1]:5060;branch=z9hG4bKx`, `SIP/2.0/UDP [::1]:99999;branch=z9hG4bKx`,
    `SIP/2.0/UDP 127.0.0.1:65536;branch=z9hG4bKx`, `SIP/2.0/UDP 127.0.0.1:;branch=z9hG4bKx`, `SIP/2.0/UDP :5060;branch=z9hG4bKx`, `SIP/2.0/UDP ;branch=z9hG4bKx`,
    `SIP/2.0/ ${me};branch=z9hG4bKx`, `SIP/2.0 ${me}`, `SIP//UDP ${me}`, `/2.0/UDP ${me}`, `SIP/2.0/UDP`, `SIP/2.0/UDP ${me};;;`, `SIP/2.0/UDP ${me};=x`,
    `SIP/2.0/UDP ${me};branch="unterminated`, `SIP/2.0/UDP ${me};branch=z9hG4bK;rport`, `SIP/2.0/UDP ${me},,,`, `,`, `, , ,`, `SIP/2.0/UDP ${me} junk`,
    `SIP/2.0/XYZ ${me};branch=z9hG4bKx;rport`, `SIP/2.0/TLS ${me};branch=z9hG4bKx;rport`, `SIP/2.0/UDP h\xc3\x28st;branch=z9hG4bKx;rport`,
    `SIP/2.0/UDP 255.255.255.255:5060;branch=z9hG4bKx`, `SIP/2.0/UDP 0.0.0.0;branch=z9hG4bKx`, `SIP/2.0/UDP ${me};branch=z9hG4bKx;rport, garbage`,
  ];
};

const NAME_ADDRS = [
  '"unterminated <sip:a@127.0.0.1>', '"esc\\" <sip:a@127.0.0.1>', '"\\', '<sip:a@127.0.0.1', 'sip:a@127.0.0.1>', '<>', '<sip:a@127.0.0.1>>', '<<sip:a@127.0.0.1>>',
  'Bad "Name" <sip:a@127.0.0.1>', 'a,b <sip:a@127.0.0.1>', '<sip:a@127.0.0.1>;tag', '<sip:a@127.0.0.1>;tag=', '<sip:a@127.0.0.1>;;', '<sip:a@127.0.0.1>;=x',
  '<sip:a@127.0.0.1> junk', '"\xc3\x28" <sip:a@127.0.0.1>;tag=1', '<sip:a@127.0.0.1>;tag="x', '<sip:[::1>;tag=1', ';tag=1', '', ' ', '*', '<sip:a@127.0.0.1>, <sip:b@127.0.0.1>',
];

function spliceIn(msg: Buffer, at: number, insert: Buffer, remove = 0): Buffer {
  return Buffer.concat([msg.subarray(0, at), insert, msg.subarray(Math.min(msg.length, at + remove))]);
}

/** A position inside the header section (or anywhere when there is none). */
function headPos(msg: Buffer, rng: Prng): number {
  const end = msg.indexOf('\r\n\r\n');
  return rng.int((end < 0 ? msg.length : end) + 1);
}

function fill(len: number, rng: Prng): string {
  const unit = rng.pick(['x', 'a', '9', ' ', ';', ',', '%', '\xff', 'é', '"', '<', 'z9hG4bK']);
  return unit.repeat(Math.ceil(len / unit.length)).slice(0, len);
}

const MUTATORS: ReadonlyArray<readonly [name: string, weight: number, fn: Mutator]> = [
  ['truncate', 8, (m, rng) => m.subarray(0, rng.int(m.length + 1))],
  ['bit-flip', 10, (m, rng) => {
    const out = Buffer.from(m);
    const n = rng.range(1, 8);
    for (let i = 0; i < n && out.length > 0; i++) out[rng.int(out.length)]! ^= 1 << rng.int(8);
    return out;
  }],
  ['byte-set', 6, (m, rng) => {
    const out = Buffer.from(m);
    const n = rng.range(1, 6);
    for (let i = 0; i < n && out.length > 0; i++) out[rng.int(out.length)] = rng.chance(0.7) ? rng.pick(SPECIAL) : rng.next() & 0xff;
    return out;
  }],
  ['insert-bytes', 6, (m, rng) => {
    let out = m;
    const n = rng.range(1, 4);
    for (let i = 0; i < n; i++) {
      const ins = rng.chance(0.5) ? rng.bytes(rng.range(1, 32)) : Buffer.from(Array.from({ length: rng.range(1, 8) }, () => rng.pick(SPECIAL)));
      out = spliceIn(out, rng.int(out.length + 1), ins);
    }
    return out;
  }],
  ['delete-bytes', 6, (m, rng) => {
    let out = m;
    const n = rng.range(1, 4);
    for (let i = 0; i < n && out.length > 0; i++) out = spliceIn(out, rng.int(out.length), Buffer.alloc(0), rng.range(1, 24));
    return out;
  }],
  ['duplicate-range', 3, (m, rng) => {
    const a = rng.int(m.length + 1);
    const b = Math.min(m.length, a + rng.range(1, 200));
    return spliceIn(m, rng.int(m.length + 1), Buffer.from(m.subarray(a, b)));
  }],
  ['oversized', 1, (m, rng, ctx) => {
    const { lines, body } = split(m);
    const target = rng.chance(0.5) ? ctx.maxBytes : rng.range(8_000, ctx.maxBytes);
    const room = Math.max(0, target - m.length - 20);
    switch (rng.int(3)) {
      case 0: // a huge body, with its length announced (or not)
        return assemble(lines.filter((l) => !HEADER_FORMS['content-length']!.test(l)).concat(rng.chance(0.7) ? [`Content-Length: ${body.length + room}`] : []), body + fill(room, rng));
      case 1: // padding header lines
        return assemble([...lines, ...Array.from({ length: Math.floor(room / 100) }, (_x, i) => `X-Pad-${i}: ${fill(88, rng)}`)], body);
      default: // one header as big as the datagram allows
        return assemble([...lines, `X-Huge: ${fill(room, rng)}`], body);
    }
  }],
  ['huge-value', 2, (m, rng, ctx) => {
    const { lines, body } = split(m);
    const len = rng.chance(0.7) ? rng.range(1_000, 8_000) : rng.range(8_000, Math.max(8_000, ctx.maxBytes - m.length - 200));
    const which = rng.int(8);
    if (which === 0) setValue(lines, 'via', `SIP/2.0/UDP 127.0.0.1:${ctx.senderPort};rport;branch=z9hG4bK${fill(len, rng)}`, 'Via');
    else if (which === 1) setValue(lines, 'from', `"${fill(len, rng).replace(/"/g, 'q')}" <sip:a@127.0.0.1>;tag=1`, 'From');
    else if (which === 2) setValue(lines, 'call-id', 'c'.repeat(len), 'Call-ID');
    else if (which === 3 && lines[0]!.split(' ').length === 3) lines[0] = lines[0]!.replace(' sip:', ` sip:${'u'.repeat(len)}@`).replace('@127', '.127');
    else if (which === 4) lines.push(`Route: ${Array.from({ length: Math.floor(len / 24) }, () => `<sip:127.0.0.1:${ctx.pbxPort};lr>`).join(',')}`);
    else if (which === 5) lines.splice(1, 0, `Via: ${Array.from({ length: Math.floor(len / 40) }, (_x, i) => `SIP/2.0/UDP 127.0.0.1:${i % 65536};branch=z9hG4bK${i}`).join(',')}`);
    else if (which === 6) setValue(lines, 'contact', `<sip:a@127.0.0.1;${'p=v;'.repeat(Math.floor(len / 4))}>`, 'Contact');
    else lines.push(`Subject: ${fill(len, rng)}`);
    return assemble(lines, body);
  }],
  ['header-count', 1, (m, rng, ctx) => {
    const { lines, body } = split(m);
    const n = rng.pick([999, 1000, 1001, 5000, rng.range(100, 5000)]);
    const kind = rng.int(4);
    const extra = Array.from({ length: n }, (_x, i) =>
      kind === 0 ? `X:${i % 10}` : kind === 1 ? `Via: SIP/2.0/UDP 127.0.0.1:${ctx.senderPort};branch=z9hG4bK${i}` : kind === 2 ? `Route: <sip:127.0.0.1:${ctx.pbxPort};lr>` : 'Subject: s',
    );
    const out = assemble([lines[0]!, ...(rng.chance(0.5) ? extra : []), ...lines.slice(1), ...(rng.chance(0.5) ? [] : extra)], body);
    return out.length > ctx.maxBytes ? assemble([lines[0]!, ...extra.slice(0, 2000), ...lines.slice(1)], body) : out;
  }],
  ['drop-header', 8, (m, rng) => {
    const { lines, body } = split(m);
    const names = ['via', 'from', 'to', 'call-id', 'cseq', 'max-forwards', 'content-length'];
    const n = rng.range(1, 3);
    let out = lines;
    for (let i = 0; i < n; i++) {
      const idx = new Set(headerIndexes(out, rng.pick(names)));
      out = out.filter((_l, j) => !idx.has(j));
    }
    return assemble(out, body);
  }],
  ['duplicate-header', 6, (m, rng) => {
    const { lines, body } = split(m);
    const name = rng.pick(['from', 'to', 'call-id', 'cseq', 'max-forwards', 'content-length', 'via']);
    const at = headerIndexes(lines, name)[0];
    if (at === undefined) return m;
    let copy = lines[at]!;
    if (rng.chance(0.5)) copy = copy.replace(/[0-9]/, (d) => String((Number(d) + 1) % 10)).replace(/tag=./, 'tag=Q');
    lines.splice(rng.range(1, lines.length), 0, copy);
    return assemble(lines, body);
  }],
  ['bad-content-length', 7, (m, rng) => {
    const { lines, body } = split(m);
    const v = rng.chance(0.7) ? rng.pick(CONTENT_LENGTHS) : String(body.length + rng.pick([1, 2, 1000, -1, -body.length - 1]));
    const idx = headerIndexes(lines, 'content-length');
    const out = lines.filter((_l, j) => !idx.includes(j));
    out.splice(rng.range(1, out.length), 0, `${rng.pick(['Content-Length', 'l', 'content-length', 'CONTENT-LENGTH '])}: ${v}`);
    return assemble(out, body);
  }],
  ['bad-uri', 8, (m, rng) => {
    const { lines, body } = split(m);
    const uri = rng.pick(BAD_URIS);
    const where = rng.int(5);
    if (where === 0 && lines[0]!.split(' ').length >= 3 && !lines[0]!.startsWith('SIP/')) {
      const parts = lines[0]!.split(' ');
      parts[1] = uri;
      lines[0] = parts.join(' ');
    } else if (where === 1) setValue(lines, 'from', `<${uri}>;tag=${rng.token(4)}`, 'From');
    else if (where === 2) setValue(lines, 'to', rng.chance(0.5) ? `<${uri}>` : uri, 'To');
    else if (where === 3) setValue(lines, 'contact', `<${uri}>`, 'Contact');
    else lines.splice(1, 0, `Route: <${uri}>`);
    return assemble(lines, body);
  }],
  ['bad-via', 6, (m, rng, ctx) => {
    const { lines, body } = split(m);
    const v = rng.pick(VIA_VALUES(ctx));
    if (rng.chance(0.7)) setValue(lines, 'via', v, 'Via');
    else lines.splice(rng.range(1, lines.length), 0, `Via: ${v}`);
    return assemble(lines, body);
  }],
  ['bad-name-addr', 4, (m, rng) => {
    const { lines, body } = split(m);
    setValue(lines, rng.pick(['from', 'to', 'contact', 'route']), rng.pick(NAME_ADDRS), rng.pick(['From', 'To', 'Contact', 'Route']));
    return assemble(lines, body);
  }],
  ['bad-numbers', 5, (m, rng) => {
    const { lines, body } = split(m);
    if (rng.chance(0.5)) setValue(lines, 'cseq', rng.pick(CSEQS), 'CSeq');
    else setValue(lines, 'max-forwards', rng.pick(MAX_FORWARDS), 'Max-Forwards');
    return assemble(lines, body);
  }],
  ['bad-start-line', 5, (m, rng, ctx) => {
    const { lines, body } = split(m);
    lines[0] = rng.pick(START_LINES(ctx));
    return assemble(lines, body);
  }],
  ['non-utf8', 5, (m, rng) => {
    const at = rng.chance(0.8) ? headPos(m, rng) : rng.int(m.length + 1);
    return spliceIn(m, at, bytesOf(rng.pick(INVALID_UTF8)));
  }],
  ['nul', 4, (m, rng) => {
    let out = m;
    const n = rng.range(1, 3);
    for (let i = 0; i < n; i++) out = spliceIn(out, headPos(out, rng), Buffer.from([0]), rng.chance(0.5) ? 1 : 0);
    return out;
  }],
  ['line-ends', 5, (m, rng) => {
    const text = latin1(m);
    const style = rng.int(5);
    if (style === 0) return bytesOf(text.replace(/\r\n/g, '\n'));
    if (style === 1) return bytesOf(text.replace(/\r\n/g, '\r'));
    if (style === 2) return bytesOf(text.replace(/\r\n/g, '\n\r'));
    if (style === 3) return bytesOf(text.replace(/\r\n/g, () => rng.pick(['\r\n', '\n', '\r', '\r\r\n', '\n\n'])));
    return bytesOf(text.replace(/\r\n/g, '\r\r\n'));
  }],
  ['fold', 5, (m, rng) => {
    const text = latin1(m);
    const end = Math.max(0, text.indexOf('\r\n\r\n'));
    const n = rng.range(1, 3);
    let out = text;
    for (let i = 0; i < n; i++) {
      const fold = rng.pick(['\r\n ', '\r\n\t', '\r\n \r\n ', '\r\n   \t', '\n ', '\r\n \r\n']);
      const where = rng.int(4);
      // After the start line (a fold with nothing to continue), just before the empty line,
      // inside a header name / before the colon, or anywhere in the header section.
      let at: number;
      if (where === 0) at = out.indexOf('\r\n') + 2;
      else if (where === 1) at = end;
      else if (where === 2) at = Math.max(0, out.indexOf(':', rng.int(end + 1)));
      else at = rng.int(end + 1);
      out = out.slice(0, at) + fold + out.slice(at);
    }
    return bytesOf(out);
  }],
  ['shuffle-headers', 3, (m, rng) => {
    const { lines, body } = split(m);
    const head = lines.slice(1);
    for (let i = head.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [head[i], head[j]] = [head[j]!, head[i]!];
    }
    return assemble([lines[0]!, ...head], body, rng.chance(0.9));
  }],
  ['header-name', 3, (m, rng) => {
    const { lines, body } = split(m);
    const i = rng.range(1, Math.max(1, lines.length - 1));
    const l = lines[i] ?? '';
    const colon = l.indexOf(':');
    const forms = [l.replace(':', ' :'), l.replace(':', '\t:'), l.replace(':', ''), ': ' + l, l.replace(/^[^:]*/, ''), l.replace(/^[^:]*/, 'X Y'),
      l.replace(/^[^:]*/, 'Vía'), l.replace(/^[^:]*/, 'v\x00'), l.replace(/^[^:]*/, (s) => s.toUpperCase()), colon >= 0 ? l.slice(0, colon + 1) : l];
    lines[i] = rng.pick(forms);
    return assemble(lines, body);
  }],
  ['splice-messages', 3, (m, rng, ctx) => {
    const other = split(bytesOf(rng.pick(baseMessages(rng, ctx)).build()));
    const { lines, body } = split(m);
    const cut = rng.range(1, lines.length);
    return assemble([...lines.slice(0, cut), ...other.lines.slice(rng.range(1, other.lines.length))], rng.chance(0.5) ? body : other.body);
  }],
];

/**
 * Next hops an in-dialog request may name (Route, Request-URI) and second Vias a response
 * may carry: all on loopback or unroutable, so that what the proxy sends stays on this host.
 */
const NEXT_HOPS = (ctx: MutationContext): string[] => [
  `sip:127.0.0.1:${ctx.pbxPort};lr`, `sip:127.0.0.1:${ctx.proxyUdpPort};lr`, `sip:127.0.0.1:${ctx.proxyPort};transport=tcp;lr`, `sip:[::1]:${ctx.pbxPort};lr`,
  'sip:127.0.0.1:0;lr', 'sip:127.0.0.1:65535;transport=tcp;lr', 'sip:127.0.0.1:65535;transport=sctp;lr', 'sips:127.0.0.1;lr', 'tel:+15551234567', 'urn:service:sos',
  'sip:localhost;lr', 'sip:host.invalid;lr', `sip:127.0.0.1:${ctx.pbxPort};maddr=127.0.0.1;lr`, 'sip:127.0.0.1;maddr=;lr', 'sip:127.0.0.1;maddr=[::1];lr',
  'sip:127.0.0.1;maddr=host.invalid;lr', 'sip:127.0.0.1;transport=;lr', 'sip:127.0.0.1;transport=TCP;lr', `sip:127.0.0.1:${ctx.pbxPort}`, 'sip:0.0.0.0;lr',
  'sip:255.255.255.255;lr', 'sip:[::];lr', 'sip:[::ffff:127.0.0.1];lr', `sip:user@127.0.0.1:${ctx.proxyUdpPort};lr`, `sip:127.0.0.1:${ctx.proxyUdpPort}`,
];

const SECOND_VIAS = (ctx: MutationContext): string[] => [
  `SIP/2.0/UDP 127.0.0.1:${ctx.sinkPort};branch=z9hG4bKa;rport=0;received=127.0.0.1`, `SIP/2.0/UDP [::1]:${ctx.sinkPort};branch=z9hG4bKa`,
  `SIP/2.0/TCP 127.0.0.1:65535;branch=z9hG4bKa`, `SIP/2.0/UDP host.invalid:${ctx.sinkPort};branch=z9hG4bKa`, `SIP/2.0/UDP host.invalid;received=127.0.0.1;rport=${ctx.sinkPort}`,
  `SIP/2.0/UDP 127.0.0.1;maddr=127.0.0.1;rport=${ctx.sinkPort}`, `SIP/2.0/UDP 127.0.0.1;maddr=;rport=${ctx.sinkPort}`, `SIP/2.0/UDP 127.0.0.1;maddr=host.invalid`,
  `SIP/2.0/UDP 127.0.0.1;received=host.invalid;rport=${ctx.sinkPort}`, `SIP/2.0/UDP 127.0.0.1;received=;rport`, `SIP/2.0/UDP 127.0.0.1;received=[::1];rport=${ctx.sinkPort}`,
  `SIP/2.0/SCTP 127.0.0.1:${ctx.sinkPort}`, `SIP/2.0/UDP 255.255.255.255`, `SIP/2.0/UDP 0.0.0.0:${ctx.sinkPort}`, `SIP/2.0/UDP 127.0.0.1:${ctx.proxyUdpPort};branch=z9hG4bKsc.x`,
  `SIP/2.0/TCP 127.0.0.1:${ctx.sinkPort};sipctl-cid=999999`, `SIP/2.0/TCP 127.0.0.1:${ctx.sinkPort};sipctl-cid=-1`, `SIP/2.0/TCP 127.0.0.1:${ctx.sinkPort};sipctl-cid=`,
];

/** Mutations aimed at the proxy's routing rather than its parser: the message stays valid. */
const ROUTING_MUTATORS: ReadonlyArray<readonly [name: string, weight: number, fn: Mutator]> = [
  ['route-set', 5, (m, rng, ctx) => {
    const { lines, body } = split(m);
    const hops = NEXT_HOPS(ctx);
    const routeIdx = new Set(headerIndexes(lines, 'route'));
    const out = lines.filter((_l, j) => !routeIdx.has(j));
    const n = rng.range(0, 3);
    const route = Array.from({ length: n }, () => `<${rng.pick(hops)}>`);
    // Often with our own entry first, as after our Record-Route (§16.4 loose routing).
    if (rng.chance(0.6)) route.unshift(`<sip:127.0.0.1:${ctx.proxyPort};lr>`);
    if (route.length > 0) out.splice(1, 0, `Route: ${route.join(rng.chance(0.5) ? ', ' : ',')}`);
    if (rng.chance(0.5) && !out[0]!.startsWith('SIP/')) {
      const parts = out[0]!.split(' ');
      if (parts.length === 3) out[0] = `${parts[0]} ${rng.pick(hops).replace(/;lr$/, rng.chance(0.5) ? '' : ';lr')} ${parts[2]}`;
    }
    // In dialog: a To tag (the default route follows Route only then).
    const to = headerIndexes(out, 'to')[0];
    if (to !== undefined && !/;tag=/i.test(out[to]!)) out[to] += `;tag=${rng.token(6)}`;
    return assemble(out, body);
  }],
  ['own-via', 2, (m, rng, ctx) => {
    const { lines, body } = split(m);
    // A request that already passed us (a spiral), or came back unchanged (a loop, §16.3 item 4).
    lines.splice(rng.range(1, lines.length), 0, `Via: SIP/2.0/UDP 127.0.0.1:${ctx.proxyUdpPort};branch=z9hG4bKsc.${rng.token(rng.chance(0.5) ? 16 : 3)}`);
    return assemble(lines, body);
  }],
  ['second-via', 3, (m, rng, ctx) => {
    const { lines, body } = split(m);
    const vias = headerIndexes(lines, 'via');
    const v = rng.pick(SECOND_VIAS(ctx));
    if (vias.length >= 2) lines[vias[1]!] = `Via: ${v}`;
    else lines.splice((vias[0] ?? 0) + 1, 0, `Via: ${v}`);
    return assemble(lines, body);
  }],
  ['max-forwards-edge', 1, (m, rng) => {
    const { lines, body } = split(m);
    setValue(lines, 'max-forwards', rng.pick(['0', '1', '255']), 'Max-Forwards');
    return assemble(lines, body);
  }],
  ['proxy-require', 1, (m, rng) => {
    const { lines, body } = split(m);
    lines.push(rng.pick(['Proxy-Require: foo', 'Proxy-Require: ', 'Proxy-Require: a, b,,c', 'Require: 100rel', 'Proxy-Require: \xc3\x28']));
    return assemble(lines, body);
  }],
];

/** Replacements of the whole message: nothing SIP-shaped survives. */
const REPLACEMENTS: ReadonlyArray<readonly [name: string, weight: number, fn: (rng: Prng, ctx: MutationContext) => Buffer]> = [
  ['empty', 1, () => Buffer.alloc(0)],
  ['tiny', 2, (rng) => (rng.chance(0.5) ? rng.bytes(rng.range(1, 40)) : bytesOf(rng.pick(['\r\n', '\r\n\r\n', '\n', 'SIP/2.0', 'INVITE', ' ', '\x00', 'SIP/2.0 200 OK\r\n\r\n', 'A B SIP/2.0\r\n\r\n'])))],
  ['garbage', 3, (rng, ctx) => rng.bytes(rng.chance(0.9) ? rng.range(32, 4000) : rng.range(4000, ctx.maxBytes))],
  ['token-soup', 2, (rng) => {
    const words = ['INVITE', 'SIP/2.0', 'Via:', 'v:', 'From:', 'To:', '<sip:', '>', ';tag=', ';branch=z9hG4bK', 'Call-ID:', 'CSeq:', '1', '70', 'Content-Length:', '\r\n', '\r\n\r\n', ' ', ':', ';', ',', '"', '[', ']', '@', '127.0.0.1', '5060', '\t', 'SIP/2.0/UDP', 'rport', '\n'];
    let s = '';
    const n = rng.range(5, 400);
    for (let i = 0; i < n; i++) s += rng.pick(words);
    return bytesOf(s);
  }],
];

const ALL_MUTATORS = [...MUTATORS, ...ROUTING_MUTATORS];
const MUTATOR_TOTAL = ALL_MUTATORS.reduce((s, [, w]) => s + w, 0);
const REPLACEMENT_TOTAL = REPLACEMENTS.reduce((s, [, w]) => s + w, 0);

function pickWeighted<T extends readonly [string, number, unknown]>(items: readonly T[], total: number, rng: Prng): T {
  let r = rng.int(total);
  for (const it of items) {
    r -= it[1];
    if (r < 0) return it;
  }
  return items[items.length - 1]!;
}

export interface Mutation {
  index: number;
  /** The base message it came from ('-' for a replacement). */
  base: string;
  /** The mutators applied, in order. */
  steps: string[];
  bytes: Buffer;
}

/** Message #index of the run with this seed: a mutation of a valid message, or garbage. */
export function mutationAt(seed: number, index: number, ctx: MutationContext): Mutation {
  const rng = prngFor(seed, index);
  if (rng.chance(0.06)) {
    const [name, , fn] = pickWeighted(REPLACEMENTS, REPLACEMENT_TOTAL, rng);
    return { index, base: '-', steps: [name], bytes: clip(fn(rng, ctx), ctx) };
  }
  const base = rng.pick(baseMessages(rng, ctx));
  let bytes = bytesOf(base.build());
  const steps: string[] = [];
  const n = rng.chance(0.6) ? 1 : rng.chance(0.75) ? 2 : 3;
  for (let i = 0; i < n; i++) {
    const [name, , fn] = pickWeighted(ALL_MUTATORS, MUTATOR_TOTAL, rng);
    bytes = fn(bytes, rng, ctx);
    steps.push(name);
  }
  return { index, base: base.name, steps, bytes: clip(bytes, ctx) };
}

function clip(b: Buffer, ctx: MutationContext): Buffer {
  return b.length > ctx.maxBytes ? b.subarray(0, ctx.maxBytes) : b;
}

/** Bytes as a JS string literal (printable ASCII kept, everything else escaped), for reports. */
export function escapeBytes(b: Buffer, max = 4000): string {
  let s = '';
  const n = Math.min(b.length, max);
  for (let i = 0; i < n; i++) {
    const c = b[i]!;
    if (c === 0x0d) s += '\\r';
    else if (c === 0x0a) s += '\\n';
    else if (c === 0x5c) s += '\\\\';
    else if (c === 0x27) s += "\\'";
    else if (c >= 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return `'${s}'${b.length > max ? ` ... (${b.length} bytes)` : ''}`;
}

/**
 * Hand-written hostile messages, sent before the random ones so that every run covers them:
 * the limits named in the brief (the largest datagram, 5,000 headers, nothing at all) and the
 * inputs that found bugs (kept so that the test fails for as long as the bug exists).
 */
export function directedCases(ctx: MutationContext): Array<{ name: string; bytes: Buffer }> {
  const me = `127.0.0.1:${ctx.senderPort}`;
  const proxy = `127.0.0.1:${ctx.proxyPort}`;
  const request = (method: string, uri: string, extra: string[], id: string, body = ''): string =>
    join([`${method} ${uri} SIP/2.0`, `Via: SIP/2.0/${ctx.transport} ${me};branch=z9hG4bK${id};rport`, 'Max-Forwards: 70', `From: <sip:alice@${me}>;tag=f${id}`,
      `To: <sip:service@${proxy}>${method === 'INVITE' ? '' : ';tag=t1'}`, `Call-ID: directed-${id}`, `CSeq: 1 ${method}`, ...extra], body);
  // A request() has 6 fields above plus Content-Length; padding makes it `fields` in all.
  const padding = (fields: number): string[] => Array.from({ length: fields - 7 }, () => 'X: y');
  const bigBody = 'v'.repeat(UDP_MAX_PAYLOAD - Buffer.byteLength(request('INVITE', `sip:service@${proxy}`, [], 'max', '')) - 6);
  return [
    { name: 'empty datagram', bytes: Buffer.alloc(0) },
    { name: '64 NULs', bytes: Buffer.alloc(64) },
    // An empty maddr in a Route or Request-URI names the host '' as the next hop.
    { name: 'Route with an empty maddr', bytes: bytesOf(request('BYE', `sip:service@127.0.0.1:${ctx.pbxPort}`, [`Route: <sip:${proxy};lr>, <sip:127.0.0.1;maddr=;lr>`], 'maddr1')) },
    { name: 'Request-URI with an empty maddr', bytes: bytesOf(request('BYE', 'sip:service@127.0.0.1;maddr=', [`Route: <sip:${proxy};lr>`], 'maddr2')) },
    // At the parser's limit of 1,000 fields: what the proxy adds must not make it unreadable.
    { name: 'INVITE with 999 header fields', bytes: bytesOf(request('INVITE', `sip:service@${proxy}`, padding(999), 'fields999')) },
    { name: 'INVITE with 5,000 header fields', bytes: bytesOf(request('INVITE', `sip:service@${proxy}`, padding(5000), 'fields5000')) },
    { name: `INVITE of ${UDP_MAX_PAYLOAD} bytes`, bytes: bytesOf(request('INVITE', `sip:service@${proxy}`, [], 'max', bigBody)).subarray(0, ctx.maxBytes) },
  ];
}

/**
 * A mutation made framable on a stream (RFC 3261 §18.3): the header section ends at the first
 * CRLFCRLF (one is added when there is none) and a single Content-Length gives the exact body
 * length. Without this most mutations would break the stream and the connection would close
 * after its first few messages; with it, the proxy reads each one as a message.
 */
export function reframe(msg: Buffer): Buffer {
  const text = latin1(msg);
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  const body = end < 0 ? '' : text.slice(end + 4);
  const lines = head.split('\r\n').filter((l, i) => i === 0 || !/^(content-length|l)[ \t]*:/i.test(l));
  return bytesOf(`${lines.join('\r\n')}\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
}
