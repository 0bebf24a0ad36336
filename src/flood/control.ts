/**
 * Control-socket handlers for flood control (what Kamailio's `pike.top` RPC shows, plus a
 * way to lift a block by hand): `flood.list` and `flood.unblock {ip}`.
 */
import { SipctlError } from '../errors.js';
import { parseSourceAddress } from './address.js';
import type { FloodGuard, FloodListResult, FloodUnblockResult } from './guard.js';

export interface FloodControlHandlers {
  'flood.list': () => FloodListResult | { enabled: false };
  'flood.unblock': (args?: Record<string, unknown>) => FloodUnblockResult;
}

/** `guard` undefined: the proxy runs with `flood.enabled: false`. */
export function floodControlHandlers(guard: FloodGuard | undefined): FloodControlHandlers {
  return {
    'flood.list': () => (guard === undefined ? { enabled: false } : guard.list()),
    'flood.unblock': (args) => {
      const address = parseSourceAddress(args?.ip);
      if (guard === undefined) {
        throw new SipctlError('E_FLOOD_DISABLED', 'flood control is off in this proxy (flood.enabled: false): nothing is blocked');
      }
      return guard.unblock(address);
    },
  };
}
