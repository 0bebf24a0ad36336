/**
 * A HEPv3 decoder for the tests, written from the format (not from src/capture/hep.ts): "HEP3",
 * a 16-bit total length, then chunks of vendor id, type id and length (6-byte header included),
 * all big-endian. It refuses anything malformed, so a bad encoder fails the tests.
 */
export interface DecodedHep {
  family: number;
  ipProtocol: number;
  source: string;
  destination: string;
  sourcePort: number;
  destinationPort: number;
  seconds: number;
  microseconds: number;
  protocolType: number;
  captureId: number;
  correlationId: string | undefined;
  payload: Buffer;
  /** Every chunk type seen, in order. */
  types: number[];
}

function ipText(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(b.readUInt16BE(i).toString(16));
  return words.join(':');
}

export function decodeHep(packet: Buffer): DecodedHep {
  if (packet.length < 6 || packet.toString('latin1', 0, 4) !== 'HEP3') throw new Error('not a HEP3 packet');
  const total = packet.readUInt16BE(4);
  if (total !== packet.length) throw new Error(`HEP length ${total} but the datagram has ${packet.length} bytes`);
  const out: Partial<DecodedHep> & { types: number[] } = { types: [] };
  let p = 6;
  while (p < total) {
    if (total - p < 6) throw new Error('truncated chunk header');
    const vendor = packet.readUInt16BE(p);
    const type = packet.readUInt16BE(p + 2);
    const len = packet.readUInt16BE(p + 4);
    if (len < 6 || p + len > total) throw new Error(`chunk ${type} length ${len} does not fit`);
    if (vendor !== 0) throw new Error(`unexpected vendor ${vendor}`);
    const v = packet.subarray(p + 6, p + len);
    out.types.push(type);
    switch (type) {
      case 1: out.family = v.readUInt8(0); break;
      case 2: out.ipProtocol = v.readUInt8(0); break;
      case 3: case 5: out.source = ipText(v); break;
      case 4: case 6: out.destination = ipText(v); break;
      case 7: out.sourcePort = v.readUInt16BE(0); break;
      case 8: out.destinationPort = v.readUInt16BE(0); break;
      case 9: out.seconds = v.readUInt32BE(0); break;
      case 10: out.microseconds = v.readUInt32BE(0); break;
      case 11: out.protocolType = v.readUInt8(0); break;
      case 12: out.captureId = v.readUInt32BE(0); break;
      case 15: out.payload = Buffer.from(v); break;
      case 17: out.correlationId = v.toString('latin1'); break;
      default: throw new Error(`unexpected chunk type ${type}`);
    }
    p += len;
  }
  for (const k of ['family', 'ipProtocol', 'source', 'destination', 'sourcePort', 'destinationPort', 'seconds', 'microseconds', 'protocolType', 'captureId', 'payload'] as const) {
    if (out[k] === undefined) throw new Error(`HEP packet without ${k}`);
  }
  return out as DecodedHep;
}
