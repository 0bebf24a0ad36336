/**
 * Choosing the best final response of a response context (RFC 3261 §16.7 step 6):
 *
 * - a 6xx beats everything (step 5 already cancelled the other branches);
 * - otherwise the lowest response class wins (3xx, then 4xx, then 5xx);
 * - within 4xx, responses that tell the caller how to resubmit — 401, 407, 415, 420, 484 —
 *   are preferred ("SHOULD give preference"), the order Kamailio's tm also uses;
 * - otherwise, within a class, the lowest code wins; on a tie, the first one received.
 *
 * Local outcomes (a branch's timeout is a 408, a transport error a 503, §16.8, §16.9) rank
 * behind every response received in the same class: the step lets us pick any response of
 * the class, and a "486 Busy Here" from the last destination tried tells the caller more
 * than our own 408 for the one before (Kamailio's faked_reply_prio can be set to the same).
 * What goes upstream when the winner is a 503 is decided by the proxy transaction (a 500,
 * step 6).
 */

/** 4xx codes preferred by §16.7 step 6. */
const RESUBMIT_4XX = new Set([401, 407, 415, 420, 484]);

/** Lower is better. `local`: the outcome is ours (timeout, transport error), not received. */
export function responseRank(status: number, local = false): number {
  let group: number;
  if (status >= 600 && status < 700) group = 0;
  else if (status >= 300 && status < 400) group = 1;
  else if (status >= 400 && status < 500) group = RESUBMIT_4XX.has(status) ? 2 : 3;
  else if (status >= 500 && status < 600) group = 4;
  else group = 9;
  return group * 10_000 + (local ? 1000 : 0) + status;
}

/** The best of the final outcomes (status ≥ 300), or undefined when there is none. */
export function pickBest<T extends { readonly status: number; readonly local?: boolean }>(outcomes: readonly T[]): T | undefined {
  let best: T | undefined;
  let bestRank = Infinity;
  for (const o of outcomes) {
    if (o.status < 300) continue;
    const r = responseRank(o.status, o.local === true);
    if (r < bestRank) {
      best = o;
      bestRank = r;
    }
  }
  return best;
}
