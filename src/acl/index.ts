/** The address table (IP access control): validation, the lookup structure, loading and reload. */
export { validateAddressEntry, type AddressEntry, type AddressEntryInput } from './validate.js';
export { AddressTable, type AddressMatch, type AddressRow, type GroupCount } from './table.js';
export { AddressTableHolder, loadAddressTable, type LoadOptions, type ReloadReport } from './load.js';
