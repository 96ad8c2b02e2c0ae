import type { ThroughputBucket } from "../../../shared/api";
import { percent } from "../format";
import { STATE_STYLES } from "../states";

/** Finished tasks per bucket with the failed part on top: throughput and failure rate at a glance. */
export function ThroughputBars({
  buckets,
  label,
  bucketLabel,
}: {
  buckets: ThroughputBucket[];
  label: string;
  bucketLabel: (start: number) => string;
}) {
  const max = Math.max(1, ...buckets.map((b) => b.finished));
  const finished = buckets.reduce((s, b) => s + b.finished, 0);
  const failed = buckets.reduce((s, b) => s + b.failed, 0);
  const w = 12;
  const h = 48;
  const first = buckets[0];
  const last = buckets[buckets.length - 1];
  return (
    <div className="card throughput">
      <div className="muted card-label">{label}</div>
      <div className="headline">
        <span className="big">{finished.toLocaleString()}</span> finished{" "}
        <span className={`rate ${failed ? "bad" : "ok"}`}>
          {finished ? percent(failed / finished) : "0.0%"} failed
        </span>
      </div>
      <div className="plot">
        {/* The scale, outside the SVG (stretched with preserveAspectRatio="none", text would be too). */}
        <div className="axis-y muted" aria-hidden="true">
          <span>{max.toLocaleString()}</span>
          <span>0</span>
        </div>
        <svg
          viewBox={`0 0 ${buckets.length * (w + 2)} ${h}`}
          width="100%"
          height={h}
          preserveAspectRatio="none"
          role="img"
          aria-label={`${label}: ${finished} finished, ${failed} failed`}
        >
          {buckets.map((b, i) => {
            const total = (b.finished / max) * h;
            const bad = (b.failed / max) * h;
            return (
              <g key={b.start}>
                <title>{`${bucketLabel(b.start)}: ${b.finished} finished, ${b.failed} failed`}</title>
                <rect
                  x={i * (w + 2)}
                  y={h - total}
                  width={w}
                  height={Math.max(total - bad, 0)}
                  fill={STATE_STYLES.SUCCESS.color}
                  opacity={0.7}
                />
                <rect x={i * (w + 2)} y={h - bad} width={w} height={bad} fill={STATE_STYLES.FAILURE.color} />
                {b.finished === 0 && (
                  <rect x={i * (w + 2)} y={h - 1} width={w} height={1} fill="var(--border)" />
                )}
              </g>
            );
          })}
        </svg>
      </div>
      {first && last && (
        <div className="axis-x muted" aria-hidden="true">
          <span>{bucketLabel(first.start)}</span>
          <span>finished per bucket</span>
          <span>{bucketLabel(last.start)}</span>
        </div>
      )}
    </div>
  );
}
