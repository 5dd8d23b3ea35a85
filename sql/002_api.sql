-- The API's own objects, all prefixed fmsg_api_ so they never collide with fmsgd's.
-- Idempotent like 001_fmsgd.sql; applied after it, in the same transaction.

-- Mailbox listings find a user's messages by address, case-insensitively, and
-- page by message id. With the id second in the index, a page is a short range
-- scan in id order rather than a sort of everything the address ever received.
create index if not exists fmsg_api_msg_to_lower_addr_msg_id_idx
    on msg_to (lower(addr), msg_id);
create index if not exists fmsg_api_msg_add_to_lower_addr_msg_id_idx
    on msg_add_to (lower(addr), msg_id);
create index if not exists fmsg_api_msg_from_lower_id_idx
    on msg (lower(from_addr), id);

-- One row per schema version (a hash of the sql/ files) ever applied here.
create table if not exists fmsg_api_schema_version (
    fingerprint  text         primary key,
    applied_at   timestamptz  not null default now()
);

-- fmsgd's trigger trg_msg_prevent_unreferenceable_parent looks for replies (`where pid = <id>`)
-- on every send: without this index each send scans all of msg (100+ ms at 200,000 messages).
create index if not exists fmsg_api_msg_pid_idx on msg (pid);

-- API keys (README "Giving users access"): an operator issues one per address with `api-key create`;
-- clients exchange it at POST /fmsg/token for a short-lived token. Only a salted SHA-256 of the secret
-- is kept. The secret is 32 random bytes, not a password: nobody can guess or brute-force 2^256
-- candidates, so a slow KDF (bcrypt, scrypt) would cost every exchange time and buy nothing.
-- rotated_at is when the current secret was made: tokens minted from an older one are refused.
create table if not exists fmsg_api_key (
    key_id        text         primary key check (key_id ~ '^[A-Za-z0-9]{12,64}$'),
    address       text         not null,
    secret_salt   bytea        not null,
    secret_hash   bytea        not null,
    label         text,
    cidrs         text[]       not null default '{}',
    expires_at    timestamptz,
    created_at    timestamptz  not null default now(),
    rotated_at    timestamptz  not null default now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
create index if not exists fmsg_api_key_lower_address_idx on fmsg_api_key (lower(address));
