/**
 * The default route: what sipctl does with no routing script of your own. The same job as
 * the reference Kamailio configuration (shared/bench/kamailio.cfg):
 *
 *   Max-Forwards check → source address check → in-dialog requests follow their route set →
 *   OPTIONS to us answered → initial requests record-routed and sent along a pre-loaded
 *   route set, else to the --forward target or a dispatcher destination.
 */
import type { ProxyConfig } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import { DIALOG_CREATING } from '../proxy/core.js';
import type { Target } from '../transport/types.js';
import { defineRoute, type RequestContext, type RequestDecision, type Route } from './api.js';

export interface DefaultRouteOptions {
  config: ProxyConfig;
  logger: Logger;
  /** The --forward next hop, resolved (and re-resolved when its DNS answer expires) outside the route. */
  forwardTarget?: () => Target | undefined;
}

export function createDefaultRoute(opts: DefaultRouteOptions): Route {
  const { config } = opts;
  const rules = config.dispatcher.rules;

  function initialDestination(ctx: RequestContext): RequestDecision {
    if (opts.forwardTarget !== undefined) {
      const m = ctx.msg.method;
      const paired = m === 'INVITE' || m === 'CANCEL' || m === 'ACK' ? ctx.pairedTarget() : undefined;
      const target = paired ?? opts.forwardTarget();
      if (target === undefined) {
        return ctx.reply(config.dispatcher.noDestinationCode, config.dispatcher.noDestinationReason);
      }
      return { action: 'forward', target };
    }
    const method = ctx.msg.method;
    const rule = rules.find((r) => r.methods === undefined || r.methods.includes(method)) ?? rules[rules.length - 1]!;
    return ctx.dispatch(rule.set, rule.algorithm);
  }

  return defineRoute({
    request(ctx) {
      const method = ctx.msg.method;
      // RFC 3261 §16.3 item 3.
      if (!ctx.maxForwardsOk()) return ctx.reply(483, 'Too Many Hops');

      // Kamailio's allow_source_address(): unknown senders are refused, never forwarded.
      // (With acl.checkRequests on, the default, the core has refused them already.)
      if (!ctx.sourceAllowed()) return ctx.reply(config.acl.rejectCode, config.acl.rejectReason);

      if (ctx.inDialog) {
        // In-dialog requests follow the route set our Record-Route put in place (§16.4, §16.12).
        if (ctx.looseRoute()) return ctx.relay();
        // The ACK for a non-2xx final response carries the response's To tag but no route
        // set: it goes where its INVITE went.
        if (method === 'ACK') {
          const paired = ctx.pairedTarget();
          return paired !== undefined ? { action: 'forward', target: paired } : ctx.drop('ACK with no route set and no INVITE seen');
        }
        return ctx.reply(404, 'Not here');
      }

      // OPTIONS addressed to the proxy itself (keep-alive pings, monitoring): we answer.
      if (method === 'OPTIONS' && ctx.isToSelf()) return ctx.reply(200, 'OK');

      if (config.recordRoute && DIALOG_CREATING.has(method)) ctx.recordRoute();
      // Our own Route values go (a phone that uses us as its outbound proxy sends one, §8.1.2).
      const routeDriven = ctx.looseRoute();
      if (ctx.fromNextHop()) {
        // A PBX sending toward a phone — along the Path it stored (RFC 3327 §5.3) or straight
        // to the phone's Contact — goes where the request says: the rest of its route set,
        // else its Request-URI. Only a request addressed to us is dispatched (Kamailio configs
        // make the same split with ds_is_from_list()).
        if (routeDriven || !ctx.isToSelf()) return ctx.relay();
      } else if (routeDriven) {
        // A route set of the caller's own choosing: followed only when configured
        // (initialRoutes: follow); by default it is removed, so the proxy cannot be used as an
        // open relay to wherever a Route header points.
        if (config.initialRoutes === 'follow') return ctx.relay();
        ctx.removeRoutes();
      }
      if (method === 'REGISTER' && config.dispatcher.path !== false) {
        // RFC 3327 §5.1: a proxy that needs the registrar to route through it asks for the
        // extension when the UA supports it, and refuses the REGISTER (421) when it does not.
        const supported = ctx.msg.headerValues('supported').some((v) => v.toLowerCase() === 'path');
        if (config.dispatcher.path === true) {
          if (!supported) return ctx.reply(421, 'Extension Required', ['Require: path']);
          ctx.appendHeader('Require', 'path');
        }
        ctx.addPath();
      }
      return initialDestination(ctx);
    },

    // Kamailio's failure_route with ds_next_dst (transaction mode): a branch that ended with
    // one of dispatcher.failover.on (a timeout counts as 408) moves the request to the next
    // active destination of its set, up to dispatcher.failover.attempts destinations. A 6xx
    // or a CANCEL never gets here (the transaction ends the search first).
    failure(ctx) {
      const f = config.dispatcher.failover;
      if (ctx.attempts >= f.attempts) return undefined;
      const status = ctx.branchStatus;
      if (!f.on.some((r) => status >= r.from && status <= r.to)) return undefined;
      return ctx.nextDestination() ?? undefined;
    },
  });
}
