/**
 * The store: one interface (open.ts) with a SQLite and a PostgreSQL implementation, the
 * migration runner for both, and the repositories for `address`, `dispatcher` and the table
 * versions. Cluster tables (node registry, commands) are src/cluster's.
 */
export {
  openStore,
  openSqliteStore,
  openPostgresStore,
  BUSY_TIMEOUT_MS,
  type Store,
  type StoreTables,
  type SqliteStore,
  type PostgresStore,
  type OpenStoreOptions,
} from './open.js';
export {
  migrate,
  assertMigrated,
  schemaVersion,
  listMigrations,
  translateMigration,
  NOTIFY_CHANNEL,
  type Migration,
  type MigrateOptions,
  type MigrateReport,
} from './migrate.js';
export { defaultMigrationsDir, findPackageRoot } from './migrations-dir.js';
export { isPostgresUrl, storeKind, describeLocation, checkPostgresUrl, type StoreKind } from './location.js';
export { isConnectionError, messageOf } from './errors.js';
export type { Sql, SqlParam, Dialect, TransactionMode } from './sql.js';
// pgClientConfig lives in './postgres.js', imported directly where needed: importing it from
// here would load the PostgreSQL driver into every command, SQLite ones included.
export type { PgConnectionOptions } from './postgres.js';
export { AddressRepository, describeAddress, type AddressRow, type NewAddress } from './address.js';
export { DispatcherRepository, type DispatcherRow, type NewDestination } from './dispatcher.js';
export { CdrRepository, type CdrRow, type NewCdr, type CdrQuery } from './cdr.js';
export { TableVersionRepository, LOADED_TABLES, isLoadedTable, type LoadedTable, type TableVersion } from './versions.js';
