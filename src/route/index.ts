/**
 * What `import ... from 'sipctl'` gives a routing script: defineRoute and the routing API's
 * types (package.json `exports`). Nothing here reaches the proxy core: a route decides, the
 * core carries the decision out.
 */
export { defineRoute } from './api.js';
export type {
  AddressMatch,
  DestinationEvent,
  FailureContext,
  FailureDecision,
  ReplyContext,
  ReplyOptions,
  RequestContext,
  RequestDecision,
  RequestResult,
  Route,
  RouteEvents,
  Source,
} from './api.js';
export type { SipMessage } from '../sip/message.js';
export type { SipUri } from '../sip/uri.js';
export type { NameAddr, Via } from '../sip/values.js';
