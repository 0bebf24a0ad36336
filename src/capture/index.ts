/** SIP capture: HEPv3 mirroring of every message received and sent, off the forwarding path. */
export { HepMirror, parseCollector, CAPTURE_RING, MAX_SOCKET_QUEUE, MAX_TCP_QUEUED_BYTES, RECONNECT_MS, type CaptureStats, type HepMirrorOptions } from './mirror.js';
export { encodeHepHeader, findCallId, HEP_CHUNK, HEP_MAX_PACKET, type HepMessage } from './hep.js';
