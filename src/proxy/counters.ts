/**
 * The core's per-kind counters: fixed-size typed arrays indexed by small enums, incremented
 * where the event happens. Nothing here looks a label up or allocates per message; whoever
 * reports them (src/metrics/, `sipctl status`) reads the arrays when asked and turns the
 * indexes into names then.
 *
 * Float64Array, not Uint32Array: a 32-bit counter wraps after 4.3 billion, which a busy proxy
 * reaches in days; a double counts exactly up to 2^53.
 */

/** Methods counted by name (RFC 3261 §7.1 and the extensions a PBX pool sees); the rest are 'other'. */
export const METHOD_NAMES = [
  'INVITE',
  'ACK',
  'BYE',
  'CANCEL',
  'REGISTER',
  'OPTIONS',
  'SUBSCRIBE',
  'NOTIFY',
  'REFER',
  'INFO',
  'UPDATE',
  'PRACK',
  'MESSAGE',
  'PUBLISH',
  'other',
] as const;

const OTHER_METHOD = METHOD_NAMES.length - 1;

/** The index of a method in METHOD_NAMES; anything not listed (any case) counts as 'other'. */
export function methodIndex(method: string): number {
  switch (method) {
    case 'INVITE': return 0;
    case 'ACK': return 1;
    case 'BYE': return 2;
    case 'CANCEL': return 3;
    case 'REGISTER': return 4;
    case 'OPTIONS': return 5;
    case 'SUBSCRIBE': return 6;
    case 'NOTIFY': return 7;
    case 'REFER': return 8;
    case 'INFO': return 9;
    case 'UPDATE': return 10;
    case 'PRACK': return 11;
    case 'MESSAGE': return 12;
    case 'PUBLISH': return 13;
    default: return OTHER_METHOD;
  }
}

/**
 * Why the core dropped a message without relaying or answering it (an index into
 * CoreCounters.drops; names in DROP_REASON_NAMES).
 */
export const DropReason = {
  /** The message could not be framed or parsed (no Via to answer to). */
  Parse: 0,
  /** A response from a source that is not admitted (acl.checkResponses). */
  NotAdmitted: 1,
  /** A request with no readable top Via: nobody to answer. */
  NoVia: 2,
  /** A response whose top Via is not ours (RFC 3261 §16.7 step 3). */
  ForeignVia: 3,
  /** An ACK: never answered (§17.1.1.3), or the ACK for one of our own replies, absorbed. */
  Ack: 4,
  /** The request or reply route dropped it. */
  Route: 5,
  /** Nowhere to send it: a response whose next Via cannot be reached or that nobody waits for, a reply that cannot be addressed. */
  Unroutable: 6,
} as const;

export type DropReason = (typeof DropReason)[keyof typeof DropReason];

/** Label values for DropReason, by index. */
export const DROP_REASON_NAMES = ['parse', 'not_admitted', 'no_via', 'foreign_via', 'ack', 'route', 'unroutable'] as const;

export class CoreCounters {
  /** Requests received (after admission by flood control), by METHOD_NAMES index. */
  readonly requestsByMethod = new Float64Array(METHOD_NAMES.length);
  /** Initial INVITEs (no To tag) that passed validation: new calls offered, retransmissions included. */
  initialInvites = 0;
  /** Responses relayed, by class: index 1 = 1xx ... 6 = 6xx. */
  readonly responsesByClass = new Float64Array(7);
  /** Local (stateless) replies sent, by status code (100..699). */
  readonly repliesByCode = new Float64Array(700);
  /** Messages dropped, by DropReason. */
  readonly drops = new Float64Array(DROP_REASON_NAMES.length);
}
