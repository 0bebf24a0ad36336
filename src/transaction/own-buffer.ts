/**
 * Bytes a transaction keeps (a request to retransmit, the last response to resend, the ACK
 * for a non-2xx) live for up to 64·T1 = 32 s. Node hands out Buffers under 4 KB
 * (`Buffer.allocUnsafe`, which the serializer uses) as slices of a shared 8 KB slab, and a
 * slab is freed only when every slice of it is: one kept slice keeps 8 KB alive. Under load
 * every slab holds some kept slice, and a transaction costs its neighbours' garbage too
 * (measured: 16 KB of buffers per call in transaction mode, 0.6 KB with this).
 *
 * So what a transaction keeps for long gets a copy of exactly its own size: a final response
 * kept for Timer G / J, the ACK for a non-2xx, a request still unanswered when its first
 * retransmission is due. What is kept only until an answer that normally comes within
 * milliseconds (the request sent, a provisional) stays where it is: copying each of those
 * cost more CPU (a backing store per Buffer) than the pinning it would save. A Buffer that
 * already owns its memory (a datagram as received, a large message) is kept as it is.
 */
export function ownBuffer(bytes: Buffer): Buffer {
  if (bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.byteLength) return bytes;
  const own = Buffer.allocUnsafeSlow(bytes.byteLength);
  bytes.copy(own);
  return own;
}
