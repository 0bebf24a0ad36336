// Replaces the seed's permissions check: Kamailio's
//   if (allow_source_address("200")) { ds_select_dst("1", "4"); t_relay(); exit; }
//   if (allow_source_address("250")) { ds_select_dst("2", "4"); t_relay(); exit; }
//   sl_send_reply("401", "Address not authorised");
// Sources in address-table group 200 go to dispatcher set 1, group 250 to set 2, the rest
// get 401. Run it with `acl: { checkRequests: false }` so that the decision is the route's
// (by default the core refuses sources in no group before any route runs).
import { defineRoute } from 'sipctl';

export default defineRoute({
  request(ctx) {
    if (!ctx.maxForwardsOk()) return ctx.reply(483, 'Too Many Hops');
    if (ctx.inDialog && ctx.fromNextHop()) return ctx.looseRoute() ? ctx.relay() : ctx.reply(404, 'Not here');
    if (ctx.sourceIn(200)) {
      if (ctx.inDialog) return ctx.looseRoute() ? ctx.relay() : ctx.reply(404, 'Not here');
      if (ctx.msg.method === 'INVITE') ctx.recordRoute();
      return ctx.dispatch(1, 'round-robin');
    }
    if (ctx.sourceIn(250)) {
      if (ctx.inDialog) return ctx.looseRoute() ? ctx.relay() : ctx.reply(404, 'Not here');
      if (ctx.msg.method === 'INVITE') ctx.recordRoute();
      return ctx.dispatch(2, 'round-robin');
    }
    return ctx.reply(401, 'Address not authorised');
  },
});
