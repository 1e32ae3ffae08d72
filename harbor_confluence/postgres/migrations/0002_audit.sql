-- The audit log: one row per record of the keyed chain.  `record` is the record's JSON
-- exactly as it was chained and MACed (the text audit.jsonl would hold on one line);
-- seq, event and ticket are copies for ordering and lookups, checked against the record
-- by `audit verify`.  The anchor (last seq and hash, with a MAC) is one row, moved in the
-- same transaction as every append.

CREATE TABLE harbor_audit (
    seq bigint PRIMARY KEY,
    event text NOT NULL,
    ticket text COLLATE "C",
    record text NOT NULL
);

CREATE INDEX harbor_audit_ticket ON harbor_audit (ticket, seq) WHERE ticket IS NOT NULL;

CREATE TABLE harbor_audit_anchor (
    id smallint PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL,
    hash text NOT NULL,
    mac text NOT NULL
);
