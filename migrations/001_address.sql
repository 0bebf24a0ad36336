-- The address table (IP access control), with Kamailio's permissions-module column names
-- so existing data and habits carry over: id, grp, ip_addr, mask, port, tag.
-- mask defaults are per family (32 for IPv4, 128 for IPv6) and are filled in by the CLI;
-- port 0 means any port.
CREATE TABLE address (
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  grp     INTEGER NOT NULL DEFAULT 1 CHECK (grp >= 0),
  ip_addr TEXT    NOT NULL,
  mask    INTEGER NOT NULL CHECK (mask BETWEEN 0 AND 128),
  port    INTEGER NOT NULL DEFAULT 0 CHECK (port BETWEEN 0 AND 65535),
  tag     TEXT
);
-- One entry per (group, network, mask, port): a duplicate is refused.
CREATE UNIQUE INDEX address_entry ON address (grp, ip_addr, mask, port);
