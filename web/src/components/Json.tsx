/** Pretty-printed JSON with scrubbed and truncated values visibly marked. */
import type { ReactNode } from "react";

function render(value: unknown, indent: number): ReactNode {
  const pad = "  ".repeat(indent);
  if (value === null || value === undefined) return <span className="json-null">null</span>;
  if (typeof value === "string") {
    if (value === "[Filtered]")
      return (
        <span className="json-filtered" title="scrubbed by the producer: a sensitive key">
          [Filtered]
        </span>
      );
    if (value.includes("…[truncated"))
      return (
        <span className="json-truncated" title="truncated by the producer's size cap">
          {JSON.stringify(value)}
        </span>
      );
    return <span className="json-string">{JSON.stringify(value)}</span>;
  }
  if (typeof value === "number" || typeof value === "boolean")
    return <span className="json-number">{String(value)}</span>;
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    return (
      <>
        {"[\n"}
        {value.map((v, i) => (
          <span key={i}>
            {pad} {render(v, indent + 1)}
            {i < value.length - 1 ? ",\n" : "\n"}
          </span>
        ))}
        {pad}]
      </>
    );
  }
  if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>);
    // The producer's marker for a float JSON cannot carry (NaN, Infinity, -Infinity).
    if (entries.length === 1 && entries[0]![0] === "__float__" && typeof entries[0]![1] === "string")
      return (
        <span className="json-float" title="not a JSON number: the producer sent a non-finite float">
          {entries[0]![1]}
        </span>
      );
    if (entries.length === 1 && entries[0]![0] === "__repr__")
      return (
        <span className="json-repr" title="not JSON: the producer sent its repr()">
          {String(entries[0]![1])}
        </span>
      );
    if (entries.length === 0) return "{}";
    return (
      <>
        {"{\n"}
        {entries.map(([k, v], i) => (
          <span key={k}>
            {pad} <span className="json-key">{JSON.stringify(k)}</span>: {render(v, indent + 1)}
            {i < entries.length - 1 ? ",\n" : "\n"}
          </span>
        ))}
        {pad}
        {"}"}
      </>
    );
  }
  return String(value);
}

export function Json({ value }: { value: unknown }) {
  return <pre className="json">{render(value, 0)}</pre>;
}
