// Replaces the seed's test shortcut: Kamailio's
//   if (is_method("REGISTER")) { sl_send_reply("200", "OK"); exit; }
// REGISTER is answered here with 200 (echoing the Contact with an expiry, so that phones are
// content), nothing is stored; INVITEs and the rest are dispatched.
import { defineRoute } from 'sipctl';

export default defineRoute({
  request(ctx) {
    if (!ctx.maxForwardsOk()) return ctx.reply(483, 'Too Many Hops');
    if (!ctx.sourceAllowed()) return ctx.reply(401, 'Address not authorised');
    if (ctx.msg.method === 'REGISTER') {
      const contact = ctx.msg.header('contact'); // $hdr(Contact)
      const expires = ctx.msg.header('expires') ?? '3600';
      // sl_send_reply with headers (append_to_reply in Kamailio).
      return ctx.reply(200, 'OK', contact === undefined ? [] : [`Contact: ${contact};expires=${expires}`]);
    }
    if (ctx.inDialog) return ctx.looseRoute() ? ctx.relay() : ctx.reply(404, 'Not here');
    if (ctx.msg.method === 'INVITE') ctx.recordRoute();
    return ctx.dispatch(1, 'round-robin');
  },
});
