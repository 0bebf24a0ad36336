/**
 * SIP capture: every message the proxy receives and sends, mirrored to a HEP collector
 * (Homer, heplify-server, sngrep -L) as HEPv3 over UDP.
 *
 * Off the forwarding path: the taps (received / sent) only note the message in a fixed-size
 * ring — references and numbers, no copy, no encoding, no I/O — and the ring is encoded and
 * sent on the next turn of the event loop (setImmediate), after the messages of this turn
 * have been forwarded. Never blocking, never growing: when the ring is full, or the capture
 * socket already holds MAX_SOCKET_QUEUE datagrams the kernel has not taken (a collector or a
 * network that cannot keep up), the message is dropped from the capture and counted. The
 * forwarded copy is never affected.
 */
import dgram from 'node:dgram';
import type { Inbound, Listener, Target } from '../transport/types.js';
import { usageError } from '../errors.js';
import { encodeHepHeader, findCallId } from './hep.js';

/** Messages noted per event-loop turn before the capture drops (a burst larger than this is rare). */
export const CAPTURE_RING = 4096;
/** Datagrams queued in the capture socket (not yet taken by the kernel) before the capture drops. */
export const MAX_SOCKET_QUEUE = 1024;

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
  /** The collector, `udp:IP:PORT`. */
  collector: string;
  /** HEP capture agent id (chunk 0x000c). */
  captureId: number;
}

const UDP = 0;
const TCP = 1;

export class HepMirror {
  readonly collectorAddress: string;
  readonly collectorPort: number;
  private readonly captureId: number;
  private readonly socket: dgram.Socket;
  private readonly stats_: CaptureStats = { captured: 0, sent: 0, dropped: 0, errors: 0 };
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

  private constructor(collector: { address: string; port: number }, captureId: number, socket: dgram.Socket) {
    this.collectorAddress = collector.address;
    this.collectorPort = collector.port;
    this.captureId = captureId;
    this.socket = socket;
    socket.on('error', () => {
      this.stats_.errors++;
    });
  }

  /** Opens the capture socket (an ephemeral port of the collector's family). */
  static async open(opts: HepMirrorOptions): Promise<HepMirror> {
    const collector = parseCollector(opts.collector);
    const socket = dgram.createSocket({
      type: collector.address.includes(':') ? 'udp6' : 'udp4',
      // The collector is an IP literal: no DNS, no deferred send.
      lookup: (address, _family, cb) => cb(null, address, address.includes(':') ? 6 : 4),
    });
    // Connected: the kernel looks the route up once, not per datagram.
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(collector.port, collector.address, () => {
        socket.removeListener('error', reject);
        resolve();
      });
    });
    return new HepMirror(collector, opts.captureId, socket);
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
    return new Promise((resolve) => this.socket.close(() => resolve()));
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
      setImmediate(this.flush);
    }
  }

  /** Encodes and sends everything noted; runs once per event-loop turn that noted something. */
  private readonly flush = (): void => {
    this.scheduled = false;
    const n = this.count;
    this.count = 0;
    const s = this.stats_;
    for (let i = 0; i < n; i++) {
      const payload = this.payloads[i]!;
      this.payloads[i] = undefined; // do not keep the message alive
      if (this.closed || this.socket.getSendQueueCount() >= MAX_SOCKET_QUEUE) {
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
      try {
        this.socket.send([header, payload]);
        s.sent++;
      } catch {
        s.errors++;
      }
    }
  };
}

/** `udp:127.0.0.1:9060`, `udp:[::1]:9060` → address and port. */
export function parseCollector(spec: string): { address: string; port: number } {
  const m = /^udp:(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):([0-9]{1,5})$/.exec(spec);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || !(port > 0 && port < 65536)) {
    throw usageError('E_CONFIG_BAD_VALUE', `config capture.hep: expected udp:IP:PORT of a HEP collector, e.g. udp:127.0.0.1:9060, got ${JSON.stringify(spec)}`);
  }
  return { address: (m[1] ?? m[2])!, port };
}
