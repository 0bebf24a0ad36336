/**
 * Dialog-stateful proxying (RFC 3261 §12): dialogs followed from the messages that pass,
 * active calls per destination (call-load dispatching), and call detail records written off
 * the hot path. Plugs into the proxy core through DialogObserver (src/proxy/services.ts).
 */
export { DialogTracker, Dialog, ENDED_BY, type CallRecord, type DialogCounts, type DialogConfig, type DialogState, type DialogView, type EndedBy, type CallCounter } from './tracker.js';
export { CdrWriter, type CdrWriterOptions, type CdrWriterStats } from './cdr-writer.js';
export { dialogControlHandlers } from './control.js';
