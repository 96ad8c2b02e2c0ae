/** A card listing task names with one statistic each and their failures (dashboard). */
import type { NameStat } from "../../../shared/api";
import { encodeId, shortName, text } from "../format";
import { Link } from "../router";
import { RowBoundary } from "./Boundary";

export function NameTable({
  title,
  rows,
  value,
}: {
  title: string;
  rows: NameStat[];
  value: (r: NameStat) => string;
}) {
  return (
    <div className="card">
      <div className="muted">{title}</div>
      {rows.length === 0 ? (
        <p className="muted">No finished task in the last 24 h.</p>
      ) : (
        <table className="grid compact">
          <tbody>
            {rows.map((r) => (
              <RowBoundary key={r.name} region={`task name ${text(r.name)}`} columns={3}>
                <tr>
                  <td>
                    <Link to={`/?name=${encodeId(r.name)}`}>{shortName(r.name)}</Link>
                  </td>
                  <td className="num">{value(r)}</td>
                  <td className={`num${r.failures ? " bad" : " muted"}`}>
                    {r.failures ? `${r.failures} failed` : ""}
                  </td>
                </tr>
              </RowBoundary>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
