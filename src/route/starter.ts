/**
 * What `sipctl route init` writes: the default route (src/route/default.ts) as a user module,
 * with the settings it reads from the config written out as constants. It must pass
 * `sipctl route check` (test/route/cli-route.test.ts checks that).
 */
export const STARTER_ROUTE = `// A sipctl routing script: Kamailio's request_route, onreply_route and failure_route as
// TypeScript functions. This one does what sipctl does without a script of its own (the
// default route); change it, check it, load it:
//
//   sipctl route check route.ts          type-check, then run it over sample requests
//   sipctl serve --route route.ts        or "route: route.ts" in the config file
//   sipctl route reload                  swap in the edited file without a restart
//
// README "Writing routes" maps Kamailio's pseudo-variables and functions to calls on ctx.
import { defineRoute, type RequestContext, type RequestDecision } from 'sipctl';

// The dispatcher set and algorithm initial requests go to (Kamailio: ds_select_dst(1, "4")).
const SET = 1;
const ALGORITHM = 'round-robin';

// Methods whose initial requests create a dialog: we record-route them so that the dialog's
// later requests (ACK, BYE, re-INVITE) come through us too (RFC 3261 §16.6 step 4).
const DIALOG_CREATING = new Set(['INVITE', 'SUBSCRIBE', 'REFER']);

function initialDestination(ctx: RequestContext): RequestDecision {
  // ds_select_dst + t_relay: a CANCEL and the ACK of a failed INVITE go where it went.
  return ctx.dispatch(SET, ALGORITHM);
}

export default defineRoute({
  // request_route
  request(ctx) {
    const method = ctx.msg.method; // $rm
    // mf_process_maxfwd_header: RFC 3261 §16.3 item 3.
    if (!ctx.maxForwardsOk()) return ctx.reply(483, 'Too Many Hops');

    // allow_source_address(): the address table's groups (config acl.groups), and our own PBXs.
    if (!ctx.sourceAllowed()) return ctx.reply(401, 'Address not authorised');

    if (ctx.inDialog) {
      // has_totag() + loose_route(): in-dialog requests follow our Record-Route (§16.12).
      if (ctx.looseRoute()) return ctx.relay();
      // The ACK of a non-2xx final response has no route set: it goes where its INVITE went.
      if (method === 'ACK') {
        const paired = ctx.pairedTarget();
        return paired !== undefined ? { action: 'forward', target: paired } : ctx.drop('ACK with no route set and no INVITE seen');
      }
      return ctx.reply(404, 'Not here');
    }

    // OPTIONS to the proxy itself (keep-alive pings, monitoring): answered here.
    if (method === 'OPTIONS' && ctx.isToSelf()) return ctx.reply(200, 'OK');

    // record_route()
    if (DIALOG_CREATING.has(method)) ctx.recordRoute();
    // Our own Route values go (a phone that uses us as its outbound proxy sends one, §8.1.2).
    const routeDriven = ctx.looseRoute();
    if (ctx.fromNextHop()) {
      // ds_is_from_list(): a PBX calling a phone goes where its request says.
      if (routeDriven || !ctx.isToSelf()) return ctx.relay();
    } else if (routeDriven) {
      // A Route of the caller's own choosing is not followed: no open relay.
      ctx.removeRoutes();
    }
    return initialDestination(ctx);
  },

  // onreply_route: every relayed response passes here (append_hf, remove_hf, drop).
  reply(_ctx) {},

  // failure_route (transaction mode, mode: transaction): 408 or 5xx → the next destination
  // of the set (ds_next_dst), three destinations at most.
  failure(ctx) {
    if (ctx.attempts >= 3) return undefined;
    const s = ctx.branchStatus;
    if (s !== 408 && (s < 500 || s > 599)) return undefined;
    return ctx.nextDestination() ?? undefined;
  },
});
`;
