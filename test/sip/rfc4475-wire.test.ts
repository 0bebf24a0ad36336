/**
 * RFC 4475 on the wire. Every torture message whose outcome the RFC names — and every one it
 * calls invalid — goes as one UDP datagram to a real `sipctl serve`, from the address and port
 * its top Via says replies go to, and what happens is checked against `wire` in
 * test/fixtures/rfc4475/expectations.ts: the response (400 with the parser's reason, 416, 420
 * with Unsupported, 483, 505), or a drop — with the drop and its reason in the proxy's debug
 * log — or a forward to the next hop. Where the RFC also says what happens on a stream (clerr,
 * ncl, mcl01), the message is sent on a TCP connection too.
 *
 * Each message comes from its own loopback address (127.x.y.z, all of 127/8 is loopback on
 * Linux), so a late answer to one can never be taken for the answer to the next.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SipMessage } from '../../src/sip/message.js';
import { parseMessage } from '../../src/sip/parse.js';
import { VECTORS, type Outcome, type Rfc4475Vector, type WireOutcome } from '../fixtures/rfc4475/expectations.js';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { UdpPeer, unique } from '../helpers/sip-peer.js';

const FIXTURES = new URL('../fixtures/rfc4475/', import.meta.url);
const fixture = (name: string): Buffer => readFileSync(new URL(`${name}.dat`, FIXTURES));

let proxy: ProxyProcess;
let pbx: UdpPeer;
// A /24 of loopback of our own for the senders: one address per message.
const NET = `127.${1 + Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 256)}`;
let host = 0;

beforeAll(async () => {
  pbx = await UdpPeer.open();
  proxy = await startProxyProcess({
    args: ['--listen', 'udp:127.0.0.1:0', '--listen', 'tcp:127.0.0.1:0', '--log-level', 'debug', '--forward', `sip:127.0.0.1:${pbx.port}`],
    setup: [['address', 'add', '1', '127.0.0.0', '8']],
  });
});

afterAll(async () => {
  await proxy?.stop();
  await pbx?.close();
});

/** A UDP socket at address:port that keeps what arrives, parsed. */
class Sender {
  readonly received: SipMessage[] = [];
  private constructor(
    readonly socket: UdpSocket,
    readonly address: string,
    readonly port: number,
  ) {
    socket.on('message', (raw) => {
      try {
        this.received.push(parseMessage(raw));
      } catch {
        // not a SIP message: nothing the proxy would send
      }
    });
  }

  static async open(port: number): Promise<Sender> {
    host = (host % 254) + 1;
    const address = `${NET}.${host}`;
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, address, () => resolve());
    });
    return new Sender(socket, address, port);
  }

  /** The first message to arrive within ms, or undefined. */
  async next(ms: number): Promise<SipMessage | undefined> {
    const end = Date.now() + ms;
    while (this.received.length === 0 && Date.now() < end) await sleep(20);
    return this.received[0];
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Where replies to this message go (§18.2.2): the top Via's sent-by port, else 5060. */
function replyPort(bytes: Buffer): number {
  try {
    return parseMessage(bytes).topVia?.port ?? 5060;
  } catch {
    return 5060;
  }
}

function callIdOf(bytes: Buffer): string | undefined {
  try {
    return parseMessage(bytes).header('call-id');
  } catch {
    return undefined;
  }
}

/** The proxy's debug lines about this source; waits up to 3 s for one matching. */
async function logLine(pattern: RegExp): Promise<string> {
  const end = Date.now() + 3000;
  for (;;) {
    const line = proxy.stderr().split('\n').find((l) => pattern.test(l));
    if (line !== undefined) return line;
    if (Date.now() > end) throw new Error(`no log line matching ${pattern} in:\n${proxy.stderr().slice(-2000)}`);
    await sleep(25);
  }
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A logged field's value (`key=value` or `key="json"`). */
function field(line: string, key: string): string | undefined {
  const m = new RegExp(`\\b${key}=("(?:[^"\\\\]|\\\\.)*"|\\S+)`).exec(line);
  if (m === null) return undefined;
  return m[1]!.startsWith('"') ? (JSON.parse(m[1]!) as string) : m[1];
}

function describeWire(w: WireOutcome): string {
  if ('reply' in w) return `answered ${w.reply} ${String(w.reason)}${w.unsupported ? ` with Unsupported: ${w.unsupported}` : ''}`;
  if ('forward' in w) return 'forwarded to the next hop';
  if (w.drop === 'unparsable') return `dropped as not framable, the reason logged${w.tcp ? `; on TCP the connection ${w.tcp === 'closes' ? 'is closed' : 'waits for the rest'}` : ''}`;
  if (w.drop === 'unaddressable') return `refused with ${w.status} but dropped: no reply can be built`;
  return 'dropped: a response whose top Via is not ours';
}

/** Sends one message and checks what the proxy does with it. */
async function expectOnTheWire(bytes: Buffer, wire: WireOutcome, outcome: Outcome): Promise<void> {
  const sender = await Sender.open(replyPort(bytes));
  const source = `source=udp:${escape(`${sender.address}:${sender.port}`)}`;
  const callId = callIdOf(bytes);
  const atPbx = (r: { raw: Buffer; msg: SipMessage }): boolean => (callId !== undefined ? r.msg.header('call-id') === callId : r.raw.includes(bytes.subarray(0, 40)));
  try {
    sender.socket.send(bytes, proxy.ports.udp!, '127.0.0.1');
    if ('reply' in wire) {
      const reply = await sender.next(3000);
      if (reply === undefined) expect.fail(`no reply within 3 s; the proxy logged:\n${proxy.stderr().slice(-1500)}`);
      expect([reply.status, reply.reason]).toEqual([wire.reply, expect.stringMatching(wire.reason)]);
      if (wire.unsupported !== undefined) expect(reply.header('unsupported')).toBe(wire.unsupported);
      expect(await pbx.nothing(atPbx, 100)).toBe(true);
      return;
    }
    if ('forward' in wire) {
      const got = await pbx.next(atPbx, 3000);
      expect(got.msg.method).toBe(parseMessage(bytes).method);
      expect(await sender.next(200)).toBeUndefined();
      return;
    }
    // A drop: nothing comes back, nothing goes on, and the proxy says why.
    expect(await sender.next(400)).toBeUndefined();
    expect(await pbx.nothing(atPbx, 50)).toBe(true);
    if (wire.drop === 'unparsable') {
      const line = await logLine(new RegExp(`dropped an unparsable message ${source}`));
      if (outcome.parse !== 'reject' || outcome.at !== 'framing' || !(outcome.reason instanceof RegExp)) {
        throw new Error('expectations.ts: an unparsable drop needs a framing outcome with its reason');
      }
      expect(field(line, 'reason')).toMatch(outcome.reason);
    } else if (wire.drop === 'unaddressable') {
      // Refused with wire.status, but its top Via cannot be read: nobody to answer.
      await logLine(new RegExp(`dropped a request why="unreadable top Via [^"]*" .*${source}`));
    } else {
      await logLine(new RegExp(`dropped a response why="its top Via is not ours" .*${source}`));
    }
  } finally {
    await sender.close();
  }
}

/** Sends the message on its own TCP connection: is it closed, or left open waiting for more? */
async function expectOnTcp(bytes: Buffer, tcp: 'closes' | 'waits'): Promise<void> {
  const socket = connect(proxy.ports.tcp!, '127.0.0.1');
  let data = '';
  let closed = false;
  socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
  socket.on('close', () => (closed = true));
  socket.on('error', () => {});
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.write(bytes);
    const end = Date.now() + (tcp === 'closes' ? 3000 : 800);
    while (!closed && Date.now() < end) await sleep(20);
    expect(closed, tcp === 'closes' ? 'the proxy closes the connection' : 'the proxy keeps the connection, waiting for the rest').toBe(tcp === 'closes');
    expect(data).toBe('');
  } finally {
    socket.destroy();
  }
}

const onTheWire = VECTORS.filter((v): v is Rfc4475Vector & { wire: WireOutcome } => v.wire !== undefined);

describe('RFC 4475 torture messages sent to sipctl serve', () => {
  it('every message the RFC calls invalid or names an answer for has a wire outcome', () => {
    const missing = VECTORS.filter((v) => v.wire === undefined && (v.outcome.parse !== 'accept' || v.response !== undefined));
    expect(missing.map((v) => v.name)).toEqual([]);
  });

  for (const v of onTheWire) {
    const rfc = v.response === undefined ? '' : `, RFC: ${v.response === 0 ? 'drop' : v.response}`;
    const differs = v.deviation === undefined ? '' : ' (not what the RFC names: see its deviation note)';
    it(`${v.name} (§${v.section}${rfc}): ${describeWire(v.wire)}${differs}`, async () => {
      await expectOnTheWire(fixture(v.name), v.wire, v.outcome);
    });
    const repaired = v.repaired;
    if (repaired !== undefined) {
      it(`${v.name} with ${repaired.why}: ${describeWire(repaired.wire)}`, async () => {
        await expectOnTheWire(repaired.bytes(fixture(v.name)), repaired.wire, repaired.outcome);
      });
    }
    const w = v.wire;
    if ('drop' in w && w.drop === 'unparsable' && w.tcp !== undefined) {
      const tcp = w.tcp;
      it(`${v.name} on TCP: the connection ${tcp === 'closes' ? 'is closed' : 'waits for the rest of the message'} (RFC 4475 §${v.section})`, async () => {
        await expectOnTcp(fixture(v.name), tcp);
      });
    }
  }

  it('bcast (§3.3.10) addressed to us: never relayed to the broadcast address of its second Via', async () => {
    const text = fixture('bcast').toString('latin1');
    const ours = `Via: SIP/2.0/UDP 127.0.0.1:${proxy.ports.udp};branch=z9hG4bKsc.${unique()}`;
    const bytes = Buffer.from(text.replace(/^Via: [^\r\n]*/m, ours), 'latin1');
    expect(parseMessage(bytes).vias.map((x) => x.host)).toEqual(['127.0.0.1', '255.255.255.255']);
    const sender = await Sender.open(5060);
    try {
      sender.socket.send(bytes, proxy.ports.udp!, '127.0.0.1');
      const line = await logLine(new RegExp(`dropped a response why="its next Via cannot be reached \\(UDP 255\\.255\\.255\\.255\\)"`));
      expect(line).toContain('DEBUG');
      expect(await sender.next(200)).toBeUndefined();
    } finally {
      await sender.close();
    }
  });

  it('the proxy is still up and answering after all of them', async () => {
    expect(proxy.child.exitCode).toBeNull();
    const sender = await Sender.open(5060);
    try {
      const callId = unique('alive-');
      sender.socket.send(
        Buffer.from(
          [
            `OPTIONS sip:127.0.0.1:${proxy.ports.udp} SIP/2.0`,
            `Via: SIP/2.0/UDP ${sender.address}:${sender.port};branch=${unique('z9hG4bK')}`,
            'Max-Forwards: 70',
            `From: <sip:probe@${sender.address}>;tag=1`,
            `To: <sip:127.0.0.1:${proxy.ports.udp}>`,
            `Call-ID: ${callId}`,
            'CSeq: 1 OPTIONS',
            'Content-Length: 0',
            '',
            '',
          ].join('\r\n'),
          'latin1',
        ),
        proxy.ports.udp!,
        '127.0.0.1',
      );
      const reply = await sender.next(3000);
      expect(reply?.status).toBe(200);
      expect(reply?.header('call-id')).toBe(callId);
    } finally {
      await sender.close();
    }
    // Nothing escaped as an unexpected error (a 500 and an ERROR line).
    expect(proxy.stderr()).not.toMatch(/ ERROR /);
  });
});
