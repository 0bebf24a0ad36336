// Replaces the seed's caller-ID rewrite: Kamailio's
//   if (is_method("INVITE") && !has_totag()) { $fU = "Nick Blog Example"; }
// The From URI's user part of initial INVITEs is rewritten (display name and tag kept).
// What the PBX and the caller see afterwards: README "Writing routes", "Rewriting From".
import { defineRoute } from 'sipctl';

export default defineRoute({
  request(ctx) {
    if (!ctx.maxForwardsOk()) return ctx.reply(483, 'Too Many Hops');
    if (!ctx.sourceAllowed()) return ctx.reply(401, 'Address not authorised');
    if (ctx.inDialog) return ctx.looseRoute() ? ctx.relay() : ctx.reply(404, 'Not here');
    if (ctx.msg.method === 'INVITE') {
      ctx.setFromUser('Nick Blog Example'); // $fU = "Nick Blog Example"
      ctx.recordRoute();
    }
    return ctx.dispatch(1, 'round-robin'); // ds_select_dst(1, "4"); t_relay()
  },
});
