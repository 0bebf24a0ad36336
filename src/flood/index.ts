/** Flood control (Kamailio's pike): per-source message budgets, checked right after framing. */
export {
  FloodGuard,
  FLOOD_LIST_LIMIT,
  plainAddress,
  type BlockEnd,
  type ExemptCheck,
  type FloodClock,
  type FloodGuardOptions,
  type FloodLimits,
  type FloodListResult,
  type FloodLog,
  type FloodSourceView,
  type FloodStats,
  type FloodUnblockResult,
} from './guard.js';
export { parseSourceAddress } from './address.js';
export { floodControlHandlers, type FloodControlHandlers } from './control.js';
