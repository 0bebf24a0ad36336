// Replaces a prefix-routing block: Kamailio's
//   if ($rU =~ "^00") { ds_select_dst("2", "4"); } else { ds_select_dst("1", "4"); }
//   t_relay();
// International numbers (Request-URI user starting 00) go to dispatcher set 2, the rest to set 1.
import { defineRoute } from 'sipctl';

export default defineRoute({
  request(ctx) {
    if (!ctx.maxForwardsOk()) return ctx.reply(483, 'Too Many Hops');
    if (!ctx.sourceAllowed()) return ctx.reply(401, 'Address not authorised');
    if (ctx.inDialog) return ctx.looseRoute() ? ctx.relay() : ctx.reply(404, 'Not here');
    if (ctx.msg.method === 'INVITE') ctx.recordRoute();
    const user = ctx.msg.uri.user ?? ''; // $rU
    return ctx.dispatch(user.startsWith('00') ? 2 : 1, 'round-robin');
  },
});
