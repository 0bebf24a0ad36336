-- Call detail records (README "Dialogs and CDRs"): one row per call, written by the proxy in
-- batches while dialog tracking is on. Times are milliseconds since the epoch (UTC), so that
-- both stores keep them exactly; durations are seconds. `node` says which proxy of a
-- cluster saw the call. Written once for both stores (INTEGER becomes BIGINT on PostgreSQL).
CREATE TABLE cdr (
  id          INTEGER          PRIMARY KEY AUTOINCREMENT,
  node        TEXT             NOT NULL DEFAULT '',
  call_id     TEXT             NOT NULL,
  from_uri    TEXT             NOT NULL DEFAULT '',
  to_uri      TEXT             NOT NULL DEFAULT '',
  source      TEXT             NOT NULL DEFAULT '',
  setid       INTEGER,
  destination TEXT,
  start_ms    INTEGER          NOT NULL,
  answer_ms   INTEGER,
  end_ms      INTEGER          NOT NULL,
  duration    DOUBLE PRECISION NOT NULL,
  billable    DOUBLE PRECISION NOT NULL,
  code        INTEGER          NOT NULL,
  reason      TEXT             NOT NULL DEFAULT '',
  ended_by    TEXT             NOT NULL
);
CREATE INDEX cdr_start_ms ON cdr (start_ms);
