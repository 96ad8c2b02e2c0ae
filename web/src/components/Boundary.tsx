/**
 * An error boundary for one region of a page (header, graph, timeline, detail panel, a table, a
 * row, a dashboard card): a bad stored value that makes one part throw while rendering leaves the
 * rest of the page standing, and the part says what failed and offers a retry.
 */
import { Component, type ErrorInfo, type ReactNode } from "react";

interface Props {
  /** What this region is, for the message and for tests (`data-region`). */
  region: string;
  children?: ReactNode;
  /** Where a <div> is not allowed (a table body), how to wrap the message. */
  wrap?: (message: ReactNode) => ReactNode;
}

interface State {
  error: unknown;
}

export function errorMessage(error: unknown): string {
  try {
    if (error instanceof Error) return `${error.name === "Error" ? "" : `${error.name}: `}${error.message}`;
    return String(error);
  } catch {
    return "an error that cannot be shown";
  }
}

export class Boundary extends Component<Props, State> {
  state: State = { error: null };

  static getDerivedStateFromError(error: unknown): State {
    return { error: error ?? new Error("unknown error") };
  }

  componentDidCatch(error: unknown, info: ErrorInfo) {
    console.error(`stemtrace: the ${this.props.region} failed to render`, error, info.componentStack);
  }

  render() {
    if (this.state.error === null) return this.props.children;
    const message = (
      <span className="region-error" role="alert" data-region-error={this.props.region}>
        ⚠ This part ({this.props.region}) failed to render: {errorMessage(this.state.error)}{" "}
        <button type="button" onClick={() => this.setState({ error: null })}>
          retry
        </button>
      </span>
    );
    return this.props.wrap ? this.props.wrap(message) : <div className="region-error-box">{message}</div>;
  }
}

/** A table row's boundary: the message takes the row's place, across all its columns. */
export function RowBoundary({
  region,
  columns,
  children,
}: {
  region: string;
  columns: number;
  children: ReactNode;
}) {
  return (
    <Boundary
      region={region}
      wrap={(m) => (
        <tr className="region-error-row">
          <td colSpan={columns}>{m}</td>
        </tr>
      )}
    >
      {children}
    </Boundary>
  );
}
