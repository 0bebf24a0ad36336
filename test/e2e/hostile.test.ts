/**
 * Hostile input (DESIGN.md invariant "never crash on input"): tens of thousands of mutated
 * and garbage SIP messages, first through the parser directly, then over UDP and TCP into a
 * real `sipctl serve` process whose --forward next hop is a silent PBX socket. Afterwards the
 * same process must still be running and still route calls, must have logged no uncaught
 * exception or unhandled rejection, must have answered malformed requests it could address
 * with 400, and must never have forwarded anything to the PBX without its own Via on top.
 *
 * Every message is drawn from a seeded PRNG (test/helpers/mutate.ts): message #i depends
 * only on (seed, i), so a failure names the seed and index that regenerate it.
 * HOSTILE_SEED=<n> runs another seed.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/client.js';
import { SipParseError } from '../../src/sip/errors.js';
import { StreamFramer } from '../../src/sip/framing.js';
import type { SipMessage } from '../../src/sip/message.js';
import { MAX_HEADER_FIELDS, parseMessage } from '../../src/sip/parse.js';
import { directedCases, escapeBytes, mutationAt, reframe, UDP_MAX_PAYLOAD, type Mutation, type MutationContext } from '../helpers/mutate.js';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js';
import { responseTo, UdpPeer, unique } from '../helpers/sip-peer.js';
import { freePort, RUN_SIPP, runUac, startUas, type Uas } from '../helpers/sipp.js';

const SEED = Number(process.env.HOSTILE_SEED ?? 0x5eed2024) >>> 0;
const PARSER_MESSAGES = 100_000;
const UDP_MESSAGES = 10_000;
const TCP_MESSAGES = 4_200;
const TCP_STREAMS = 6; // TCP_MESSAGES / TCP_STREAMS messages each
/** Offsets so the UDP and TCP runs and the parser run use different messages of one seed. */
const UDP_INDEX_BASE = 1_000_000;
const TCP_INDEX_BASE = 2_000_000;
/** A batch is at most this many messages / bytes, then a barrier (a request the proxy must answer). */
const BATCH_MESSAGES = 200;
const BATCH_BYTES = 256 * 1024;

console.log(`hostile input: seed ${SEED} (rerun with HOSTILE_SEED=${SEED})`);

function describeFailure(m: Mutation, what: string, err: unknown): string {
  const e = err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err);
  return `seed ${SEED} message #${m.index} (${m.base}: ${m.steps.join(' + ')}) ${what} threw ${e}\n  bytes: ${escapeBytes(m.bytes, 1500)}`;
}

// ------------------------------------------------------------------ the parser alone

/**
 * Every accessor a caller may use on a parsed message. The typed ones cache what they parsed,
 * so they are called twice (a second call must not trip over a half-filled cache).
 */
function accessors(msg: SipMessage): Array<[string, () => unknown]> {
  const cached: Array<[string, () => unknown]> = [
    ['uri', () => msg.uri],
    ['topVia', () => msg.topVia],
    ['vias', () => msg.vias],
    ['from', () => msg.from],
    ['to', () => msg.to],
    ['callId', () => msg.callId],
    ['cseq', () => msg.cseq],
    ['maxForwards', () => msg.maxForwards],
    ['routes', () => msg.routes],
    ['recordRoutes', () => msg.recordRoutes],
    ['contacts', () => msg.contacts],
  ];
  const list: Array<[string, () => unknown]> = [
    ...cached,
    ['headerNames', () => msg.headerNames],
    ['headerCount', () => msg.headerCount],
    ['currentUriText', () => msg.currentUriText],
    ['uri', () => msg.uri],
    ['uri.toString', () => msg.uri.toString()],
    ['uri.hostport', () => msg.uri.hostport],
    ['uri.transport', () => msg.uri.transport],
    ['topVia', () => msg.topVia],
    ['vias', () => msg.vias],
    ['from', () => msg.from],
    ['from.uri.toString', () => msg.from.uri.toString()],
    ['to', () => msg.to],
    ['to.uri.toString', () => msg.to.uri.toString()],
    ['callId', () => msg.callId],
    ['cseq', () => msg.cseq],
    ['maxForwards', () => msg.maxForwards],
    ['contentLength', () => msg.contentLength],
    ['body', () => msg.body],
    ['routes', () => msg.routes],
    ['routes.toString', () => msg.routes.map((r) => r.uri.toString())],
    ['recordRoutes', () => msg.recordRoutes],
    ['contacts', () => msg.contacts],
    ['serialize', () => msg.serialize()],
  ];
  for (const name of new Set(msg.index.names)) {
    list.push([`header('${name}')`, () => msg.header(name)]);
    list.push([`headerFields('${name}')`, () => msg.headerFields(name)]);
    list.push([`headerValues('${name}')`, () => msg.headerValues(name)]);
    list.push([`valueLocations('${name}')`, () => msg.valueLocations(name)]);
  }
  list.push(['rawValue / fieldValue of every field', () => {
    for (let i = 0; i < msg.headerCount; i++) {
      msg.rawValue(i);
      msg.fieldValue(i);
    }
  }]);
  return list;
}

/** The request checks the proxy core makes before it forwards (§16.3): all of them pass. */
function wouldForward(msg: SipMessage): boolean {
  try {
    if (!msg.isRequest || msg.topVia === undefined) return false;
    void msg.from;
    void msg.to;
    void msg.callId;
    void msg.cseq;
    void msg.maxForwards;
    void msg.uri;
    return true;
  } catch {
    return false;
  }
}

const PARSER_CTX: MutationContext = {
  transport: 'UDP',
  proxyUdpPort: 5060,
  proxyPort: 5060,
  senderPort: 5070,
  sinkPort: 5080,
  pbxPort: 5090,
  maxBytes: UDP_MAX_PAYLOAD,
};

describe(`the parser under ${PARSER_MESSAGES.toLocaleString('en')} mutated messages`, () => {
  it('returns or throws SipParseError, and so does every accessor; what it would forward reparses with the new Via on top', () => {
    const failures: string[] = [];
    let parsed = 0;
    let rejected = 0;
    let forwardable = 0;
    let atFieldLimit = 0;
    const started = Date.now();
    // Half the messages are rejected, several times each by the accessors: capturing a stack
    // per SipParseError would be most of this test's time. Reproducers come from (seed, index).
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      for (let i = 0; i < PARSER_MESSAGES && failures.length < 20; i++) {
        const m = mutationAt(SEED, i, PARSER_CTX);
        let msg: SipMessage;
        try {
          msg = parseMessage(m.bytes);
        } catch (err) {
          if (!(err instanceof SipParseError)) failures.push(describeFailure(m, 'parseMessage', err));
          rejected++;
          continue;
        }
        parsed++;
        for (const [name, get] of accessors(msg)) {
          try {
            get();
          } catch (err) {
            if (!(err instanceof SipParseError)) failures.push(describeFailure(m, name, err));
          }
        }
        // What the core does to a request it forwards (§16.6 step 8): our Via on top. The
        // result must parse again and show that Via first, whatever else the message holds.
        if (wouldForward(msg)) {
          forwardable++;
          // Our Via may push a message at the parser's field limit over it: nothing to reparse.
          if (msg.headerCount >= MAX_HEADER_FIELDS) {
            atFieldLimit++;
            continue;
          }
          const again = parseMessage(m.bytes);
          const ours = 'SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsc.hostile';
          try {
            again.insertHeaderBefore('via', 'Via', ours);
            const out = again.serialize();
            const re = parseMessage(out);
            const top = re.topVia;
            if (top?.branch !== 'z9hG4bKsc.hostile' || top.port !== 5060) {
              failures.push(describeFailure(m, 'forwarding', new Error(`the serialized message's top Via is ${escapeBytes(Buffer.from(re.header('via') ?? '', 'latin1'), 200)}`)));
            }
          } catch (err) {
            failures.push(describeFailure(m, 'forwarding (insert Via, serialize, reparse)', err));
          }
        }
      }
    } finally {
      Error.stackTraceLimit = stackTraceLimit;
    }
    console.log(
      `parser: ${PARSER_MESSAGES} mutations in ${Date.now() - started} ms: ${parsed} parsed (${forwardable} would be forwarded, ` +
        `${atFieldLimit} of them at the ${MAX_HEADER_FIELDS}-field limit), ${rejected} rejected with SipParseError`,
    );
    expect(failures, failures.join('\n\n')).toEqual([]);
    expect(parsed).toBeGreaterThan(PARSER_MESSAGES / 10);
    expect(rejected).toBeGreaterThan(PARSER_MESSAGES / 10);
  });
});

// ------------------------------------------------------------------ the proxy on the wire

interface Datagram {
  bytes: Buffer;
  address: string;
  port: number;
}

/** A bound UDP socket on loopback handing every datagram, raw (even what does not parse), to onMessage. */
class RawUdp {
  sendErrors = 0;
  private constructor(readonly socket: UdpSocket, readonly port: number) {
    socket.on('error', () => this.sendErrors++);
  }

  static async open(onMessage: (d: Datagram, self: RawUdp) => void): Promise<RawUdp> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const self = new RawUdp(socket, socket.address().port);
    socket.on('message', (bytes, rinfo) => onMessage({ bytes, address: rinfo.address, port: rinfo.port }, self));
    return self;
  }

  send(bytes: Buffer, port: number): void {
    this.socket.send(bytes, port, '127.0.0.1');
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

function tryParse(bytes: Buffer): SipMessage | undefined {
  try {
    return parseMessage(bytes);
  } catch {
    return undefined;
  }
}

/** Counts of the responses a sender got back, by status. */
class Tally {
  readonly byStatus = new Map<number, number>();
  requests = 0;
  /** Everything the proxy sends must parse: the first few that do not, escaped. */
  readonly unparsable: string[] = [];
  add(bytes: Buffer): SipMessage | undefined {
    let msg: SipMessage;
    try {
      msg = parseMessage(bytes);
    } catch (err) {
      if (this.unparsable.length < 5) this.unparsable.push(`${err instanceof Error ? err.message : String(err)}: ${escapeBytes(bytes, 600)}`);
      return undefined;
    }
    if (msg.isRequest) this.requests++;
    else this.byStatus.set(msg.status, (this.byStatus.get(msg.status) ?? 0) + 1);
    return msg;
  }
  count(status: number): number {
    return this.byStatus.get(status) ?? 0;
  }
  toString(): string {
    return (
      [...this.byStatus.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(' ') +
      (this.requests > 0 ? ` requests×${this.requests}` : '') +
      (this.unparsable.length > 0 ? ` unparsable×${this.unparsable.length}+` : '')
    );
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_r, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
    }),
  ]);
}

describe('sipctl serve under hostile input', () => {
  let proxy: ProxyProcess;
  let pid: number | undefined;
  /** The PBX: silent; in relay mode it passes datagrams between the proxy and a SIPp uas. */
  let pbx: RawUdp;
  const fromProxy: Datagram[] = [];
  let relayTo: number | undefined;
  const pbxWaiters: Array<(d: Datagram) => boolean> = [];
  /** Our UDP sender, and where responses to our Via are forwarded to. */
  let sender: RawUdp;
  let sink: RawUdp;
  const udpTally = new Tally();
  const tcpTally = new Tally();
  const sinkTally = new Tally();
  const directedReplies: string[] = [];
  const barriers = new Map<string, () => void>();
  const started = Date.now();

  beforeAll(async () => {
    pbx = await RawUdp.open((d, self) => {
      if (relayTo !== undefined && d.port === relayTo) {
        self.send(d.bytes, proxy.ports.udp!);
        return;
      }
      if (proxy !== undefined && d.port === proxy.ports.udp) fromProxy.push(d);
      if (relayTo !== undefined) self.send(d.bytes, relayTo);
      for (let i = 0; i < pbxWaiters.length; i++) if (pbxWaiters[i]!(d)) pbxWaiters.splice(i--, 1);
    });
    sender = await RawUdp.open((d) => {
      const msg = tryParse(d.bytes);
      const id = msg?.header('call-id');
      const done = id === undefined ? undefined : barriers.get(id);
      if (done !== undefined) {
        done();
        return;
      }
      udpTally.add(d.bytes);
      if (msg !== undefined && id?.startsWith('directed-')) directedReplies.push(`${id.slice(9)}→${msg.status}`);
    });
    sink = await RawUdp.open((d) => sinkTally.add(d.bytes));
    proxy = await startProxyProcess({
      setup: [['address', 'add', '1', '127.0.0.1', '32']],
      args: ['--listen', 'udp:127.0.0.1:0', '--listen', 'tcp:127.0.0.1:0', '--forward', `sip:127.0.0.1:${pbx.port}`],
    });
    pid = proxy.child.pid;
  });

  afterAll(async () => {
    await proxy?.stop();
    await Promise.all([pbx?.close(), sender?.close(), sink?.close()]);
    console.log(`hostile e2e: ${Date.now() - started} ms in all`);
  });

  /**
   * An OPTIONS to the proxy itself; resolves when its 200 is back, so everything sent before
   * it has been handled (one socket, loopback: datagrams arrive in order). Resent every
   * 500 ms in case a full receive buffer dropped it.
   */
  async function barrier(): Promise<void> {
    const callId = unique('barrier-');
    const udp = proxy.ports.udp!;
    const options = Buffer.from(
      [`OPTIONS sip:127.0.0.1:${udp} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${sender.port};branch=${unique('z9hG4bK')};rport`, 'Max-Forwards: 70',
        `From: <sip:hostile@127.0.0.1>;tag=${unique()}`, `To: <sip:127.0.0.1:${udp}>`, `Call-ID: ${callId}`, 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n'),
      'latin1',
    );
    const answered = new Promise<void>((resolve) => barriers.set(callId, resolve));
    let resend: NodeJS.Timeout | undefined;
    try {
      sender.send(options, udp);
      resend = setInterval(() => sender.send(options, udp), 500);
      await withTimeout(answered, 5000, 'the barrier OPTIONS');
    } finally {
      clearInterval(resend);
      barriers.delete(callId);
    }
  }

  it(`stays up through ${UDP_MESSAGES.toLocaleString('en')} mutated datagrams and answers some with 400`, async () => {
    const t0 = Date.now();
    const ctx: MutationContext = {
      transport: 'UDP',
      proxyUdpPort: proxy.ports.udp!,
      proxyPort: proxy.ports.udp!,
      senderPort: sender.port,
      sinkPort: sink.port,
      pbxPort: pbx.port,
      maxBytes: UDP_MAX_PAYLOAD,
    };
    let bytes = 0;
    let inBatch = 0;
    let batchBytes = 0;
    for (const c of directedCases(ctx)) sender.send(c.bytes, proxy.ports.udp!);
    await barrier();
    console.log(`directed cases answered: ${directedReplies.join(' ') || 'none'}`);
    for (let i = 0; i < UDP_MESSAGES; i++) {
      const m = mutationAt(SEED, UDP_INDEX_BASE + i, ctx);
      sender.send(m.bytes, proxy.ports.udp!);
      bytes += m.bytes.length;
      batchBytes += m.bytes.length;
      if (++inBatch >= BATCH_MESSAGES || batchBytes >= BATCH_BYTES) {
        await barrier();
        inBatch = 0;
        batchBytes = 0;
      }
    }
    await barrier();
    console.log(
      `UDP: ${UDP_MESSAGES} datagrams (${(bytes / 1e6).toFixed(1)} MB) in ${Date.now() - t0} ms; replies: ${udpTally}; ` +
        `forwarded to the PBX: ${fromProxy.length}; responses forwarded to the sink: ${sinkTally}; send errors: ${sender.sendErrors}`,
    );
    expect(proxy.child.exitCode).toBeNull();
    expect(udpTally.count(400)).toBeGreaterThan(0);
  });

  it(`stays up through ${TCP_MESSAGES.toLocaleString('en')} mutated messages on ${TCP_STREAMS} TCP streams, and closes streams that cannot be framed`, async () => {
    const t0 = Date.now();
    const tcpPort = proxy.ports.tcp!;
    let closedByProxy = 0;
    let connections = 0;

    /** One connection; `closed` resolves when the proxy (or the network) ends it. */
    function open(): Promise<{ socket: Socket; closed: Promise<void>; isClosed: () => boolean }> {
      return new Promise((resolve, reject) => {
        const socket = connect(tcpPort, '127.0.0.1');
        const framer = new StreamFramer({ maxHeaderBytes: 1 << 20, maxBodyBytes: 1 << 20 });
        let isClosed = false;
        const closed = new Promise<void>((r) => socket.once('close', () => {
          isClosed = true;
          r();
        }));
        socket.on('error', () => {});
        socket.on('data', (chunk: Buffer) => {
          for (const ev of framer.push(chunk)) if (ev.kind === 'message') tcpTally.add(ev.bytes);
        });
        socket.once('connect', () => {
          connections++;
          resolve({ socket, closed, isClosed: () => isClosed });
        });
        socket.once('error', reject);
      });
    }

    async function stream(which: number): Promise<number> {
      let conn = await open();
      let sent = 0;
      const per = Math.floor(TCP_MESSAGES / TCP_STREAMS);
      for (let k = 0; k < per; k++) {
        if (conn.isClosed() || conn.socket.destroyed) {
          closedByProxy++;
          conn = await open();
        }
        const ctx: MutationContext = {
          transport: 'TCP',
          proxyUdpPort: proxy.ports.udp!,
          proxyPort: tcpPort,
          senderPort: conn.socket.localPort!,
          sinkPort: sink.port,
          pbxPort: pbx.port,
          maxBytes: UDP_MAX_PAYLOAD,
        };
        const m = mutationAt(SEED, TCP_INDEX_BASE + which * per + k, ctx);
        // Four in five made framable, so most reach the parser; the fifth may break the stream.
        const bytes = k % 5 === 4 ? m.bytes : reframe(m.bytes);
        sent += bytes.length;
        if (!conn.socket.write(bytes)) {
          // Flow control: wait for the proxy to read (or for the connection to end).
          await withTimeout(Promise.race([new Promise((r) => conn.socket.once('drain', r)), conn.closed]), 10_000, 'TCP drain');
        } else if (k % 25 === 24) {
          await new Promise((r) => setImmediate(r));
        }
      }
      // A stream that ended mid-message is left for the proxy to time out; ours ends here.
      conn.socket.destroy();
      return sent;
    }

    // Streams that cannot be framed (RFC 3261 §18.3): the proxy must close each.
    const unframable: Array<[string, Buffer]> = [
      ['Content-Length not a number', Buffer.from(`INVITE sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKx\r\nContent-Length: abc\r\n\r\n`, 'latin1')],
      ['Content-Length negative', Buffer.from(`INVITE sip:a@127.0.0.1 SIP/2.0\r\nl: -5\r\n\r\n`, 'latin1')],
      ['Content-Length over the body limit', Buffer.from(`INVITE sip:a@127.0.0.1 SIP/2.0\r\nContent-Length: 99999999999\r\n\r\nxxxx`, 'latin1')],
      ['two Content-Lengths', Buffer.from(`OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd`, 'latin1')],
      ['no end of headers in 70,000 bytes', Buffer.concat([Buffer.from('INVITE sip:a@127.0.0.1 SIP/2.0\r\nX: ', 'latin1'), Buffer.alloc(70_000, 0x61)])],
      ['100,000 bytes of binary garbage', Buffer.from(Array.from({ length: 100_000 }, (_x, i) => ((i * 2654435761) >>> 13) & 0xff).map((b) => (b === 13 || b === 10 ? 0x20 : b)))],
    ];
    const garbage = await Promise.all(unframable.map(async ([name, bytes]) => {
      const conn = await open();
      conn.socket.write(bytes);
      const closed = await withTimeout(conn.closed.then(() => true), 5000, `proxy closing a stream with ${name}`).catch(() => false);
      conn.socket.destroy();
      return [name, closed] as const;
    }));

    const sent = await Promise.all(Array.from({ length: TCP_STREAMS }, (_x, i) => stream(i)));
    await barrier();
    console.log(
      `TCP: ${TCP_MESSAGES} messages (${(sent.reduce((a, b) => a + b, 0) / 1e6).toFixed(1)} MB) on ${connections} connections in ${Date.now() - t0} ms; ` +
        `${closedByProxy} closed by the proxy mid-run; replies: ${tcpTally}`,
    );
    expect(garbage.filter(([, closed]) => !closed).map(([name]) => name)).toEqual([]);
    expect(proxy.child.exitCode).toBeNull();
    expect(tcpTally.count(400)).toBeGreaterThan(0);
  });

  it('is still the same process, and a fresh INVITE reaches the PBX and its 200 comes back', async () => {
    expect(proxy.child.exitCode).toBeNull();
    expect(proxy.child.signalCode).toBeNull();
    expect(proxy.child.pid).toBe(pid);
    const caller = await UdpPeer.open();
    try {
      const callId = unique('fresh-');
      const udp = proxy.ports.udp!;
      const atPbx = new Promise<Datagram>((resolve) => pbxWaiters.push((d) => {
        if (tryParse(d.bytes)?.header('call-id') !== callId) return false;
        resolve(d);
        return true;
      }));
      caller.send(
        [`INVITE sip:service@127.0.0.1:${udp} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=${unique('z9hG4bK')};rport`, 'Max-Forwards: 70',
          `From: <sip:caller@127.0.0.1:${caller.port}>;tag=${unique()}`, `To: <sip:service@127.0.0.1:${udp}>`, `Call-ID: ${callId}`, 'CSeq: 1 INVITE',
          `Contact: <sip:caller@127.0.0.1:${caller.port}>`, 'Content-Length: 0', '', ''].join('\r\n'),
        udp,
      );
      const req = parseMessage((await withTimeout(atPbx, 3000, 'the fresh INVITE at the PBX')).bytes);
      expect(req.topVia!.port).toBe(udp);
      pbx.send(Buffer.from(responseTo(req, 200, 'OK', [`Contact: <sip:service@127.0.0.1:${pbx.port}>`]), 'latin1'), udp);
      const ok = await caller.next((r) => r.msg.header('call-id') === callId, 3000);
      expect(ok.msg.status).toBe(200);
      expect(ok.msg.vias).toHaveLength(1);
    } finally {
      await caller.close();
    }
  });

  it.skipIf(!RUN_SIPP)('carries 20 SIPp calls with 0 failed afterwards', async () => {
    const uasPort = await freePort();
    let uas: Uas | undefined;
    try {
      uas = await startUas(uasPort, 'u1');
      relayTo = uasPort;
      const r = await runUac({ proxyPort: proxy.ports.udp!, calls: 20, rate: 20 });
      expect(r.failed).toBe(0);
      expect(r.successful).toBe(20);
    } finally {
      relayTo = undefined;
      await uas?.stop();
    }
  });

  it('never forwarded a request to the PBX without its own Via on top', () => {
    const bad: string[] = [];
    let requests = 0;
    let responses = 0;
    for (const d of fromProxy) {
      let msg: SipMessage | undefined;
      let why = 'does not parse';
      try {
        msg = parseMessage(d.bytes);
      } catch (err) {
        why = `does not parse (${err instanceof Error ? err.message : String(err)})`;
      }
      let ok = false;
      try {
        const top = msg?.topVia;
        if (msg !== undefined && top !== undefined && msg.isRequest) {
          requests++;
          ok = top.host === '127.0.0.1' && top.port === proxy.ports.udp && top.transport === 'UDP' && (top.branch ?? '').startsWith('z9hG4bK');
        } else if (msg !== undefined && top !== undefined) {
          // A response reaches the PBX only when a hostile Via named the PBX's port: a reply
          // goes to the sent-by port, or to rport (RFC 3261 §18.2.2, RFC 3581 §4).
          responses++;
          ok = top.rport === pbx.port || top.port === pbx.port;
        }
      } catch {
        ok = false;
      }
      if (!ok && msg !== undefined) why = msg.isRequest ? 'a request whose top Via is not ours' : 'a response its Via does not address to the PBX';
      if (!ok && bad.length < 10) bad.push(`${why}: ${escapeBytes(d.bytes, 800)}`);
    }
    console.log(`the PBX got ${requests} requests and ${responses} responses addressed to it by a Via naming its port`);
    expect(requests).toBeGreaterThan(0);
    expect(bad, `sent to the PBX without our Via on top, unparsable, or a response not addressed to it:\n${bad.join('\n\n')}`).toEqual([]);
  });

  it('sent nothing that does not parse', () => {
    expect(udpTally.unparsable, udpTally.unparsable.join('\n')).toEqual([]);
    expect(tcpTally.unparsable, tcpTally.unparsable.join('\n')).toEqual([]);
    expect(sinkTally.unparsable, sinkTally.unparsable.join('\n')).toEqual([]);
  });

  it('logged no uncaught exception, unhandled rejection or internal error, and counted no route errors', async () => {
    const status = (await controlRequest(proxy.control, 'status', {}, { timeoutMs: 5000 })) as { pid: number; stats: Record<string, number>; transport: Record<string, number> };
    console.log(`proxy stats: ${JSON.stringify(status.stats)}\ntransport stats: ${JSON.stringify(status.transport)}`);
    expect(status.pid).toBe(pid);
    const stderr = proxy.stderr();
    const kinds = new Map<string, number>();
    for (const line of stderr.split('\n')) {
      const m = /^\S+ (ERROR|WARN|INFO|DEBUG) ([^=]*?)(?: \w+=|$)/.exec(line);
      if (m !== null) kinds.set(`${m[1]} ${m[2]}`, (kinds.get(`${m[1]} ${m[2]}`) ?? 0) + 1);
    }
    console.log(`proxy log lines: ${[...kinds].map(([k, n]) => `${n}× ${k}`).join('; ')}`);
    // One line per distinct problem (no time stamp, two stack frames), with its count.
    const problems = new Map<string, number>();
    for (const line of stderr.split('\n')) {
      if (!/uncaught exception|unhandled rejection|unexpected error while handling|route threw/i.test(line)) continue;
      const key = line.replace(/^\S+ /, '').split('\\n    at ').slice(0, 3).join(' | at ').slice(0, 400);
      problems.set(key, (problems.get(key) ?? 0) + 1);
    }
    const report = [...problems].map(([k, n]) => `${n}× ${k}`);
    expect(report, report.join('\n')).toEqual([]);
    // routeErrors counts every error other than SipParseError inside the core: a bug on input.
    expect(status.stats.routeErrors).toBe(0);
  });
});
