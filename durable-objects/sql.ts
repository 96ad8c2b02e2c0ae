/** One tagged-template helper for SQLite in Durable Objects: every interpolation is a bound parameter. */
export type SqlValue = string | number | null | ArrayBuffer;

/** What an object's statements have cost since it started: rows written are what Cloudflare bills. */
export interface StorageMeter {
  rows_written: number;
  rows_read: number;
  statements: number;
}

/** A table or index name spliced into a statement (names cannot be bound); see `ident()`. */
export class Ident {
  constructor(readonly name: string) {
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a safe SQL identifier: ${name}`);
  }
}

/** Marks a name (e.g. a partition table `tasks_20425`) to be spliced in rather than bound. */
export const ident = (name: string) => new Ident(name);

export type Sql = (<T extends Record<string, SqlStorageValue> = Record<string, SqlStorageValue>>(
  strings: TemplateStringsArray,
  ...values: (SqlValue | boolean | undefined | Ident)[]
) => SqlStorageCursor<T>) & {
  /** Rows written and read by every statement run through this helper (in memory, since the object started). */
  meter(): StorageMeter;
  /** `setAlarm()` and `deleteAlarm()` are billed as a row written each: count them with the statements. */
  countAlarmWrite(): void;
};

export function sqlFor(storage: SqlStorage): Sql {
  // A cursor's counts are final once it is consumed, which is always before the next statement runs
  // (objects are single-threaded and read their cursors synchronously): fold the previous one in then.
  let done = { rows_written: 0, rows_read: 0, statements: 0 };
  let last: SqlStorageCursor<Record<string, SqlStorageValue>> | null = null;
  const settle = () => {
    if (!last) return;
    done = {
      rows_written: done.rows_written + last.rowsWritten,
      rows_read: done.rows_read + last.rowsRead,
      statements: done.statements + 1,
    };
    last = null;
  };
  const sql = ((strings: TemplateStringsArray, ...values: (SqlValue | boolean | undefined | Ident)[]) => {
    settle();
    let query = strings[0] ?? "";
    const bound: (SqlValue | boolean | undefined)[] = [];
    values.forEach((v, i) => {
      if (v instanceof Ident) query += v.name;
      else {
        query += "?";
        bound.push(v);
      }
      query += strings[i + 1] ?? "";
    });
    const cursor = storage.exec(
      query,
      ...bound.map((v) => (v === undefined ? null : typeof v === "boolean" ? (v ? 1 : 0) : v)),
    );
    last = cursor;
    return cursor;
  }) as Sql;
  sql.countAlarmWrite = () => {
    done = { ...done, rows_written: done.rows_written + 1 };
  };
  sql.meter = () => {
    settle();
    return { ...done };
  };
  return sql;
}

/** Runs `migrations[i]` for every schema version above the stored one, recording the new version. */
export function migrate(storage: SqlStorage, migrations: readonly string[]): void {
  storage.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
  const row = storage.exec<{ version: number }>("SELECT version FROM schema_version").toArray()[0];
  const current = row?.version ?? 0;
  for (let v = current; v < migrations.length; v++) storage.exec(migrations[v]!);
  if (!row) storage.exec("INSERT INTO schema_version (version) VALUES (?)", migrations.length);
  else if (current < migrations.length)
    storage.exec("UPDATE schema_version SET version = ?", migrations.length);
}

/**
 * SQLite in Durable Objects refuses a string or BLOB over 2 MB (SQLITE_TOOBIG). Values passed as
 * one JSON array (batched statements) are cut into arrays of at most this many UTF-16 units,
 * which is at most ~1.8 MB of UTF-8 whatever the text.
 */
export const MAX_JSON_CHARS = 600_000;

/** Serializes items as JSON arrays, each under `maxChars` (an item larger than that stands alone). */
export function jsonChunks(items: readonly unknown[], maxChars = MAX_JSON_CHARS): string[] {
  const chunks: string[] = [];
  let parts: string[] = [];
  let size = 2;
  for (const item of items) {
    const json = JSON.stringify(item);
    if (parts.length && size + json.length + 1 > maxChars) {
      chunks.push(`[${parts.join(",")}]`);
      parts = [];
      size = 2;
    }
    parts.push(json);
    size += json.length + 1;
  }
  if (parts.length) chunks.push(`[${parts.join(",")}]`);
  return chunks;
}
