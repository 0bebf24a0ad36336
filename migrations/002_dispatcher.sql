-- Destination sets, with Kamailio's dispatcher-module column names:
-- id, setid, destination (a SIP URI), flags, priority, attrs
-- ("weight=50;rweight=20;duid=pbx-a;maxload=100"), description.
CREATE TABLE dispatcher (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  setid       INTEGER NOT NULL DEFAULT 0 CHECK (setid >= 0),
  destination TEXT    NOT NULL,
  flags       INTEGER NOT NULL DEFAULT 0,
  priority    INTEGER NOT NULL DEFAULT 0,
  attrs       TEXT    NOT NULL DEFAULT '',
  description TEXT    NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX dispatcher_destination ON dispatcher (setid, destination);
