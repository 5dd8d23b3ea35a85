-- The inbox event journal behind GET /fmsg/events: one row per (identity, event), filled by
-- triggers on fmsgd's tables so that fmsgd's writes count as much as the API's own.
-- Idempotent like the files before it; applied after them, in the same transaction.
--
-- Kinds (msg_id names the message; addr is the identity as the row that caused it spells it):
--   new_msg           the message became visible to addr (a draft sent, a message received
--                     already sent, addr added to a sent message by add-to)
--   recipients_added  an add-to batch on a sent message addr takes part in (sender and the
--                     other recipients; the added ones get new_msg)
--   delivered         a recipient of addr's message got it (time_delivered null -> set)
--   read              a recipient of addr's message read it (time_read null -> set)
--
-- Commit order. seq comes from a sequence, and sequences hand out numbers in call order, not
-- commit order: without care, a transaction could take N, another N+1 and commit first, and a
-- reader that saw N+1 would move its cursor past N before N becomes visible — N lost for good.
-- So every trigger below is a deferred constraint trigger (it runs at COMMIT, after the
-- transaction's own work), and fmsg_api_record_events takes a transaction-level advisory lock
-- before drawing numbers. The lock is held until the transaction ends, so transactions that
-- write events commit one at a time in seq order: whoever sees seq N+1 committed also sees
-- every lower seq that will ever commit. The price is that event-writing commits are
-- serialised for the short moment between their deferred triggers and the commit itself.

create sequence if not exists fmsg_api_event_seq;

create table if not exists fmsg_api_event (
    seq     bigint            primary key,
    addr    varchar(255)      not null,
    kind    varchar(32)       not null check (kind in ('new_msg', 'recipients_added', 'delivered', 'read')),
    msg_id  bigint            not null,
    time    double precision  not null
);
-- A feed page: one identity's events above its cursor, in seq order.
create index if not exists fmsg_api_event_lower_addr_seq_idx on fmsg_api_event (lower(addr), seq);
-- The pruner finds what is older than the retention period.
create index if not exists fmsg_api_event_time_idx on fmsg_api_event (time);
-- A message becomes visible to an identity once: the msg trigger and the recipient-row triggers
-- of one received message (or a to and an add-to row of one address) must not both say so.
create unique index if not exists fmsg_api_event_new_msg_once_idx
    on fmsg_api_event (msg_id, lower(addr)) where kind = 'new_msg';

-- The highest seq the pruner has removed (one row): a cursor below it has missed events (410).
create table if not exists fmsg_api_event_pruned (
    only_row  boolean  primary key default true check (only_row),
    upto      bigint   not null
);

create or replace function fmsg_api_record_events(p_kind text, p_msg_id bigint, p_addrs text[]) returns void
language plpgsql as $$
begin
    if coalesce(cardinality(p_addrs), 0) = 0 then
        return;
    end if;
    -- Held to commit: event-writing transactions commit in seq order (see the top of this file).
    perform pg_advisory_xact_lock(1718449009); -- 0x666d_7371, "fmsq"
    insert into fmsg_api_event (seq, addr, kind, msg_id, time)
    select nextval('fmsg_api_event_seq'), a.addr, p_kind, p_msg_id, extract(epoch from clock_timestamp())
    from (select distinct on (lower(x.addr)) x.addr from unnest(p_addrs) as x(addr) order by lower(x.addr)) a
    on conflict (msg_id, lower(addr)) where kind = 'new_msg' do nothing;
    -- Wakes the feed readers (src/realtime/inbox-listener.ts); delivered on COMMIT, like the rows.
    perform pg_notify('fmsg_api_events', a.addr) from (select distinct x.addr from unnest(p_addrs) as x(addr)) a;
end
$$;

-- A message becoming sent (a draft sent, or a message received already sent): every recipient.
create or replace function fmsg_api_event_msg_sent() returns trigger
language plpgsql as $$
begin
    if tg_op = 'UPDATE' and old.time_sent is not null then
        return null;
    end if;
    perform fmsg_api_record_events('new_msg', new.id, array(
        select t.addr from msg_to t where t.msg_id = new.id
        union all
        select a.addr from msg_add_to a where a.msg_id = new.id))
    from msg m where m.id = new.id and m.time_sent is not null;
    return null;
end
$$;

drop trigger if exists fmsg_api_trg_msg_event on msg;
create constraint trigger fmsg_api_trg_msg_event
    after insert or update of time_sent on msg
    deferrable initially deferred
    for each row when (new.time_sent is not null)
    execute function fmsg_api_event_msg_sent();

-- A recipient row added to a sent message (add-to, or fmsgd storing rows after the msg row).
create or replace function fmsg_api_event_recipient_added() returns trigger
language plpgsql as $$
begin
    if exists (select 1 from msg m where m.id = new.msg_id and m.time_sent is not null) then
        perform fmsg_api_record_events('new_msg', new.msg_id, array[new.addr::text]);
    end if;
    return null;
end
$$;

drop trigger if exists fmsg_api_trg_msg_to_event on msg_to;
create constraint trigger fmsg_api_trg_msg_to_event
    after insert on msg_to
    deferrable initially deferred
    for each row execute function fmsg_api_event_recipient_added();
drop trigger if exists fmsg_api_trg_msg_add_to_event on msg_add_to;
create constraint trigger fmsg_api_trg_msg_add_to_event
    after insert on msg_add_to
    deferrable initially deferred
    for each row execute function fmsg_api_event_recipient_added();

-- An add-to batch on a sent message: the sender and the other participants (as trg_recipients_added
-- notifies them), unless the message itself was written by this transaction (received with its
-- batches: its participants hear new_msg already).
create or replace function fmsg_api_event_batch_added() returns trigger
language plpgsql as $$
begin
    if not exists (select 1 from msg m where m.id = new.msg_id and m.time_sent is not null
                   and m.xmin <> pg_current_xact_id()::xid) then
        return null;
    end if;
    perform fmsg_api_record_events('recipients_added', new.msg_id, array(
        select p.addr from (
            select m.from_addr as addr from msg m where m.id = new.msg_id
            union all
            select t.addr from msg_to t where t.msg_id = new.msg_id
            union all
            select a.addr from msg_add_to a where a.msg_id = new.msg_id and a.batch_id <> new.id) p
        where lower(p.addr) not in (select lower(b.addr) from msg_add_to b where b.batch_id = new.id)));
    return null;
end
$$;

drop trigger if exists fmsg_api_trg_batch_event on msg_add_to_batch;
create constraint trigger fmsg_api_trg_batch_event
    after insert on msg_add_to_batch
    deferrable initially deferred
    for each row execute function fmsg_api_event_batch_added();

-- A recipient row delivered or read: its message's sender. tg_argv[0] is the kind.
create or replace function fmsg_api_event_to_sender() returns trigger
language plpgsql as $$
begin
    perform fmsg_api_record_events(tg_argv[0], new.msg_id, array(select m.from_addr::text from msg m where m.id = new.msg_id));
    return null;
end
$$;

drop trigger if exists fmsg_api_trg_msg_to_delivered_event on msg_to;
create constraint trigger fmsg_api_trg_msg_to_delivered_event
    after update of time_delivered on msg_to
    deferrable initially deferred
    for each row when (old.time_delivered is null and new.time_delivered is not null)
    execute function fmsg_api_event_to_sender('delivered');
drop trigger if exists fmsg_api_trg_msg_add_to_delivered_event on msg_add_to;
create constraint trigger fmsg_api_trg_msg_add_to_delivered_event
    after update of time_delivered on msg_add_to
    deferrable initially deferred
    for each row when (old.time_delivered is null and new.time_delivered is not null)
    execute function fmsg_api_event_to_sender('delivered');
drop trigger if exists fmsg_api_trg_msg_to_read_event on msg_to;
create constraint trigger fmsg_api_trg_msg_to_read_event
    after update of time_read on msg_to
    deferrable initially deferred
    for each row when (old.time_read is null and new.time_read is not null)
    execute function fmsg_api_event_to_sender('read');
drop trigger if exists fmsg_api_trg_msg_add_to_read_event on msg_add_to;
create constraint trigger fmsg_api_trg_msg_add_to_read_event
    after update of time_read on msg_add_to
    deferrable initially deferred
    for each row when (old.time_read is null and new.time_read is not null)
    execute function fmsg_api_event_to_sender('read');
