/** One tagged-template helper for SQLite in Durable Objects: every interpolation is a bound parameter. */
export type SqlValue = string | number | null | ArrayBuffer;

export type Sql = <T extends Record<string, SqlStorageValue> = Record<string, SqlStorageValue>>(
  strings: TemplateStringsArray,
  ...values: (SqlValue | boolean | undefined)[]
) => SqlStorageCursor<T>;

export function sqlFor(storage: SqlStorage): Sql {
  return (strings, ...values) =>
    storage.exec(
      strings.join("?"),
      ...values.map((v) => (v === undefined ? null : typeof v === "boolean" ? (v ? 1 : 0) : v)),
    );
}

/** Runs `migrations[i]` for every schema version above the stored one, recording the new version. */
export function migrate(storage: SqlStorage, migrations: readonly string[]): void {
  storage.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
  const row = storage.exec<{ version: number }>("SELECT version FROM schema_version").toArray()[0];
  const current = row?.version ?? 0;
  for (let v = current; v < migrations.length; v++) storage.exec(migrations[v]!);
  if (!row) storage.exec("INSERT INTO schema_version (version) VALUES (?)", migrations.length);
  else if (current < migrations.length) storage.exec("UPDATE schema_version SET version = ?", migrations.length);
}
