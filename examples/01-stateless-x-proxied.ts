// Replaces the seed's stateless proxy: Kamailio's
//   request_route { ...; append_hf("X-Proxied: You betcha\r\n"); forward("10.0.0.21"); }
//   onreply_route  { append_hf("X-Proxied: For the reply\r\n"); }
// Every request goes to one PBX without a transaction (forward(), not t_relay()), with a
// header added; every response coming back gets a header too.
import { defineRoute } from 'sipctl';

// The PBX (an IP literal: forward() does no DNS on the hot path). The environment variable
// lets the end-to-end test point it at its own UDP peer.
const PBX = process.env.SIPCTL_EXAMPLE_PBX ?? 'sip:192.0.2.21:5060';

export default defineRoute({
  request(ctx) {
    if (!ctx.maxForwardsOk()) return ctx.reply(483, 'Too Many Hops'); // mf_process_maxfwd_header
    if (!ctx.sourceAllowed()) return ctx.reply(401, 'Address not authorised'); // allow_source_address
    ctx.appendHeader('X-Proxied', 'You betcha'); // append_hf
    if (ctx.inDialog && ctx.looseRoute()) return ctx.relay(); // has_totag + loose_route + forward
    if (ctx.msg.method === 'INVITE') ctx.recordRoute(); // record_route
    ctx.stateful = false; // forward(): stateless whatever the config's mode
    return ctx.forward(PBX);
  },
  reply(ctx) {
    ctx.appendHeader('X-Proxied', 'For the reply'); // append_hf in onreply_route
  },
});
