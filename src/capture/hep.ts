/**
 * HEPv3 encoding (the Homer Encapsulation Protocol, version 3: what Homer, heplify-server and
 * sngrep's HEP server read). A packet is the 4 bytes "HEP3", a 16-bit total length, then
 * chunks; each chunk is a 16-bit vendor id (0 = generic), a 16-bit type, a 16-bit length that
 * counts its own 6-byte header, and the value. All numbers are big-endian (network order).
 *
 * encodeHepHeader() writes everything but the payload's bytes, so the SIP message is sent as
 * the second part of a scatter/gather datagram and never copied.
 */
import { isIPv4 } from 'node:net';
import ipaddr from 'ipaddr.js';

/** Generic chunk types (vendor 0) used here. */
export const HEP_CHUNK = {
  ipFamily: 0x0001,
  ipProtocol: 0x0002,
  ipv4Source: 0x0003,
  ipv4Destination: 0x0004,
  ipv6Source: 0x0005,
  ipv6Destination: 0x0006,
  sourcePort: 0x0007,
  destinationPort: 0x0008,
  timeSeconds: 0x0009,
  timeMicroseconds: 0x000a,
  protocolType: 0x000b,
  captureId: 0x000c,
  payload: 0x000f,
  correlationId: 0x0011,
} as const;

/** Address families as HEP writes them (the BSD socket values). */
export const HEP_AF_INET = 2;
export const HEP_AF_INET6 = 10;
/** IP protocol numbers. */
export const HEP_IPPROTO_TCP = 6;
export const HEP_IPPROTO_UDP = 17;
/** Protocol type 1: SIP. */
export const HEP_PROTO_SIP = 1;

/** A HEP packet's length field is 16 bits: header and payload must fit in 65,535 bytes. */
export const HEP_MAX_PACKET = 0xffff;

export interface HepMessage {
  protocol: 'udp' | 'tcp';
  sourceAddress: string;
  sourcePort: number;
  destinationAddress: string;
  destinationPort: number;
  /** Milliseconds since the epoch, with a fraction (microseconds are kept). */
  timeMs: number;
  captureId: number;
  /** The SIP Call-ID, for the collector's correlation (chunk 0x11); omitted when empty. */
  correlationId: string;
  payloadLength: number;
}

const CHUNK_HEADER = 6;

/**
 * The HEPv3 packet for `m` up to (and including) the payload chunk's header: the payload's
 * bytes follow it on the wire. Returns undefined when the addresses are not of one IP family
 * or the packet would exceed 65,535 bytes.
 */
export function encodeHepHeader(m: HepMessage): Buffer | undefined {
  const v4 = isIPv4(m.sourceAddress);
  if (v4 !== isIPv4(m.destinationAddress)) return undefined;
  const addrLen = v4 ? 4 : 16;
  const corr = m.correlationId.length > 0 ? Buffer.byteLength(m.correlationId, 'latin1') : 0;
  const size =
    6 + // "HEP3" + total length
    (CHUNK_HEADER + 1) * 2 + // family, protocol
    (CHUNK_HEADER + addrLen) * 2 + // source, destination address
    (CHUNK_HEADER + 2) * 2 + // ports
    (CHUNK_HEADER + 4) * 2 + // time seconds, microseconds
    (CHUNK_HEADER + 1) + // protocol type
    (CHUNK_HEADER + 4) + // capture id
    (corr > 0 ? CHUNK_HEADER + corr : 0) +
    CHUNK_HEADER; // payload chunk header
  const total = size + m.payloadLength;
  if (total > HEP_MAX_PACKET) return undefined;
  const b = Buffer.allocUnsafe(size);
  b.write('HEP3', 0, 'latin1');
  b.writeUInt16BE(total, 4);
  let p = 6;
  const chunk = (type: number, length: number): void => {
    b.writeUInt16BE(0, p);
    b.writeUInt16BE(type, p + 2);
    b.writeUInt16BE(CHUNK_HEADER + length, p + 4);
    p += CHUNK_HEADER;
  };
  chunk(HEP_CHUNK.ipFamily, 1);
  b.writeUInt8(v4 ? HEP_AF_INET : HEP_AF_INET6, p++);
  chunk(HEP_CHUNK.ipProtocol, 1);
  b.writeUInt8(m.protocol === 'udp' ? HEP_IPPROTO_UDP : HEP_IPPROTO_TCP, p++);
  chunk(v4 ? HEP_CHUNK.ipv4Source : HEP_CHUNK.ipv6Source, addrLen);
  p = writeAddress(b, p, m.sourceAddress, v4);
  chunk(v4 ? HEP_CHUNK.ipv4Destination : HEP_CHUNK.ipv6Destination, addrLen);
  p = writeAddress(b, p, m.destinationAddress, v4);
  chunk(HEP_CHUNK.sourcePort, 2);
  b.writeUInt16BE(m.sourcePort & 0xffff, p);
  p += 2;
  chunk(HEP_CHUNK.destinationPort, 2);
  b.writeUInt16BE(m.destinationPort & 0xffff, p);
  p += 2;
  const seconds = Math.floor(m.timeMs / 1000);
  chunk(HEP_CHUNK.timeSeconds, 4);
  b.writeUInt32BE(seconds >>> 0, p);
  p += 4;
  chunk(HEP_CHUNK.timeMicroseconds, 4);
  b.writeUInt32BE(Math.min(999_999, Math.floor((m.timeMs - seconds * 1000) * 1000)) >>> 0, p);
  p += 4;
  chunk(HEP_CHUNK.protocolType, 1);
  b.writeUInt8(HEP_PROTO_SIP, p++);
  chunk(HEP_CHUNK.captureId, 4);
  b.writeUInt32BE(m.captureId >>> 0, p);
  p += 4;
  if (corr > 0) {
    chunk(HEP_CHUNK.correlationId, corr);
    p += b.write(m.correlationId, p, 'latin1');
  }
  chunk(HEP_CHUNK.payload, m.payloadLength);
  return b;
}

function writeAddress(b: Buffer, p: number, address: string, v4: boolean): number {
  const bytes = addressBytes(address, v4);
  for (let i = 0; i < bytes.length; i++) b[p + i] = bytes[i]!;
  return p + bytes.length;
}

/** The 4 or 16 bytes of an IP literal (an IPv4-mapped IPv6 address stays IPv6; a zone id is ignored). */
export function addressBytes(address: string, v4: boolean): number[] {
  try {
    const zone = address.indexOf('%');
    return ipaddr.parse(zone >= 0 ? address.slice(0, zone) : address).toByteArray();
  } catch {
    return new Array<number>(v4 ? 4 : 16).fill(0);
  }
}

/**
 * The Call-ID of a SIP message (long form `Call-ID:` or compact `i:`, any case, RFC 3261
 * §7.3.3 and §20.8), found by walking the header lines; '' when there is none. Only the header
 * section is looked at, and at most 200 bytes of the value are kept.
 */
export function findCallId(b: Buffer): string {
  const n = b.length;
  let p = 0;
  while (p < n) {
    let e = b.indexOf(10, p);
    if (e < 0) e = n;
    const lineEnd = e > p && b[e - 1] === 13 ? e - 1 : e;
    if (lineEnd === p) return ''; // the empty line: end of the headers
    const c = b[p]! | 0x20;
    let colon = -1;
    if (c === 0x69 /* i */) {
      let q = p + 1;
      while (q < lineEnd && (b[q] === 32 || b[q] === 9)) q++;
      if (b[q] === 58) colon = q;
    } else if (c === 0x63 /* c */ && lineEnd - p > 7 && b.toString('latin1', p, p + 7).toLowerCase() === 'call-id') {
      let q = p + 7;
      while (q < lineEnd && (b[q] === 32 || b[q] === 9)) q++;
      if (b[q] === 58) colon = q;
    }
    if (colon >= 0) {
      let s = colon + 1;
      while (s < lineEnd && (b[s] === 32 || b[s] === 9)) s++;
      let t = lineEnd;
      while (t > s && (b[t - 1] === 32 || b[t - 1] === 9)) t--;
      return b.toString('latin1', s, Math.min(t, s + 200));
    }
    p = e + 1;
  }
  return '';
}
