/**
 * A small authoritative DNS server for tests: UDP on 127.0.0.1, answering A, AAAA, SRV and
 * NAPTR questions from a table (RFC 1035 §4 message format; SRV RFC 2782; NAPTR RFC 3403).
 * Unknown names get NXDOMAIN, known names without records of the asked type get an empty
 * NOERROR answer. Every question is logged so tests can say what was (not) asked.
 */
import { createSocket, type Socket } from 'node:dgram';
import ipaddr from 'ipaddr.js';

export interface AddressRecord {
  address: string;
  ttl?: number;
}
export interface SrvRecord {
  priority: number;
  weight: number;
  port: number;
  target: string;
  ttl?: number;
}
export interface NaptrRecord {
  order: number;
  preference: number;
  flags: string;
  service: string;
  regexp?: string;
  replacement: string;
  ttl?: number;
}
export interface Zone {
  A?: AddressRecord[];
  AAAA?: AddressRecord[];
  SRV?: SrvRecord[];
  NAPTR?: NaptrRecord[];
}

const TYPES: Record<number, keyof Zone> = { 1: 'A', 28: 'AAAA', 33: 'SRV', 35: 'NAPTR' };

function encodeName(name: string): Buffer {
  const parts = name.replace(/\.$/, '').split('.').filter((p) => p !== '');
  const bufs = parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'ascii')]));
  return Buffer.concat([...bufs, Buffer.from([0])]);
}

function charString(s: string): Buffer {
  return Buffer.concat([Buffer.from([s.length]), Buffer.from(s, 'ascii')]);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function rdata(type: keyof Zone, r: AddressRecord | SrvRecord | NaptrRecord): Buffer {
  switch (type) {
    case 'A':
    case 'AAAA':
      return Buffer.from(ipaddr.parse((r as AddressRecord).address).toByteArray());
    case 'SRV': {
      const s = r as SrvRecord;
      return Buffer.concat([u16(s.priority), u16(s.weight), u16(s.port), encodeName(s.target)]);
    }
    case 'NAPTR': {
      const n = r as NaptrRecord;
      return Buffer.concat([
        u16(n.order),
        u16(n.preference),
        charString(n.flags),
        charString(n.service),
        charString(n.regexp ?? ''),
        encodeName(n.replacement),
      ]);
    }
  }
}

export class TestDnsServer {
  readonly zones = new Map<string, Zone>();
  readonly queries: string[] = [];
  private socket: Socket | undefined;

  /** Sets (replaces) the records of a name. */
  set(name: string, zone: Zone): void {
    this.zones.set(name.toLowerCase(), zone);
  }

  delete(name: string): void {
    this.zones.delete(name.toLowerCase());
  }

  async start(): Promise<string> {
    const s = createSocket('udp4');
    this.socket = s;
    s.on('message', (msg, rinfo) => {
      const reply = this.answer(msg);
      if (reply) s.send(reply, rinfo.port, rinfo.address);
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(0, '127.0.0.1', () => resolve());
    });
    return `127.0.0.1:${s.address().port}`;
  }

  async stop(): Promise<void> {
    const s = this.socket;
    this.socket = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }

  private answer(msg: Buffer): Buffer | undefined {
    if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return undefined;
    // Question: labels up to the zero byte, then QTYPE and QCLASS.
    let off = 12;
    const labels: string[] = [];
    for (let guard = 0; guard < 128; guard++) {
      const len = msg[off];
      if (len === undefined) return undefined;
      off++;
      if (len === 0) break;
      labels.push(msg.subarray(off, off + len).toString('ascii'));
      off += len;
    }
    const qtype = msg.readUInt16BE(off);
    const questionEnd = off + 4;
    const name = labels.join('.').toLowerCase();
    const typeName = TYPES[qtype];
    this.queries.push(`${typeName ?? qtype} ${name}`);
    const zone = this.zones.get(name);
    const records = zone && typeName ? (zone[typeName] ?? []) : [];
    const rcode = zone === undefined ? 3 : 0; // NXDOMAIN for names not in the table
    const flags = 0x8000 | 0x0400 | (msg.readUInt16BE(2) & 0x0100) | 0x0080 | rcode;
    const header = Buffer.concat([msg.subarray(0, 2), u16(flags), u16(1), u16(records.length), u16(0), u16(0)]);
    const answers = records.map((r) => {
      const data = rdata(typeName!, r);
      const ttl = Buffer.alloc(4);
      ttl.writeUInt32BE(r.ttl ?? 0);
      // 0xC00C: a pointer to the question's name at offset 12 (RFC 1035 §4.1.4).
      return Buffer.concat([u16(0xc00c), u16(qtype), u16(1), ttl, u16(data.length), data]);
    });
    return Buffer.concat([header, msg.subarray(12, questionEnd), ...answers]);
  }
}
