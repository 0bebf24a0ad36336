/** The dispatcher's public surface: what the proxy core, the route and the CLI use. */
export * from './types.js';
export { parseAlgorithm, algorithmNumber, ALGORITHMS, ALGORITHM_NUMBERS, type Algorithm } from './algorithm.js';
export { parseAttrs, KNOWN_ATTRS } from './attrs.js';
export { parseDestinationUri, destinationKey, type DestinationUri } from './destination-uri.js';
export { parseSetid, parsePriority, parseFlags, checkRow } from './row.js';
export { DestinationSet } from './set.js';
export { DispatcherSets, initialState } from './sets.js';
export { DispatcherHolder, type HolderOptions, type ReloadSummary } from './holder.js';
export { SipResolver, type Resolution, type ResolverOptions, type TargetResolver } from './resolve.js';
export {
  Prober,
  isProbeBranch,
  PROBE_BRANCH_PREFIX,
  DEFAULT_PROBE_CONFIG,
  probeConfig,
  T2_MS,
  type ProbeConfig,
  type ProbeIO,
  type ProberOptions,
} from './probe.js';
export { SentRateSampler, SENT_WINDOW_S, SENT_HISTORY_SLOTS } from './sent-rate.js';
export { dumpSets, kamailioStateLetters, type Dump, type DumpDestination } from './dump.js';
export { dispatcherControlHandlers, type DispatcherControlHandlers } from './control.js';
export { createDispatch, type DispatchService } from './dispatch.js';
