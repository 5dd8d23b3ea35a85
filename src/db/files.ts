// Which files the message rows point to: the start-up sweep's view of the database.
import type { FileRows } from "../storage/sweep.ts";
import type { Sql } from "./pool.ts";
import { arrayLiteral } from "./arrays.ts";

export function fileRows(sql: Sql): FileRows {
  return {
    async filesOf(ids) {
      const rows = await sql<{ id: number; files: string[] }[]>`
        select m.id, array_remove(array_append(array_agg(a.filepath), m.filepath), null) as files
        from msg m left join msg_attachment a on a.msg_id = m.id
        where m.id = any(${arrayLiteral(ids)}::int8[])
        group by m.id, m.filepath`;
      return new Map(rows.map((r) => [r.id, new Set(r.files)]));
    },
    async highestId() {
      const [row] = await sql<{ last: number | null }[]>`
        select pg_sequence_last_value(pg_get_serial_sequence('msg', 'id')::regclass) as last`;
      return row?.last ?? 0;
    },
  };
}
