// Replaces the seed's AVP demonstration: Kamailio's
//   request_route { if (is_method("INVITE")) $avp(state_test_var) = "set by the INVITE"; t_relay(); }
//   onreply_route { if (is_avp_set("$avp(state_test_var)")) append_hf("X-State-Test-Var: $avp(state_test_var)\r\n"); }
// A value set in the request route is there in the reply route of the same transaction
// (ctx.tx, Kamailio's AVPs), and absent for the BYE: the BYE is a transaction of its own.
// ctx.tx lives as long as the transaction, so this needs one (t_relay, ctx.stateful).
import { defineRoute } from 'sipctl';

export default defineRoute({
  request(ctx) {
    if (!ctx.maxForwardsOk()) return ctx.reply(483, 'Too Many Hops');
    if (!ctx.sourceAllowed()) return ctx.reply(401, 'Address not authorised');
    ctx.stateful = true; // t_relay()
    if (ctx.msg.method === 'INVITE' && !ctx.inDialog) ctx.tx.set('state_test_var', 'set by the INVITE');
    if (ctx.inDialog) return ctx.looseRoute() ? ctx.relay() : ctx.reply(404, 'Not here');
    if (ctx.msg.method === 'INVITE') ctx.recordRoute();
    return ctx.dispatch(1, 'round-robin');
  },
  reply(ctx) {
    const v = ctx.tx?.get('state_test_var');
    if (typeof v === 'string') ctx.appendHeader('X-State-Test-Var', v);
  },
});
