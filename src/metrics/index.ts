/** Observability: status, readiness and the Prometheus exposition, read from plain counters. */
export {
  Observability,
  ReloadLog,
  RATE_WINDOW_S,
  messagesReceived,
  sipctlVersion,
  type ObservedProxy,
  type Readiness,
  type ReadinessCheck,
  type ReloadRecord,
  type TransactionSource,
  type TransactionStats,
} from './observer.js';
export { createRegistry, type RegistryOptions } from './prometheus.js';
export { startMetricsServer, parseMetricsListen, type MetricsServer } from './http.js';
