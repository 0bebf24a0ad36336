/**
 * HEPv3 encoding, checked by an independent decoder (hep-decode.ts), and the mirror's bound:
 * over real UDP sockets on loopback, what it sends is what it was given, and a burst larger
 * than its ring is dropped and counted, never queued without limit.
 */
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CAPTURE_RING, encodeHepHeader, findCallId, HepMirror, HEP_MAX_PACKET } from '../../src/capture/index.js';
import type { Listener } from '../../src/transport/types.js';
import { decodeHep } from './hep-decode.js';

const INVITE = Buffer.from(
  'INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n' +
    'From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: a84b4c76e66710@pc33\r\n' +
    'CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n',
);

function packet(header: Buffer, payload: Buffer): Buffer {
  return Buffer.concat([header, payload]);
}

describe('encodeHepHeader', () => {
  it('encodes an IPv4 UDP message with every chunk a collector needs', () => {
    const h = encodeHepHeader({
      protocol: 'udp',
      sourceAddress: '192.0.2.1',
      sourcePort: 5060,
      destinationAddress: '198.51.100.7',
      destinationPort: 5080,
      timeMs: 1_700_000_000_123.456,
      captureId: 2001,
      correlationId: 'a84b4c76e66710@pc33',
      payloadLength: INVITE.length,
    })!;
    const d = decodeHep(packet(h, INVITE));
    expect(d).toMatchObject({
      family: 2,
      ipProtocol: 17,
      source: '192.0.2.1',
      destination: '198.51.100.7',
      sourcePort: 5060,
      destinationPort: 5080,
      seconds: 1_700_000_000,
      microseconds: 123_456,
      protocolType: 1,
      captureId: 2001,
      correlationId: 'a84b4c76e66710@pc33',
    });
    expect(d.payload.equals(INVITE)).toBe(true);
    expect(d.types).toEqual([1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 17, 15]);
  });

  it('encodes IPv6 over TCP, and leaves the correlation chunk out when there is no Call-ID', () => {
    const payload = Buffer.from('SIP/2.0 200 OK\r\n\r\n');
    const h = encodeHepHeader({
      protocol: 'tcp',
      sourceAddress: '::1',
      sourcePort: 40000,
      destinationAddress: '2001:db8::5:0:1',
      destinationPort: 5060,
      timeMs: 1000,
      captureId: 0xffffffff,
      correlationId: '',
      payloadLength: payload.length,
    })!;
    const d = decodeHep(packet(h, payload));
    expect(d.family).toBe(10);
    expect(d.ipProtocol).toBe(6);
    expect(d.source).toBe('0:0:0:0:0:0:0:1');
    expect(d.destination).toBe('2001:db8:0:0:0:5:0:1');
    expect(d.captureId).toBe(0xffffffff);
    expect(d.correlationId).toBeUndefined();
  });

  it('refuses what cannot be one HEP packet: mixed families, more than 65,535 bytes', () => {
    const base = { protocol: 'udp' as const, sourcePort: 1, destinationPort: 2, timeMs: 0, captureId: 1, correlationId: 'x' };
    expect(encodeHepHeader({ ...base, sourceAddress: '127.0.0.1', destinationAddress: '::1', payloadLength: 10 })).toBeUndefined();
    expect(encodeHepHeader({ ...base, sourceAddress: '127.0.0.1', destinationAddress: '127.0.0.2', payloadLength: HEP_MAX_PACKET })).toBeUndefined();
    expect(encodeHepHeader({ ...base, sourceAddress: '127.0.0.1', destinationAddress: '127.0.0.2', payloadLength: 65_000 })).toBeDefined();
  });
});

describe('findCallId', () => {
  it('finds the long and the compact form, in any case, and only among the headers', () => {
    expect(findCallId(INVITE)).toBe('a84b4c76e66710@pc33');
    expect(findCallId(Buffer.from('BYE sip:x SIP/2.0\r\ni : short-form@host \r\nCSeq: 2 BYE\r\n\r\n'))).toBe('short-form@host');
    expect(findCallId(Buffer.from('BYE sip:x SIP/2.0\r\ncall-ID:lower@h\r\n\r\n'))).toBe('lower@h');
    expect(findCallId(Buffer.from('BYE sip:x SIP/2.0\r\nCSeq: 2 BYE\r\n\r\nCall-ID: in-the-body\r\n'))).toBe('');
    expect(findCallId(Buffer.from('BYE sip:x SIP/2.0\r\nCall-Info: <http://x>\r\nIn-Reply-To: y\r\n\r\n'))).toBe('');
    expect(findCallId(Buffer.from('no line end at all'))).toBe('');
  });
});

describe('HepMirror over loopback', () => {
  let collector: Socket | undefined;
  let mirror: HepMirror | undefined;
  afterEach(async () => {
    await mirror?.close();
    await new Promise<void>((r) => (collector ? collector.close(() => r()) : r()));
    mirror = undefined;
    collector = undefined;
  });

  async function openCollector(): Promise<{ port: number; packets: Buffer[] }> {
    const packets: Buffer[] = [];
    collector = createSocket('udp4');
    collector.on('message', (m) => packets.push(m));
    await new Promise<void>((r) => collector!.bind(0, '127.0.0.1', () => r()));
    return { port: collector.address().port, packets };
  }

  async function until(cond: () => boolean, ms = 3000): Promise<void> {
    const end = Date.now() + ms;
    while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  }

  const listener: Listener = { id: 0, protocol: 'udp', address: '127.0.0.1', port: 5060, family: 4 };

  it('mirrors a received and a sent message with their addresses, in order, after the current turn', async () => {
    const c = await openCollector();
    mirror = await HepMirror.open({ collector: `udp:127.0.0.1:${c.port}`, captureId: 7 });
    mirror.received({ bytes: INVITE, protocol: 'udp', sourceAddress: '127.0.0.9', sourcePort: 5099, listener });
    mirror.sent({ protocol: 'udp', address: '127.0.0.8', port: 5070 }, INVITE, listener);
    // Nothing is sent during the turn that noted the messages.
    expect(mirror.stats().sent).toBe(0);
    await until(() => c.packets.length === 2);
    const [rx, tx] = c.packets.map(decodeHep);
    expect(rx).toMatchObject({ source: '127.0.0.9', sourcePort: 5099, destination: '127.0.0.1', destinationPort: 5060, captureId: 7 });
    expect(tx).toMatchObject({ source: '127.0.0.1', sourcePort: 5060, destination: '127.0.0.8', destinationPort: 5070, captureId: 7 });
    expect(rx!.payload.equals(INVITE) && tx!.payload.equals(INVITE)).toBe(true);
    expect(mirror.stats()).toEqual({ captured: 2, sent: 2, dropped: 0, errors: 0 });
  });

  it('drops and counts a burst beyond its ring instead of queueing it', async () => {
    const c = await openCollector();
    mirror = await HepMirror.open({ collector: `udp:127.0.0.1:${c.port}`, captureId: 7 });
    const extra = 25;
    for (let i = 0; i < CAPTURE_RING + extra; i++) {
      mirror.received({ bytes: INVITE, protocol: 'udp', sourceAddress: '127.0.0.9', sourcePort: 5099, listener });
    }
    expect(mirror.stats().dropped).toBe(extra);
    await until(() => mirror!.stats().sent + mirror!.stats().dropped === CAPTURE_RING + extra);
    const s = mirror.stats();
    expect(s.captured).toBe(CAPTURE_RING + extra);
    expect(s.sent + s.dropped).toBe(CAPTURE_RING + extra);
    expect(s.dropped).toBeGreaterThanOrEqual(extra);
    await until(() => c.packets.length > 0);
    expect(c.packets.length).toBeGreaterThan(0);
  });

  it('over TCP: the packets of a turn in one stream write, split again by their length fields', async () => {
    const chunks: Buffer[] = [];
    let connected = false;
    const server: Server = createServer((c) => {
      connected = true;
      c.on('data', (d: Buffer) => chunks.push(d));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    try {
      mirror = await HepMirror.open({ collector: `tcp:127.0.0.1:${port}`, captureId: 9 });
      // The connection is made in the background; until it is up, messages would be dropped.
      await until(() => connected, 2000);
      await new Promise((r) => setTimeout(r, 50));
      for (let i = 0; i < 3; i++) mirror.received({ bytes: INVITE, protocol: 'tcp', sourceAddress: '127.0.0.9', sourcePort: 5099 + i, listener });
      const stream = (): Buffer => Buffer.concat(chunks);
      await until(() => stream().length >= 3 * (INVITE.length + 60));
      const all = stream();
      const packets: Buffer[] = [];
      for (let p = 0; p < all.length; ) {
        const len = all.readUInt16BE(p + 4);
        packets.push(all.subarray(p, p + len));
        p += len;
      }
      const decoded = packets.map(decodeHep);
      expect(decoded.map((d) => [d.ipProtocol, d.sourcePort, d.captureId])).toEqual([
        [6, 5099, 9],
        [6, 5100, 9],
        [6, 5101, 9],
      ]);
      expect(decoded.every((d) => d.payload.equals(INVITE))).toBe(true);
      expect(mirror.stats()).toMatchObject({ captured: 3, sent: 3, dropped: 0 });
    } finally {
      await mirror?.close();
      mirror = undefined;
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('over TCP with no collector listening: drops and counts, and goes on', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    mirror = await HepMirror.open({ collector: `tcp:127.0.0.1:${port}`, captureId: 9 });
    await new Promise((r) => setTimeout(r, 100));
    mirror.received({ bytes: INVITE, protocol: 'udp', sourceAddress: '127.0.0.9', sourcePort: 5099, listener });
    await until(() => mirror!.stats().dropped === 1);
    expect(mirror.stats()).toMatchObject({ captured: 1, sent: 0, dropped: 1 });
    expect(mirror.stats().errors).toBeGreaterThanOrEqual(1);
  });
});
