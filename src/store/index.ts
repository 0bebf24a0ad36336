/** The SQLite store: open + migrate, and the address / dispatcher repositories. */
export { openStore, BUSY_TIMEOUT_MS, type Store, type OpenStoreOptions } from './open.js';
export {
  migrate,
  assertMigrated,
  schemaVersion,
  listMigrations,
  type Migration,
  type MigrateOptions,
  type MigrateReport,
} from './migrate.js';
export { defaultMigrationsDir, findPackageRoot } from './migrations-dir.js';
export { AddressRepository, describeAddress, type AddressRow, type NewAddress } from './address.js';
export { DispatcherRepository, type DispatcherRow, type NewDestination } from './dispatcher.js';
