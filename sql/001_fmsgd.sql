-- fmsgd's tables, indexes and triggers, as DATABASE.md describes them.
--
-- Idempotent: runs on an empty database, on one that fmsgd's own DDL created,
-- and again on its own result, without changing anything the second time.
-- Every object keeps the name fmsgd gives it (index names are the ones
-- PostgreSQL generates for fmsgd's unnamed `create index on …`), so nothing
-- is ever created twice and `create or replace` takes over fmsgd's functions.

-- Tables ---------------------------------------------------------------------

create table if not exists msg (
    id            bigserial         primary key,
    version       int               not null,
    pid           bigint            references msg (id),
    no_reply      boolean           not null default false,
    is_important  boolean           not null default false,
    is_deflate    boolean           not null default false,
    time_sent     double precision,             -- POSIX seconds; null: a draft
    from_addr     varchar(255)      not null,
    topic         varchar(255)      not null,
    type          varchar(255)      not null,
    sha256        bytea             unique,     -- written by fmsgd only
    psha256       bytea,                        -- filled from pid by a trigger
    size          int               not null,
    filepath      text              not null,
    wire_header   bytea                         -- received messages only
);
-- Databases from fmsgd releases before wire_header existed.
alter table msg add column if not exists wire_header bytea;
create index if not exists msg_lower_idx on msg (lower(from_addr));

create table if not exists msg_to (
    id                 bigserial         primary key,
    msg_id             bigint            not null references msg (id),
    addr               varchar(255)      not null,
    time_delivered     double precision,
    time_last_attempt  double precision,
    time_read          double precision,
    response_code      smallint,
    attempt_count      int               not null default 0,
    unique (msg_id, addr)
);
create index if not exists msg_to_lower_idx on msg_to (lower(addr));

create table if not exists msg_add_to_batch (
    id           bigserial         primary key,
    msg_id       bigint            not null references msg (id),
    add_to_from  varchar(255)      not null,
    time_added   double precision  not null
);
create index if not exists msg_add_to_batch_msg_id_idx on msg_add_to_batch (msg_id);

create table if not exists msg_add_to (
    id                 bigserial         primary key,
    msg_id             bigint            not null references msg (id),
    batch_id           bigint            not null references msg_add_to_batch (id),
    addr               varchar(255)      not null,
    time_delivered     double precision,
    time_last_attempt  double precision,
    time_read          double precision,
    response_code      smallint,
    attempt_count      int               not null default 0,
    unique (msg_id, addr)
);
create index if not exists msg_add_to_lower_idx on msg_add_to (lower(addr));
create index if not exists msg_add_to_batch_id_idx on msg_add_to (batch_id);

create table if not exists msg_attachment (
    msg_id    bigint        references msg (id),
    position  smallint      not null default 0,
    flags     smallint      not null default 0,
    type      varchar(255)  not null default 'application/octet-stream',
    filename  varchar(255)  not null,
    filesize  int           not null,
    filepath  text          not null,
    primary key (msg_id, filename)
);

create table if not exists msg_add_to_notify (
    id                 bigserial         primary key,
    batch_id           bigint            not null references msg_add_to_batch (id),
    domain             varchar(255)      not null,
    time_notified      double precision,
    time_last_attempt  double precision,
    response_code      smallint,
    attempt_count      int               not null default 0,
    unique (batch_id, domain)
);

-- 1. Parent hash ---------------------------------------------------------------
-- A reply names its parent locally by pid; the protocol names it by hash, so
-- psha256 follows pid. Only a sent parent can be replied to.

create or replace function populate_msg_psha256_from_pid() returns trigger
language plpgsql as $$
declare
    parent_time_sent double precision;
    parent_sha256 bytea;
begin
    if new.pid is null then
        return new;
    end if;

    select p.time_sent, p.sha256 into parent_time_sent, parent_sha256
    from msg p where p.id = new.pid;
    if not found then
        raise exception 'parent message % does not exist', new.pid;
    end if;
    if parent_time_sent is null then
        raise exception 'cannot set pid %: parent message is a draft', new.pid;
    end if;

    -- A parent that only ever travelled locally may have no hash yet.
    if coalesce(octet_length(parent_sha256), 0) = 0 then
        return new;
    end if;
    if coalesce(octet_length(new.psha256), 0) = 0 then
        new.psha256 := parent_sha256;
    elsif new.psha256 <> parent_sha256 then
        raise exception 'psha256 does not match the sha256 of parent message %', new.pid;
    end if;
    return new;
end
$$;

drop trigger if exists trg_msg_populate_psha256 on msg;
create trigger trg_msg_populate_psha256
    before insert or update of pid, psha256 on msg
    for each row execute function populate_msg_psha256_from_pid();

-- 2. Referenced parents stay referenceable ---------------------------------------
-- Replies point at their parent's hash: a parent with replies may not become a
-- draft again, nor lose or change a hash it already has.

create or replace function prevent_referenced_msg_from_becoming_unreferenceable() returns trigger
language plpgsql as $$
begin
    if not exists (select 1 from msg r where r.pid = new.id) then
        return new;
    end if;
    if new.time_sent is null then
        raise exception 'cannot make message % a draft: it has replies', new.id;
    end if;
    if coalesce(octet_length(old.sha256), 0) > 0 and new.sha256 is distinct from old.sha256 then
        raise exception 'cannot clear or change sha256 of message %: it has replies', new.id;
    end if;
    return new;
end
$$;

drop trigger if exists trg_msg_prevent_unreferenceable_parent on msg;
create trigger trg_msg_prevent_unreferenceable_parent
    before update of time_sent, sha256 on msg
    for each row execute function prevent_referenced_msg_from_becoming_unreferenceable();

-- 3. new_msg_to: wakes fmsgd's outgoing worker -----------------------------------
-- On msg: a draft was just sent, so every recipient is new work. On msg_to and
-- msg_add_to: a pending recipient row arrived for a message already sent.

create or replace function notify_msg_sent() returns trigger
language plpgsql as $$
begin
    if tg_table_name = 'msg' then
        if old.time_sent is null and new.time_sent is not null then
            perform pg_notify('new_msg_to', new.id || ',' || r.addr)
            from (select addr from msg_to where msg_id = new.id
                  union all
                  select addr from msg_add_to where msg_id = new.id) r;
        end if;
    elsif new.time_delivered is null then
        perform pg_notify('new_msg_to', new.msg_id || ',' || new.addr)
        from msg m where m.id = new.msg_id and m.time_sent is not null;
    end if;
    return null;
end
$$;

drop trigger if exists trg_msg_sent on msg;
create trigger trg_msg_sent
    after update on msg
    for each row execute function notify_msg_sent();

drop trigger if exists trg_msg_to_insert on msg_to;
create trigger trg_msg_to_insert
    after insert on msg_to
    for each row execute function notify_msg_sent();

drop trigger if exists trg_msg_add_to_insert on msg_add_to;
create trigger trg_msg_add_to_insert
    after insert on msg_add_to
    for each row execute function notify_msg_sent();

-- 4. new_msg: a message became sent or arrived -------------------------------------
-- Deferred to commit because the msg row is written before its recipient rows
-- (they reference it); only at commit are all of them visible.

create or replace function notify_new_msg() returns trigger
language plpgsql as $$
begin
    if new.time_sent is not null and (tg_op = 'INSERT' or old.time_sent is null) then
        perform pg_notify('new_msg', new.id || ',' || r.addr)
        from (select addr from msg_to where msg_id = new.id
              union all
              select addr from msg_add_to where msg_id = new.id) r;
    end if;
    return null;
end
$$;

drop trigger if exists trg_new_msg on msg;
create constraint trigger trg_new_msg
    after insert or update on msg
    deferrable initially deferred
    for each row execute function notify_new_msg();

-- 5. delivered: tells the sender a recipient has the message -------------------------
-- On the table rather than at each call site, so fmsgd's remote and local
-- deliveries and the API's own local delivery all announce it.

create or replace function notify_delivered() returns trigger
language plpgsql as $$
begin
    perform pg_notify('delivered', new.msg_id || ',' || m.from_addr)
    from msg m where m.id = new.msg_id;
    return null;
end
$$;

drop trigger if exists trg_msg_to_delivered on msg_to;
create trigger trg_msg_to_delivered
    after update of time_delivered on msg_to
    for each row
    when (old.time_delivered is null and new.time_delivered is not null)
    execute function notify_delivered();

drop trigger if exists trg_msg_add_to_delivered on msg_add_to;
create trigger trg_msg_add_to_delivered
    after update of time_delivered on msg_add_to
    for each row
    when (old.time_delivered is null and new.time_delivered is not null)
    execute function notify_delivered();

-- 6. recipients_added: everyone on a sent message learns of a new batch ----------------
-- Deferred for the same reason as new_msg: the batch's msg_add_to rows follow
-- the batch row. A batch stored with a draft stays silent; sending the draft
-- announces its add-to recipients on new_msg.

create or replace function notify_recipients_added() returns trigger
language plpgsql as $$
begin
    if not exists (select 1 from msg m where m.id = new.msg_id and m.time_sent is not null) then
        return null;
    end if;
    perform pg_notify('recipients_added', new.msg_id || ',' || p.addr)
    from (select m.from_addr as addr from msg m where m.id = new.msg_id
          union all
          select addr from msg_to where msg_id = new.msg_id
          union all
          select addr from msg_add_to where msg_id = new.msg_id) p;
    return null;
end
$$;

drop trigger if exists trg_recipients_added on msg_add_to_batch;
create constraint trigger trg_recipients_added
    after insert on msg_add_to_batch
    deferrable initially deferred
    for each row execute function notify_recipients_added();

-- 7. Notify rows: a participant domain to tell about a batch is fmsgd's work too -------

create or replace function notify_add_to_notify_pending() returns trigger
language plpgsql as $$
begin
    perform pg_notify('new_msg_to', b.msg_id || ',' || new.domain)
    from msg_add_to_batch b
    join msg m on m.id = b.msg_id
    where b.id = new.batch_id and m.time_sent is not null;
    return null;
end
$$;

drop trigger if exists trg_msg_add_to_notify_insert on msg_add_to_notify;
create trigger trg_msg_add_to_notify_insert
    after insert on msg_add_to_notify
    for each row execute function notify_add_to_notify_pending();
