// The execution page's shared state: which execution, what the server said of it, which step is
// selected, and the live events. Each panel (graph, timeline, journal, step panel, actions) is a
// module with `mount(page, container)` that listens to the page:
//   "document" — the execution's summary arrived or was read again (detail: the document)
//   "events"   — a batch of live events in seq order (detail: {events})
//   "select"   — a step was selected (detail: {stepId}); null clears the selection
//   "travel"   — show the state at an event (detail: {seq}); null returns to now
//   "ended"    — the live stream ended (detail: {code, reason})
//   "reconnected" — the live stream opened again after a loss (no detail)
// `page.offline` is true from a loss of the live connection until it is open again: a panel whose
// read fails meanwhile keeps its last content (the banner says the connection is lost) and reads
// again on "reconnected".
// Panels talk to each other only through the page.

import { followEvents } from "./live.js";

const TERMINAL = { "execution.succeeded": "succeeded", "execution.failed": "failed", "execution.cancelled": "cancelled" };
const STATUS_OF_EVENT = {
  ...TERMINAL,
  "execution.started": "running",
  "execution.resumed": "running",
  "execution.waiting": "waiting",
};

export class ExecutionPage extends EventTarget {
  constructor(executionId) {
    super();
    this.executionId = executionId;
    this.document = null;
    this.status = document.getElementById("execution-status")?.dataset.status || "pending";
    this.selected = null;
    this.stream = null;
    this.offline = false;
  }

  /** The API path of this execution, plus `suffix`. */
  path(suffix = "") {
    return `/executions/${encodeURIComponent(this.executionId)}${suffix}`;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** A new summary document of the execution (from the API), for every panel. */
  setDocument(summary) {
    this.document = summary;
    if (summary.status) this.setStatus(summary.status);
    this.emit("document", summary);
  }

  /** Show `status` in the page heading. */
  setStatus(status) {
    this.status = status;
    const badge = document.getElementById("execution-status");
    if (badge) {
      badge.dataset.status = status;
      badge.textContent = status;
    }
  }

  /** Select a step (or null) for the step panel and the graph's highlight. */
  select(stepId) {
    this.selected = stepId;
    this.emit("select", { stepId });
  }

  /** Show the execution's state at event `seq` (or null for now). */
  travel(seq) {
    this.emit("travel", { seq });
  }

  /** Follow live events after `after` (the summary's last seq); again after a resume. */
  follow(after) {
    if (this.stream) this.stream.close();
    this.stream = followEvents(
      this.executionId,
      after,
      (events) => {
        for (const event of events) {
          const status = STATUS_OF_EVENT[event.type];
          if (status) this.setStatus(status);
        }
        this.emit("events", { events });
      },
      (code, reason) => {
        if (code === 4409 && reason.startsWith("interrupted")) this.setStatus("interrupted");
        this.offline = false;
        this.emit("ended", { code, reason });
      },
      {
        onLost: () => {
          this.offline = true;
        },
        onReconnect: () => {
          this.offline = false;
          this.emit("reconnected");
        },
      },
    );
  }

  /** Whether a failed read is part of an outage (no connection): keep the panel's last content. */
  outage(error) {
    return this.offline || error?.status === 0;
  }

  /** The seq of the last event seen (summary or live). */
  get lastSeq() {
    return this.stream ? this.stream.last : this.document?.last_seq || 0;
  }
}
