-- The review queue: tickets and their approvals, as review/queue.py's SQLite schema (version 3)
-- holds them, so a ticket moves between the two unchanged and its seals stay valid.
-- Times are seconds since the epoch (double precision: the seals cover them as floats);
-- result, headers and review are JSON text, byte for byte what the queue wrote.
-- Identifiers sort bytewise (COLLATE "C"), as SQLite sorts them, for stable paging.

CREATE TABLE harbor_meta (
    name text COLLATE "C" PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE harbor_tickets (
    id text COLLATE "C" PRIMARY KEY,
    action text NOT NULL,
    port text NOT NULL,
    manifest_version text NOT NULL,
    rule text NOT NULL,
    method text NOT NULL,
    url text NOT NULL,
    body bytea,
    content_type text,
    fingerprint text NOT NULL,
    requester text NOT NULL,
    created_at double precision NOT NULL,
    expires_at double precision NOT NULL,
    state text NOT NULL CHECK (state IN ('pending', 'approved', 'executing', 'succeeded',
                                         'failed', 'unknown', 'rejected', 'expired',
                                         'cancelled')),
    result text,
    approvals_required integer NOT NULL DEFAULT 1,
    headers text,
    forbid_self_approval boolean NOT NULL DEFAULT false,
    review text,
    reason text,
    decided_by text,
    executed_by text,
    updated_at double precision,
    finished_at double precision,
    claim text,
    claim_pid integer,
    claim_host text,
    lease_until double precision,
    seal text,
    state_seal text
);

CREATE TABLE harbor_approvals (
    ticket_id text COLLATE "C" NOT NULL REFERENCES harbor_tickets (id),
    operator text COLLATE "C" NOT NULL,
    fingerprint text NOT NULL,
    at double precision NOT NULL,
    reason text,
    seal text,
    PRIMARY KEY (ticket_id, operator)
);

CREATE INDEX harbor_tickets_state_created ON harbor_tickets (state, created_at, id);
CREATE INDEX harbor_tickets_created ON harbor_tickets (created_at, id);
CREATE INDEX harbor_tickets_state_expiry ON harbor_tickets (state, expires_at);
