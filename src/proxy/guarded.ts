/**
 * Headers a routing script cannot edit (SipMessage.guard while a hook runs): the core's own —
 * Via (§16.6 step 8, §16.7 step 3, the loop check §16.3 item 4), the transaction's identity
 * (Call-ID, CSeq: matching, §17.2.3) and the framing. Max-Forwards a route may lower (as
 * Kamailio's maxfwd module does) but never raise: the core caps it at the received value
 * before its decrement (ProxyCore.forward, §16.6 step 3).
 */
export const CORE_HEADERS: ReadonlySet<string> = new Set(['via', 'call-id', 'cseq', 'content-length']);
