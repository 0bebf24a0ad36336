/**
 * The RFC 3261 transaction layer: what a transaction-stateful proxy keeps between a request
 * and its responses. It sits between the proxy core and the route when a request is relayed
 * statefully; the stateless path never goes through it.
 *
 * It owns:
 * - the four transaction state machines of §17 — INVITE client (figure 5, §17.1.1),
 *   non-INVITE client (figure 6, §17.1.2), INVITE server (figure 7, §17.2.1), non-INVITE
 *   server (figure 8, §17.2.2) — with Timers A–K over T1/T2/T4 (Table 4), and RFC 6026's
 *   Accepted states (Timers L, M) for the INVITE transactions, on by default;
 *   client.ts, server.ts, timers.ts;
 * - the messages a transaction writes itself: the ACK for a non-2xx final (§17.1.1.3), the
 *   CANCEL of a branch (§9.1), local responses (§8.2.6); build.ts;
 * - matching: requests to server transactions (§17.2.3, with the ACK and CANCEL rules of
 *   §17.2.3 and §9.2 and the RFC 2543 fallback), responses to client transactions
 *   (§17.1.3), in a table with a hard cap; key.ts, table.ts;
 * - the proxy's response context (§16.7–§16.10): one server transaction and N branches,
 *   provisional and 2xx forwarding, the best final response (§16.7 step 6; select.ts),
 *   Timer C as Kamailio's fr_timer / fr_inv_timer (§16.8), CANCEL fan-out (§16.10), the
 *   failure hook where failover plugs in, and per-transaction state (Kamailio's AVPs);
 *   proxy.ts.
 *
 * It does not own sockets (everything goes out through the layer's `send`), Via/Record-Route
 * construction for a forwarded request (the proxy core builds a branch's bytes), routing
 * decisions (the route) or destination states (the dispatcher). Every timer goes through the
 * injected clock and is released when its transaction terminates.
 */
export { buildAck, buildCancel, buildLocalResponse, type RequestSource } from './build.js';
export {
  ClientTransaction,
  createClientTransaction,
  InviteClientTransaction,
  NonInviteClientTransaction,
  QUIET_CLIENT_USER,
  type ClientState,
  type ClientTransactionInit,
  type ClientTransactionUser,
} from './client.js';
export { isRfc3261Branch, requestKey, type RequestKey } from './key.js';
export { TransactionLayer, type TimerOwner, type TransactionLayerOptions, type TransactionStats } from './layer.js';
export {
  DEFAULT_FR_INV_TIMER_MS,
  DEFAULT_FR_TIMER_MS,
  DEFAULT_MAX_BRANCHES,
  ProxyBranch,
  ProxyTransaction,
  type BranchRefusal,
  type BranchSpec,
  type FailureHook,
  type ProxyTransactionHost,
  type ProxyTransactionInit,
  type ResponseHook,
} from './proxy.js';
export { pickBest, responseRank } from './select.js';
export {
  createServerTransaction,
  InviteServerTransaction,
  NonInviteServerTransaction,
  QUIET_SERVER_USER,
  ServerTransaction,
  type ServerDisposition,
  type ServerState,
  type ServerTransactionInit,
  type ServerTransactionUser,
} from './server.js';
export { DEFAULT_MAX_TRANSACTIONS, MAX_BUCKET, TransactionTable } from './table.js';
export { TimerEntry, TimerQueue } from './timer-queue.js';
export { DEFAULT_TIMERS, monotonicClock, resolveTimers, systemClock, type Clock, type TimerValues } from './timers.js';
