/**
 * HEPv3 encoding (the Homer Encapsulation Protocol, version 3: what Homer, heplify-server and
 * sngrep's HEP server read). A packet is the 4 bytes "HEP3", a 16-bit total length, then
 * chunks; each chunk is a 16-bit vendor id (0 = generic), a 16-bit type, a 16-bit length that
 * counts its own 6-byte header, and the value. All numbers are big-endian (network order).
 *
 * encodeHepHeader() writes everything but the payload's bytes, so the SIP message is sent as
 * the second part of a scatter/gather datagram and never copied.
 */
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

/** A generic chunk's header at p; returns where its value starts. */
function chunk(b: Buffer, p: number, type: number, valueLength: number): number {
  b[p] = 0;
  b[p + 1] = 0;
  b[p + 2] = type >>> 8;
  b[p + 3] = type & 0xff;
  const len = CHUNK_HEADER + valueLength;
  b[p + 4] = len >>> 8;
  b[p + 5] = len & 0xff;
  return p + CHUNK_HEADER;
}

/**
 * The HEPv3 packet for `m` up to (and including) the payload chunk's header: the payload's
 * bytes follow it on the wire. Returns undefined when the addresses are not of one IP family
 * or the packet would exceed 65,535 bytes. Addresses are IP literals (the transport's).
 */
export function encodeHepHeader(m: HepMessage): Buffer | undefined {
  const v4 = m.sourceAddress.indexOf(':') < 0;
  if (v4 !== m.destinationAddress.indexOf(':') < 0) return undefined;
  const addrLen = v4 ? 4 : 16;
  const corr = m.correlationId.length;
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
  b[0] = 0x48; // H
  b[1] = 0x45; // E
  b[2] = 0x50; // P
  b[3] = 0x33; // 3
  b[4] = total >>> 8;
  b[5] = total & 0xff;
  let p = chunk(b, 6, HEP_CHUNK.ipFamily, 1);
  b[p++] = v4 ? HEP_AF_INET : HEP_AF_INET6;
  p = chunk(b, p, HEP_CHUNK.ipProtocol, 1);
  b[p++] = m.protocol === 'udp' ? HEP_IPPROTO_UDP : HEP_IPPROTO_TCP;
  p = chunk(b, p, v4 ? HEP_CHUNK.ipv4Source : HEP_CHUNK.ipv6Source, addrLen);
  p = writeAddress(b, p, m.sourceAddress, v4);
  p = chunk(b, p, v4 ? HEP_CHUNK.ipv4Destination : HEP_CHUNK.ipv6Destination, addrLen);
  p = writeAddress(b, p, m.destinationAddress, v4);
  p = chunk(b, p, HEP_CHUNK.sourcePort, 2);
  b.writeUInt16BE(m.sourcePort & 0xffff, p);
  p = chunk(b, p + 2, HEP_CHUNK.destinationPort, 2);
  b.writeUInt16BE(m.destinationPort & 0xffff, p);
  const seconds = Math.floor(m.timeMs / 1000);
  p = chunk(b, p + 2, HEP_CHUNK.timeSeconds, 4);
  b.writeUInt32BE(seconds >>> 0, p);
  p = chunk(b, p + 4, HEP_CHUNK.timeMicroseconds, 4);
  b.writeUInt32BE(Math.min(999_999, Math.floor((m.timeMs - seconds * 1000) * 1000)) >>> 0, p);
  p = chunk(b, p + 4, HEP_CHUNK.protocolType, 1);
  b[p++] = HEP_PROTO_SIP;
  p = chunk(b, p, HEP_CHUNK.captureId, 4);
  b.writeUInt32BE(m.captureId >>> 0, p);
  p += 4;
  if (corr > 0) {
    p = chunk(b, p, HEP_CHUNK.correlationId, corr);
    p += b.write(m.correlationId, p, 'latin1');
  }
  chunk(b, p, HEP_CHUNK.payload, m.payloadLength);
  return b;
}

/** Writes an IP literal's 4 or 16 bytes at p. IPv4 is read digit by digit (no allocation). */
function writeAddress(b: Buffer, p: number, address: string, v4: boolean): number {
  if (v4) {
    let octet = 0;
    let k = 0;
    for (let i = 0; i < address.length && k < 4; i++) {
      const c = address.charCodeAt(i);
      if (c === 46 /* . */) {
        b[p + k++] = octet & 0xff;
        octet = 0;
      } else {
        octet = octet * 10 + (c - 48);
      }
    }
    if (k < 4) b[p + k++] = octet & 0xff;
    while (k < 4) b[p + k++] = 0;
    return p + 4;
  }
  const bytes = addressBytes(address, false);
  for (let i = 0; i < 16; i++) b[p + i] = bytes[i] ?? 0;
  return p + 16;
}

/** The 4 or 16 bytes of an IP literal (an IPv4-mapped IPv6 address stays IPv6; a zone id is ignored). */
export function addressBytes(address: string, v4: boolean): number[] {
  try {
    const zone = address.indexOf('%');
    const bytes = ipaddr.parse(zone >= 0 ? address.slice(0, zone) : address).toByteArray();
    // "::ffff:1.2.3.4" parses as IPv4 in ipaddr.js: give it back as the IPv6 it was written as.
    return !v4 && bytes.length === 4 ? [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...bytes] : bytes;
  } catch {
    return new Array<number>(v4 ? 4 : 16).fill(0);
  }
}

/** "call-id" at b[p..p+7), any case (the caller checked the 'c'). */
function isCallIdName(b: Buffer, p: number): boolean {
  return (
    (b[p + 1]! | 0x20) === 0x61 && // a
    (b[p + 2]! | 0x20) === 0x6c && // l
    (b[p + 3]! | 0x20) === 0x6c && // l
    b[p + 4] === 0x2d && // -
    (b[p + 5]! | 0x20) === 0x69 && // i
    (b[p + 6]! | 0x20) === 0x64 // d
  );
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
    } else if (c === 0x63 /* c */ && lineEnd - p > 7 && isCallIdName(b, p)) {
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
