// The schema in sql/: idempotent migrate, the start-up table check, and fmsgd's trigger contract.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import fmsgdFixture from "../fixtures/fmsgd-ddl.sql" with { type: "text" };
import { REQUIRED_TABLES, migrate, missingTables, schemaFingerprint } from "../../src/db/schema.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";

type Query = postgres.ISql;

const databases: TestDatabase[] = [];
async function emptyDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase({ migrated: false });
  databases.push(db);
  return db;
}
afterAll(async () => {
  await Promise.all(databases.map((db) => db.drop()));
});

/** Everything migrate can create, as sorted one-line descriptions. */
async function catalogSnapshot(sql: postgres.Sql): Promise<string[]> {
  const rows = await sql<{ item: string }[]>`
    select 'table ' || tablename as item from pg_tables where schemaname = current_schema()
    union all
    select format('column %s.%s %s(%s) nullable=%s default=%s', table_name, column_name,
                  data_type, character_maximum_length, is_nullable, column_default)
    from information_schema.columns where table_schema = current_schema()
    union all
    select 'index ' || indexdef from pg_indexes where schemaname = current_schema()
    union all
    select format('constraint %s %s', conname, pg_get_constraintdef(oid))
    from pg_constraint where connamespace = current_schema()::regnamespace
    union all
    select 'trigger ' || pg_get_triggerdef(oid) from pg_trigger where not tgisinternal
    union all
    select 'function ' || pg_get_functiondef(oid)
    from pg_proc where pronamespace = current_schema()::regnamespace
    order by 1`;
  return rows.map((r) => r.item);
}

describe("migrate", () => {
  test("missingTables names every fmsgd table on an empty database and none after migrate", async () => {
    const db = await emptyDatabase();
    expect(await missingTables(db.sql)).toEqual([...REQUIRED_TABLES]);
    await migrate(db.sql);
    expect(await missingTables(db.sql)).toEqual([]);
    const versions = await db.sql`select fingerprint from fmsg_api_schema_version`;
    expect(versions.map((v) => v.fingerprint)).toEqual([schemaFingerprint()]);
  });

  test("two migrates racing on one empty database both succeed", async () => {
    const db = await emptyDatabase();
    const other = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      await Promise.all([migrate(db.sql), migrate(other)]);
    } finally {
      await other.end({ timeout: 5 });
    }
    expect(await missingTables(db.sql)).toEqual([]);
  });

  test("applying the schema a second time changes nothing", async () => {
    const db = await emptyDatabase();
    await migrate(db.sql);
    const first = await catalogSnapshot(db.sql);
    await migrate(db.sql);
    expect(await catalogSnapshot(db.sql)).toEqual(first);
    expect(first.some((item) => item.startsWith("trigger CREATE CONSTRAINT TRIGGER trg_new_msg"))).toBe(true);
  });

  test("the fingerprint is a short hex hash", () => {
    expect(schemaFingerprint()).toMatch(/^[0-9a-f]{12}$/);
  });
});

/** Payloads received on one channel, handed out in arrival order. */
class ChannelLog {
  private queue: string[] = [];
  private waiter: { count: number; resolve: (payloads: string[]) => void } | null = null;

  constructor(readonly channel: string) {}

  push(payload: string): void {
    this.queue.push(payload);
    this.wake();
  }

  /** Resolves with the next `count` payloads as soon as that many have arrived. */
  take(count: number): Promise<string[]> {
    return new Promise((resolve) => {
      this.waiter = { count, resolve };
      this.wake();
    });
  }

  /** Everything still due before a marker sent now: NOTIFYs arrive in commit order. */
  async drain(sql: postgres.Sql): Promise<string[]> {
    await sql`select pg_notify(${this.channel}, 'marker')`;
    const before: string[] = [];
    for (;;) {
      const [payload] = await this.take(1);
      if (payload === "marker") return before;
      if (payload !== undefined) before.push(payload);
    }
  }

  private wake(): void {
    if (this.waiter && this.queue.length >= this.waiter.count) {
      const { count, resolve } = this.waiter;
      this.waiter = null;
      resolve(this.queue.splice(0, count));
    }
  }
}

const now = () => Date.now() / 1000;

async function insertMsg(
  q: Query,
  f: { from?: string; sent?: boolean; pid?: string; sha256?: Buffer; psha256?: Buffer } = {},
): Promise<string> {
  const [row] = await q<{ id: string }[]>`
    insert into msg (version, pid, time_sent, from_addr, topic, type, sha256, psha256, size, filepath)
    values (1, ${f.pid ?? null}, ${f.sent ? now() : null}, ${f.from ?? "sender@a.example"}, 'topic',
            'text/plain', ${f.sha256 ?? null}, ${f.psha256 ?? null}, 0, '/data/a.example/sender/out/data.txt')
    returning id`;
  if (!row) throw new Error("insert returned no row");
  return row.id;
}

async function insertTo(q: Query, msgId: string, addrs: string[]): Promise<void> {
  for (const addr of addrs) await q`insert into msg_to (msg_id, addr) values (${msgId}, ${addr})`;
}

async function insertBatch(q: Query, msgId: string, addrs: string[], by = "sender@a.example"): Promise<string> {
  const [batch] = await q<{ id: string }[]>`
    insert into msg_add_to_batch (msg_id, add_to_from, time_added) values (${msgId}, ${by}, ${now()}) returning id`;
  if (!batch) throw new Error("insert returned no row");
  for (const addr of addrs) {
    await q`insert into msg_add_to (msg_id, batch_id, addr) values (${msgId}, ${batch.id}, ${addr})`;
  }
  return batch.id;
}

const payloads = (id: string, addrs: string[]) => addrs.map((a) => `${id},${a}`).sort();

describe("fmsgd's triggers, after migrate over fmsgd's own DDL", () => {
  let db: TestDatabase;
  let sql: postgres.Sql;
  let listener: postgres.Sql;
  const logs = {
    new_msg: new ChannelLog("new_msg"),
    new_msg_to: new ChannelLog("new_msg_to"),
    delivered: new ChannelLog("delivered"),
    recipients_added: new ChannelLog("recipients_added"),
  };

  beforeAll(async () => {
    db = await emptyDatabase();
    sql = db.sql;
    await sql.unsafe(fmsgdFixture);
    expect(await missingTables(sql)).toEqual([]);
    await migrate(sql);
    listener = postgres(db.url, { max: 1, onnotice: () => {} });
    for (const log of Object.values(logs)) await listener.listen(log.channel, (p) => log.push(p));
  });
  afterAll(async () => {
    await listener?.end({ timeout: 5 });
  });
  beforeEach(async () => {
    for (const log of Object.values(logs)) await log.drain(sql);
  });

  test("the catalog equals the one migrate builds on an empty database", async () => {
    const fresh = await emptyDatabase();
    await migrate(fresh.sql);
    expect(await catalogSnapshot(sql)).toEqual(await catalogSnapshot(fresh.sql));
  });

  test("a reply to a missing parent is refused", async () => {
    await expect(insertMsg(sql, { pid: "987654321" })).rejects.toThrow("parent message 987654321 does not exist");
  });

  test("a reply to a draft is refused", async () => {
    const draft = await insertMsg(sql);
    await expect(insertMsg(sql, { pid: draft })).rejects.toThrow(`cannot set pid ${draft}: parent message is a draft`);
  });

  test("a reply's psha256 is filled from its parent's sha256, and a different one is refused", async () => {
    const hash = randomBytes(32);
    const parent = await insertMsg(sql, { sent: true, sha256: hash });
    const reply = await insertMsg(sql, { pid: parent });
    const [row] = await sql`select encode(psha256, 'hex') as psha256 from msg where id = ${reply}`;
    expect(row?.psha256).toBe(hash.toString("hex"));
    await expect(insertMsg(sql, { pid: parent, psha256: randomBytes(32) })).rejects.toThrow("psha256");

    const later = await insertMsg(sql);
    await sql`update msg set pid = ${parent}, psha256 = null where id = ${later}`;
    const [updated] = await sql`select encode(psha256, 'hex') as psha256 from msg where id = ${later}`;
    expect(updated?.psha256).toBe(hash.toString("hex"));
  });

  test("a reply to a parent without a hash yet keeps psha256 empty", async () => {
    const parent = await insertMsg(sql, { sent: true });
    const reply = await insertMsg(sql, { pid: parent });
    const [row] = await sql`select psha256 from msg where id = ${reply}`;
    expect(row?.psha256).toBeNull();
  });

  test("a message with replies cannot go back to draft nor lose or change its sha256", async () => {
    const parent = await insertMsg(sql, { sent: true, sha256: randomBytes(32) });
    await insertMsg(sql, { pid: parent });
    await expect(sql`update msg set time_sent = null where id = ${parent}`).rejects.toThrow(
      `cannot make message ${parent} a draft: it has replies`,
    );
    await expect(sql`update msg set sha256 = null where id = ${parent}`).rejects.toThrow("it has replies");
    await expect(sql`update msg set sha256 = ${randomBytes(32)} where id = ${parent}`).rejects.toThrow("it has replies");

    const unhashed = await insertMsg(sql, { sent: true });
    await insertMsg(sql, { pid: unhashed });
    await sql`update msg set sha256 = ${randomBytes(32)} where id = ${unhashed}`;

    const lonely = await insertMsg(sql, { sent: true });
    await sql`update msg set time_sent = null where id = ${lonely}`;
  });

  test("a draft and its add-to batch announce nothing until sent; sending announces every recipient", async () => {
    const id = await sql.begin(async (tx) => {
      const draft = await insertMsg(tx);
      await insertTo(tx, draft, ["a@b.example", "c@d.example"]);
      const batch = await insertBatch(tx, draft, ["e@f.example"]);
      await tx`insert into msg_add_to_notify (batch_id, domain) values (${batch}, 'g.example')`;
      return draft;
    });
    for (const log of Object.values(logs)) expect(await log.drain(sql)).toEqual([]);

    await sql.begin((tx) => tx`update msg set time_sent = ${now()} where id = ${id} and time_sent is null`);
    const everyone = payloads(id, ["a@b.example", "c@d.example", "e@f.example"]);
    expect((await logs.new_msg.take(3)).sort()).toEqual(everyone);
    expect((await logs.new_msg_to.take(3)).sort()).toEqual(everyone);
    for (const log of Object.values(logs)) expect(await log.drain(sql)).toEqual([]);
  });

  test("a received message inserted already sent announces each recipient on new_msg at commit", async () => {
    const id = await sql.begin(async (tx) => {
      const received = await insertMsg(tx, { sent: true, from: "far@remote.example", sha256: randomBytes(32) });
      await insertTo(tx, received, ["a@b.example", "c@b.example"]);
      await insertBatch(tx, received, ["x@b.example"], "far@remote.example");
      return received;
    });
    expect((await logs.new_msg.take(3)).sort()).toEqual(payloads(id, ["a@b.example", "c@b.example", "x@b.example"]));
    expect(await logs.new_msg.drain(sql)).toEqual([]);
  });

  test("a batch added to a sent message announces sender, every to and every add-to address", async () => {
    const id = await insertMsg(sql, { sent: true, from: "s@a.example" });
    await insertTo(sql, id, ["t@b.example"]);
    await sql.begin((tx) => insertBatch(tx, id, ["first@c.example"]));
    await logs.recipients_added.take(3);

    await sql.begin((tx) => insertBatch(tx, id, ["second@d.example", "third@d.example"]));
    const all = ["s@a.example", "t@b.example", "first@c.example", "second@d.example", "third@d.example"];
    expect((await logs.recipients_added.take(5)).sort()).toEqual(payloads(id, all));
    expect(await logs.recipients_added.drain(sql)).toEqual([]);
    // fmsgd's own wake-up: one per add-to recipient, pending delivery.
    expect((await logs.new_msg_to.drain(sql)).sort()).toEqual(
      payloads(id, ["t@b.example", "first@c.example", "second@d.example", "third@d.example"]),
    );
    expect(await logs.new_msg.drain(sql)).toEqual([]);
  });

  test("a notify row for a sent message's batch wakes fmsgd with its domain", async () => {
    const id = await insertMsg(sql, { sent: true });
    const batch = await insertBatch(sql, id, ["n@h.example"]);
    await logs.new_msg_to.drain(sql);
    await sql`insert into msg_add_to_notify (batch_id, domain) values (${batch}, 'other.example')`;
    expect(await logs.new_msg_to.take(1)).toEqual([`${id},other.example`]);
    expect(await logs.new_msg_to.drain(sql)).toEqual([]);
  });

  test("delivered fires once per recipient, when time_delivered is first set", async () => {
    const id = await insertMsg(sql, { sent: true, from: "s@a.example" });
    await insertTo(sql, id, ["t@b.example"]);
    await insertBatch(sql, id, ["u@c.example"]);

    await sql`update msg_to set time_delivered = ${now()}, response_code = 200 where msg_id = ${id}`;
    expect(await logs.delivered.take(1)).toEqual([`${id},s@a.example`]);
    await sql`update msg_to set time_delivered = ${now()} where msg_id = ${id}`;
    await sql`update msg_to set time_read = ${now()} where msg_id = ${id}`;
    expect(await logs.delivered.drain(sql)).toEqual([]);

    await sql`update msg_add_to set time_delivered = ${now()} where msg_id = ${id}`;
    expect(await logs.delivered.take(1)).toEqual([`${id},s@a.example`]);
    expect(await logs.delivered.drain(sql)).toEqual([]);
  });
});
