// The timeline's live side: folds a batch of live events into the rows the timeline last read,
// the way the server's row model (`_journal/_timeline_rows.py`) folds them, so that at 1,000
// events a second the chart moves with the events instead of reading and parsing the whole
// timeline (a 3,000-row document) every half second. Only plain steps are folded here: their
// attempts, failures, retry waits and ends. What the server groups or shapes further (map items,
// loop iterations, rejections, cancels and skips, a resume) makes the fold ask for a read instead,
// and the panel still reads the whole timeline now and then, which settles any difference.

const RUNNING = "running";
const CLOSED_AS = { "step.succeeded": "attempt", "step.failed": "failed", "attempt.failed": "failed", "retry.scheduled": "failed" };
// Events that change nothing the chart draws.
const QUIET = new Set(["step.progress", "step.usage"]);

/** Whether `stepId` names a map item (`ID[3]`) or a loop iteration (`ID#2`), not a step. */
export function isMember(stepId) {
  return /[[#]/.test(stepId);
}

/** The live state of one timeline document: `reset` with a read, then `fold` event batches. */
export class LiveRows {
  constructor() {
    this.data = null;
    this.rows = new Map();
    this.open = new Map();
  }

  /** Start from a timeline document just read (its rows are changed in place from now on). */
  reset(data) {
    this.data = data;
    this.rows = new Map(data.rows.map((row) => [row.step_id, row]));
    this.open = new Map();
    for (const row of data.rows) {
      // The server draws an open attempt as `running`, and a step retrying ends on its wait.
      const running = row.segments.findLast((segment) => segment.kind === RUNNING) || null;
      const last = row.segments[row.segments.length - 1];
      const wait = row.status === "retrying" && last?.kind === "wait" ? last : null;
      if (running || wait) this.open.set(row.step_id, { running, wait });
    }
  }

  /** Fold `events` (seq order, after the document's last seq) in; whether a read is needed. */
  fold(events) {
    let needsRead = false;
    for (const event of events) {
      if (event.seq <= this.data.last_seq) continue;
      this.data.last_seq = event.seq;
      this.data.last = Math.max(this.data.last, event.elapsed);
      if (QUIET.has(event.type)) continue;
      if (!event.step_id) {
        if (event.type === "execution.resumed") needsRead = true;
        continue;
      }
      if (!this.foldStep(event)) needsRead = true;
    }
    this.data.span = this.data.last - this.data.first;
    return needsRead;
  }

  /** Fold one step event into its row; false when it is not one this fold knows how to draw. */
  foldStep(event) {
    const id = event.step_id;
    if (isMember(id)) return false;
    let row = this.rows.get(id);
    if (row && (row.group || row.parent)) return false;
    const at = event.elapsed;
    if (event.type === "step.started") {
      if (row) return false; // run again (a resume or a replan): the server knows how it draws
      row = { step_id: id, status: RUNNING, attempts: 0, duration: null, parent: null, group: null, items: null, segments: [], started: at };
      this.rows.set(id, row);
      this.data.rows.push(row);
      this.data.total_rows = (this.data.total_rows ?? 0) + 1;
      return true;
    }
    if (!row) return false;
    const open = this.open.get(id) || {};
    this.open.set(id, open);
    if (event.type === "attempt.started") {
      if (open.wait) open.wait.end = Math.max(open.wait.start, at);
      if (open.running) open.running.kind = "interrupted";
      open.wait = null;
      open.running = { kind: RUNNING, start: at, end: at, attempt: event.attempt ?? null };
      row.segments.push(open.running);
      row.attempts += 1;
      row.status = RUNNING;
      return true;
    }
    const closing = CLOSED_AS[event.type];
    if (closing === undefined) return false;
    if (open.running) {
      open.running.kind = closing;
      open.running.end = at;
      open.running = null;
    }
    if (event.type === "retry.scheduled") {
      const delay = typeof event.data?.delay === "number" ? event.data.delay : 0;
      open.wait = { kind: "wait", start: at, end: at + delay, attempt: event.attempt ?? null };
      row.segments.push(open.wait);
      row.status = "retrying";
    } else if (event.type === "step.succeeded" || event.type === "step.failed") {
      if (open.wait) open.wait.end = Math.max(open.wait.start, Math.min(at, open.wait.end));
      this.open.delete(id);
      row.status = event.type === "step.succeeded" ? "succeeded" : "failed";
      if (row.started !== undefined) row.duration = at - row.started;
    }
    return true;
  }

  /** Whether an attempt is open somewhere (its bar grows until the next event). */
  get running() {
    for (const open of this.open.values()) if (open.running) return true;
    return false;
  }
}
