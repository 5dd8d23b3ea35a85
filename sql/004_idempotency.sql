-- Idempotency-Key (docs/API.md "Idempotent writes"): the answer of each keyed write, stored in the
-- write's own transaction. Idempotent like the other files; applied after them, in one transaction.

-- One row per (identity folded by PostgreSQL's lower(), key). `fingerprint` is a SHA-256 of the
-- request (method, route, path parameters, a hash of the body) so a reused key with another request
-- is told apart; `status` and `body` are the answer given, replayed byte for byte. Rows older than
-- 24 h are ignored (and overwritten by a new use of the key) and pruned in the background.
create table if not exists fmsg_api_idempotency (
    identity     text         not null,
    key          text         not null check (key ~ '^[!-~]{1,255}$'),
    fingerprint  text         not null,
    status       integer      not null,
    body         text         not null,
    created_at   timestamptz  not null default now(),
    primary key (identity, key)
);
-- The background prune deletes the oldest rows in bounded batches.
create index if not exists fmsg_api_idempotency_created_at_idx on fmsg_api_idempotency (created_at);
