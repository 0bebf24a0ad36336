/** The control socket: newline-delimited JSON over a Unix socket, server and client. */
export { startControlServer, type ControlServer, type ControlServerOptions } from './server.js';
export { controlRequest, DEFAULT_CONTROL_TIMEOUT_MS, type ControlRequestOptions } from './client.js';
export {
  MAX_REQUEST_LINE_BYTES,
  type ControlHandler,
  type ControlHandlers,
  type ControlReply,
  type ControlRequest,
} from './protocol.js';
export {
  CONTROL_COMMANDS,
  requestAddressDump,
  requestAddressReload,
  requestAddressTest,
  requestStatus,
  requestRouteReload,
  type RouteReloadResult,
  requestFloodList,
  requestFloodUnblock,
  type FloodListReply,
  type FloodListResult,
  type FloodSourceView,
  type FloodUnblockResult,
  type AddressDumpResult,
  type AddressEntryView,
  type AddressReloadResult,
  type AddressTestArgs,
  type AddressTestResult,
  type GroupCount,
  type StatusResult,
} from './commands.js';
