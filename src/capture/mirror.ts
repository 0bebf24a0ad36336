/**
 * SIP capture: every message the proxy receives and sends, mirrored to a HEP collector
 * (Homer, heplify-server, sngrep -L) as HEPv3, over UDP (one datagram per message, what every
 * collector reads) or TCP (the packets of each 10 ms in one write: far fewer system
 * calls under load; heplify-server and Homer accept it, sngrep does not).
 *
 * Off the forwarding path: the taps (received / sent) only note the message in a fixed-size
 * ring — references and numbers, no copy, no encoding, no I/O — and the ring is encoded and
 * sent on the next turn of the event loop (setImmediate), after the messages of this turn
 * have been forwarded. Never blocking, never growing: when the ring is full, or the capture
 * socket already holds MAX_SOCKET_QUEUE datagrams the kernel has not taken (a collector or a
 * network that cannot keep up) — over TCP, when MAX_TCP_QUEUED_BYTES are waiting or the
 * connection is down (it is re-established every RECONNECT_MS) — the message is dropped from
 * the capture and counted. The forwarded copy is never affected.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Inbound, Listener, Target } from '../transport/types.js';
import { usageError } from '../errors.js';
import { encodeHepHeader, findCallId } from './hep.js';

/** Messages noted per flush (an event-loop turn; 10 ms over TCP) before the capture drops. */
export const CAPTURE_RING = 4096;
/** Datagrams queued in the capture socket (not yet taken by the kernel) before the capture drops. */
export const MAX_SOCKET_QUEUE = 1024;
/** Bytes waiting on the TCP connection to the collector before the capture drops. */
export const MAX_TCP_QUEUED_BYTES = 4 * 1024 * 1024;
/** How long after losing (or failing to open) the TCP connection it is tried again. */
export const RECONNECT_MS = 2000;
/**
 * Over TCP the ring is flushed every this many ms rather than every event-loop turn: one
 * write (one system call, one wake-up of the collector) per 10 ms whatever the message rate.
 * A collector does not need the packets sooner; 10 ms of traffic fits the ring up to ~400,000
 * messages a second.
 */
export const TCP_FLUSH_MS = 10;

export interface CaptureStats {
  /** Messages the taps saw. */
  captured: number;
  /** HEP packets handed to the kernel. */
  sent: number;
  /** Messages not mirrored: ring full, socket queue full, or too large for one HEP packet. */
  dropped: number;
  /** Send errors reported by the capture socket. */
  errors: number;
}

export interface HepMirrorOptions {
  /** The collector, `udp:IP:PORT` or `tcp:IP:PORT`. */
  collector: string;
  /** HEP capture agent id (chunk 0x000c). */
  captureId: number;
}

const UDP = 0;
const TCP = 1;

/** Where HEP packets go: a UDP socket (a datagram each) or a TCP connection (a write per batch). */
interface HepSink {
  /** How the ring is flushed: at the end of the event-loop turn, or after this many ms. */
  readonly flushAfterMs: number | undefined;
  /** Can another packet be taken now? */
  ready(): boolean;
  /** One packet (the header and the message, not copied). */
  add(header: Buffer, payload: Buffer): void;
  /** The end of a batch (one flush of the ring). */
  flush(): void;
  close(): Promise<void>;
}

class UdpSink implements HepSink {
  readonly flushAfterMs = undefined;
  constructor(private readonly socket: dgram.Socket, private readonly stats: CaptureStats) {
    socket.on('error', () => {
      stats.errors++;
    });
  }

  static async open(address: string, port: number, stats: CaptureStats): Promise<UdpSink> {
    const socket = dgram.createSocket({
      type: address.includes(':') ? 'udp6' : 'udp4',
      // The collector is an IP literal: no DNS, no deferred send.
      lookup: (a, _family, cb) => cb(null, a, a.includes(':') ? 6 : 4),
    });
    // Connected: the kernel looks the route up once, not per datagram.
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(port, address, () => {
        socket.removeListener('error', reject);
        resolve();
      });
    });
    return new UdpSink(socket, stats);
  }

  ready(): boolean {
    return this.socket.getSendQueueCount() < MAX_SOCKET_QUEUE;
  }

  add(header: Buffer, payload: Buffer): void {
    try {
      this.socket.send([header, payload]);
      this.stats.sent++;
    } catch {
      this.stats.errors++;
    }
  }

  flush(): void {}

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

class TcpSink implements HepSink {
  readonly flushAfterMs = TCP_FLUSH_MS;
  private socket: net.Socket | undefined;
  private connected = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private batch: Buffer[] = [];
  private batchPackets = 0;

  constructor(private readonly address: string, private readonly port: number, private readonly stats: CaptureStats) {
    this.connect();
  }

  private connect(): void {
    if (this.closed) return;
    const socket = net.connect({ host: this.address, port: this.port });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('connect', () => {
      this.connected = true;
    });
    // Whatever the collector sends is not ours to read; keep the socket flowing.
    socket.on('data', () => {});
    socket.on('error', () => {
      this.stats.errors++;
    });
    socket.on('close', () => {
      this.connected = false;
      if (this.socket === socket) this.socket = undefined;
      if (!this.closed) {
        this.timer = setTimeout(() => this.connect(), RECONNECT_MS);
        this.timer.unref();
      }
    });
  }

  ready(): boolean {
    return this.connected && this.socket !== undefined && this.socket.writableLength < MAX_TCP_QUEUED_BYTES;
  }

  add(header: Buffer, payload: Buffer): void {
    this.batch.push(header, payload);
    this.batchPackets++;
  }

  flush(): void {
    if (this.batchPackets === 0) return;
    const socket = this.socket;
    if (socket !== undefined && this.connected) {
      // One write (one system call) for the whole turn's packets.
      socket.write(Buffer.concat(this.batch));
      this.stats.sent += this.batchPackets;
    } else {
      this.stats.dropped += this.batchPackets;
    }
    this.batch = [];
    this.batchPackets = 0;
  }

  close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    const socket = this.socket;
    if (socket === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      socket.once('close', () => resolve());
      socket.end();
      setTimeout(() => socket.destroy(), 1000).unref();
    });
  }
}

export class HepMirror {
  readonly collector: string;
  private readonly captureId: number;
  private readonly sink: HepSink;
  private readonly stats_: CaptureStats;
  // The ring, as parallel arrays: a noted message allocates nothing.
  private readonly payloads: (Buffer | undefined)[] = new Array(CAPTURE_RING).fill(undefined);
  private readonly protocols = new Uint8Array(CAPTURE_RING);
  private readonly sources: string[] = new Array<string>(CAPTURE_RING).fill('');
  private readonly destinations: string[] = new Array<string>(CAPTURE_RING).fill('');
  private readonly sourcePorts = new Uint16Array(CAPTURE_RING);
  private readonly destinationPorts = new Uint16Array(CAPTURE_RING);
  private readonly times = new Float64Array(CAPTURE_RING);
  private count = 0;
  private scheduled = false;
  private closed = false;

  private constructor(collector: string, captureId: number, sink: HepSink, stats: CaptureStats) {
    this.collector = collector;
    this.captureId = captureId;
    this.sink = sink;
    this.stats_ = stats;
  }

  /**
   * Opens the capture socket: a connected UDP socket, or a TCP connection (established in the
   * background and re-established when lost; until it is up, captured messages are dropped).
   */
  static async open(opts: HepMirrorOptions): Promise<HepMirror> {
    const c = parseCollector(opts.collector);
    const stats: CaptureStats = { captured: 0, sent: 0, dropped: 0, errors: 0 };
    const sink = c.protocol === 'udp' ? await UdpSink.open(c.address, c.port, stats) : new TcpSink(c.address, c.port, stats);
    return new HepMirror(opts.collector, opts.captureId, sink, stats);
  }

  /** The receive tap: a framed message as it arrived. */
  readonly received = (inbound: Inbound): void => {
    const l = inbound.listener;
    this.note(inbound.protocol, inbound.bytes, inbound.sourceAddress, inbound.sourcePort, l.address, l.port);
  };

  /** The send tap (the transport's onSent): a message handed to a socket. */
  readonly sent = (target: Target, bytes: Buffer, listener: Listener | undefined): void => {
    this.note(target.protocol, bytes, listener?.address ?? '', listener?.port ?? 0, target.address, target.port);
  };

  stats(): CaptureStats {
    return { ...this.stats_ };
  }

  /** Sends what is noted, then closes the socket. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.flush();
    this.closed = true;
    return this.sink.close();
  }

  private note(protocol: 'udp' | 'tcp', bytes: Buffer, src: string, srcPort: number, dst: string, dstPort: number): void {
    const s = this.stats_;
    s.captured++;
    const i = this.count;
    if (i >= CAPTURE_RING || this.closed) {
      s.dropped++;
      return;
    }
    this.payloads[i] = bytes;
    this.protocols[i] = protocol === 'udp' ? UDP : TCP;
    this.sources[i] = src;
    this.sourcePorts[i] = srcPort;
    this.destinations[i] = dst;
    this.destinationPorts[i] = dstPort;
    this.times[i] = performance.timeOrigin + performance.now();
    this.count = i + 1;
    if (!this.scheduled) {
      this.scheduled = true;
      const after = this.sink.flushAfterMs;
      if (after === undefined) setImmediate(this.flush);
      else setTimeout(this.flush, after).unref();
    }
  }

  /** Encodes and sends everything noted; runs once per turn (10 ms over TCP) that noted something. */
  private readonly flush = (): void => {
    this.scheduled = false;
    const n = this.count;
    this.count = 0;
    const s = this.stats_;
    for (let i = 0; i < n; i++) {
      const payload = this.payloads[i]!;
      this.payloads[i] = undefined; // do not keep the message alive
      if (this.closed || !this.sink.ready()) {
        s.dropped++;
        continue;
      }
      const header = encodeHepHeader({
        protocol: this.protocols[i] === UDP ? 'udp' : 'tcp',
        sourceAddress: this.sources[i]!,
        sourcePort: this.sourcePorts[i]!,
        destinationAddress: this.destinations[i]!,
        destinationPort: this.destinationPorts[i]!,
        timeMs: this.times[i]!,
        captureId: this.captureId,
        correlationId: findCallId(payload),
        payloadLength: payload.length,
      });
      if (header === undefined) {
        s.dropped++;
        continue;
      }
      this.sink.add(header, payload);
    }
    this.sink.flush();
  };
}

/** `udp:127.0.0.1:9060`, `tcp:[::1]:9060` → protocol, address and port. */
export function parseCollector(spec: string): { protocol: 'udp' | 'tcp'; address: string; port: number } {
  const m = /^(udp|tcp):(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):([0-9]{1,5})$/.exec(spec);
  const port = m === null ? NaN : Number(m[4]);
  if (m === null || !(port > 0 && port < 65536)) {
    throw usageError(
      'E_CONFIG_BAD_VALUE',
      `config capture.hep: expected udp:IP:PORT or tcp:IP:PORT of a HEP collector, e.g. udp:127.0.0.1:9060, got ${JSON.stringify(spec)}`,
    );
  }
  return { protocol: m[1] as 'udp' | 'tcp', address: (m[2] ?? m[3])!, port };
}
