// Replaces a hand-written failover: Kamailio's
//   request_route { ds_select_dst("1", "4"); t_on_failure("RTF_DISPATCH"); t_relay(); }
//   failure_route[RTF_DISPATCH] {
//     if (t_is_canceled()) exit;
//     if ((t_check_status("5[0-9][0-9]") || t_branch_timeout()) && $avp(attempts) < 2) {
//       if (ds_next_dst()) t_relay();
//     }
//   }
// A branch that ends with 408 (or times out) or a 5xx moves to the next destination of the
// set; two destinations at most. A CANCEL or a 6xx never gets here.
import { defineRoute } from 'sipctl';

const MAX_DESTINATIONS = 2;

export default defineRoute({
  request(ctx) {
    if (!ctx.maxForwardsOk()) return ctx.reply(483, 'Too Many Hops');
    if (!ctx.sourceAllowed()) return ctx.reply(401, 'Address not authorised');
    ctx.stateful = true; // t_relay()
    if (ctx.inDialog) return ctx.looseRoute() ? ctx.relay() : ctx.reply(404, 'Not here');
    if (ctx.msg.method === 'INVITE') ctx.recordRoute();
    ctx.onFailure((f) => {
      if (f.attempts >= MAX_DESTINATIONS) return undefined; // the best response goes upstream
      const s = f.branchStatus; // 408 when the branch timed out (t_branch_timeout)
      if (s !== 408 && (s < 500 || s > 599)) return undefined;
      return f.nextDestination() ?? undefined; // ds_next_dst + t_relay
    });
    return ctx.dispatch(1, 'round-robin');
  },
});
