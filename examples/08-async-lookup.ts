// Replaces an asynchronous lookup: Kamailio's http_async_query / async_route (with tm's
// suspend and resume), e.g. number portability:
//   http_async_query("http://np.local/lookup?number=$rU", "NP_REPLY");
//   route[NP_REPLY] { $rU = $(http_rb{json.parse,rn}) + $rU; ds_select_dst(...); t_relay(); }
// The request route returns a Promise: the INVITE gets 100 Trying at once and its
// retransmissions are absorbed while the lookup runs. The answer names a routing number
// (prefixed to the Request-URI user) and a dispatcher set. If the service does not answer
// within route.asyncTimeoutMs, asyncTimeout() decides: dispatcher set 1, number unchanged.
// Needs a transaction (ctx.stateful = true): stateless, a Promise is refused with 500.
import { defineRoute, type RequestDecision } from 'sipctl';

const SERVICE = process.env.SIPCTL_EXAMPLE_NP ?? 'http://127.0.0.1:8080';

export default defineRoute({
  request(ctx) {
    if (!ctx.maxForwardsOk()) return ctx.reply(483, 'Too Many Hops');
    if (!ctx.sourceAllowed()) return ctx.reply(401, 'Address not authorised');
    ctx.stateful = true; // t_newtran(): the transaction holds retransmissions while we wait
    if (ctx.inDialog) return ctx.looseRoute() ? ctx.relay() : ctx.reply(404, 'Not here');
    if (ctx.msg.method !== 'INVITE') return ctx.dispatch(1, 'round-robin');
    ctx.recordRoute();
    const number = ctx.msg.uri.user ?? '';
    return (async (): Promise<RequestDecision> => {
      const res = await fetch(`${SERVICE}/lookup?number=${encodeURIComponent(number)}`, { signal: AbortSignal.timeout(10_000) });
      if (!res.ok) return ctx.dispatch(1, 'round-robin');
      const np = (await res.json()) as { rn?: string; set?: number };
      if (np.rn !== undefined) ctx.setRequestUser(np.rn + number); // $rU = $rn + $rU
      return ctx.dispatch(np.set ?? 1, 'round-robin');
    })();
  },
  asyncTimeout(ctx) {
    return ctx.dispatch(1, 'round-robin');
  },
});
