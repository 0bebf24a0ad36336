-- Shared tables for running several sipctl nodes on one database (README "Running several
-- nodes"). Written once for both stores; the migration runner (src/store/migrate.ts)
-- translates INTEGER and the @track-changes lines for PostgreSQL.

-- A change counter per table that nodes load: bumped by triggers on every committed change to
-- the table, whoever makes it (sipctl, or plain SQL from a provisioning system). A node
-- reads the counter in the same snapshot as the rows, so "the version it has loaded" is exact,
-- and `sipctl cluster status` compares it with the latest.
CREATE TABLE table_version (
  table_name TEXT        PRIMARY KEY,
  version    INTEGER     NOT NULL DEFAULT 0,
  changed_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);
-- @track-changes address
-- @track-changes dispatcher

-- The nodes sharing this database: each registers at start and refreshes `heartbeat` every
-- `heartbeat_s` seconds (times come from the database's clock, so hosts need not agree).
CREATE TABLE node (
  name        TEXT        PRIMARY KEY,
  host        TEXT        NOT NULL DEFAULT '',
  pid         INTEGER     NOT NULL DEFAULT 0,
  listeners   TEXT        NOT NULL DEFAULT '',
  version     TEXT        NOT NULL DEFAULT '',
  started     TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
  heartbeat   TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
  heartbeat_s INTEGER     NOT NULL DEFAULT 5,
  stopped     TIMESTAMPTZ
);

-- Which version of each table a node holds in memory, and since when.
CREATE TABLE node_table (
  node       TEXT        NOT NULL REFERENCES node (name) ON DELETE CASCADE,
  table_name TEXT        NOT NULL,
  version    INTEGER     NOT NULL,
  loaded     TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (node, table_name)
);

-- Commands for every node (`sipctl dispatcher set-state --cluster`, ...): the CLI inserts one
-- and NOTIFYs; each live node runs it on itself and answers in cluster_command_result.
CREATE TABLE cluster_command (
  id      INTEGER     PRIMARY KEY AUTOINCREMENT,
  command TEXT        NOT NULL,
  args    TEXT        NOT NULL DEFAULT '{}',
  issued  TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE cluster_command_result (
  command_id INTEGER     NOT NULL REFERENCES cluster_command (id) ON DELETE CASCADE,
  node       TEXT        NOT NULL,
  ok         INTEGER     NOT NULL,
  result     TEXT        NOT NULL,
  done       TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (command_id, node)
);
