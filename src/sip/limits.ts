/**
 * Bounds on what one message may hold, beyond which it is not SIP but an attack on the
 * parser. RFC 3261 sets none of these; they sit far above anything a real element sends, so
 * that the cost of reading a message stays a small constant per byte however it is built
 * (issue 8: a crafted request costs O(its size)). A message over a bound is refused with
 * `400 Bad Request (reason)` when a reply can be addressed, and dropped otherwise.
 */

/**
 * Parameters on one Via value, one URI, or one header value (name-addr params). A real Via
 * carries branch, rport, received and a handful more; a URI transport, user, lr, maddr and a
 * few of its own.
 */
export const MAX_PARAMS = 64;

/**
 * Bytes in one value the proxy parses or hashes: a Via value, a name-addr (From, To, Route,
 * Record-Route, Path, Contact), a Call-ID, a CSeq. Real ones are tens to a few hundred bytes;
 * a longer one is refused rather than read several times over. Other header fields (Subject,
 * X-..., the body) are carried byte for byte and never read, so they are not bounded here.
 */
export const MAX_VALUE_BYTES = 4096;

/** Bytes in a Request-URI (longer: 414 Request-URI Too Long, RFC 3261 §21.4.12). */
export const MAX_REQUEST_URI_BYTES = 4096;

/**
 * Values of one list header (Via, Route, Record-Route, Contact, Supported, ...) in one
 * message, across its fields. A request passes at most 255 proxies (Max-Forwards), each
 * adding one Via and one or two Record-Route entries; nothing real comes near this.
 */
export const MAX_LIST_VALUES = 512;
