// The graph's live side: folds each batch of events into the graph's nodes (status, attempts,
// times, a child run, a map's item count) and says which nodes changed, so the view redraws only
// those; events of a group's members and the execution's end make it read the graph document
// again (250 ms later, about once a second at most, less often when a read is slow: never more
// than a fifth of the time) for the groups' counts, whose statuses win only when the document is
// not older than the events already applied.

import { getJSON } from "./api.js";

const STEP_STATUS = {
  "step.started": "running",
  "attempt.started": "running",
  "retry.scheduled": "retrying",
  "step.succeeded": "succeeded",
  "step.failed": "failed",
  "step.skipped": "skipped",
  "step.cancelled": "cancelled",
  "gate.opened": "waiting",
  "gate.resolved": "running",
};
const ENDINGS = new Set(["step.succeeded", "step.failed", "step.skipped", "step.cancelled"]);
const EXECUTION_CHANGES = new Set([
  "execution.resumed",
  "execution.waiting",
  "execution.succeeded",
  "execution.failed",
  "execution.cancelled",
]);
const REFRESH_MS = 1000;
const REFRESH_SOON_MS = 250;

/** The step a member unit belongs to (`each[3]` → `each`, `draft#2` → `draft`), else null. */
export function ownerOf(unitId) {
  const cut = unitId.search(/[[#]/);
  return cut > 0 ? unitId.slice(0, cut) : null;
}

/** The live state of one graph: `reset` with a document's nodes, then `apply` event batches. */
export class LiveGraph {
  constructor(page, hooks) {
    this.page = page;
    this.hooks = hooks;
    this.nodes = new Map();
    this.appliedSeq = 0;
    this.documentSeq = 0;
    this.refreshTimer = null;
    this.lastRefresh = -Infinity;
    this.readTime = 0;
  }

  /** Start from a document's nodes (a Map the view shares), read at `lastSeq`. */
  reset(nodes, lastSeq) {
    this.nodes = nodes;
    this.appliedSeq = lastSeq;
    this.documentSeq = lastSeq;
  }

  /** The stream ended: read the graph once more, unless no event came since the last read. */
  settle() {
    if (this.appliedSeq > this.documentSeq) this.refresh(0);
  }

  /** Apply a batch of live events: update only the nodes they change. */
  apply(events) {
    const changed = new Set();
    let groupsChanged = false;
    for (const event of events) {
      this.appliedSeq = Math.max(this.appliedSeq, event.seq);
      const stepId = event.step_id;
      if (!stepId) {
        if (EXECUTION_CHANGES.has(event.type)) groupsChanged = true;
        continue;
      }
      const node = this.nodes.get(stepId);
      const status = STEP_STATUS[event.type];
      if (!node) {
        const owner = ownerOf(stepId);
        if (owner && this.nodes.get(owner)?.group) groupsChanged = true;
        if (status) this.hooks.memberStatus(stepId, status);
        continue;
      }
      if (this.applyToNode(node, event, status)) changed.add(stepId);
    }
    for (const id of changed) this.hooks.redraw(id);
    const period = Math.max(REFRESH_MS, 5 * this.readTime); // a 10,000-step document is slow to read
    if (groupsChanged) this.refresh(Math.max(REFRESH_SOON_MS, this.lastRefresh + period - performance.now()));
  }

  /** Change `node` by one of its events; whether anything shown changed. */
  applyToNode(node, event, status) {
    let changed = false;
    if (event.type === "attempt.started") {
      node.attempts += 1;
      changed = true;
    }
    if (status && node.status !== status) {
      node.status = status;
      changed = true;
    }
    if (event.type === "step.started" && node.started === null) node.started = event.elapsed;
    if (ENDINGS.has(event.type) && node.started !== null) node.duration = event.elapsed - node.started;
    if (node.group && (node.group.kind === "workflow" || node.group.kind === "plan")) {
      if (event.type === "child.started" && event.data?.child_id) node.group.child_execution_id = event.data.child_id;
      node.group.counts = { [node.status]: 1 };
      changed = true;
    }
    if (event.type === "map.started" && node.group && Number.isInteger(event.data?.count)) {
      node.group.total = event.data.count;
      changed = true;
    }
    return changed;
  }

  /** Read the graph again after `delay` ms (one read pending at most, about one a second). */
  refresh(delay) {
    if (this.refreshTimer !== null) {
      if (delay > 0) return;
      clearTimeout(this.refreshTimer);
    }
    this.refreshTimer = setTimeout(async () => {
      this.refreshTimer = null;
      this.lastRefresh = performance.now();
      let doc;
      try {
        doc = await getJSON(this.page.path("/graph"));
      } catch {
        return;
      }
      this.merge(doc);
      this.readTime = performance.now() - this.lastRefresh;
    }, delay);
  }

  /** Merge a fresh graph document: groups always; statuses only if it is not older than the events. */
  merge(doc) {
    const current = doc.last_seq >= this.appliedSeq;
    for (const fresh of doc.nodes) {
      const node = this.nodes.get(fresh.id);
      if (!node) continue;
      let changed = false;
      if (fresh.group && JSON.stringify(fresh.group) !== JSON.stringify(node.group)) {
        node.group = fresh.group;
        changed = true;
      }
      if (current) {
        for (const field of ["status", "attempts", "started", "duration"]) {
          if (node[field] !== fresh[field]) {
            node[field] = fresh[field];
            changed = true;
          }
        }
      }
      if (changed) this.hooks.redraw(fresh.id);
    }
    if (current) this.appliedSeq = doc.last_seq;
    this.documentSeq = Math.max(this.documentSeq, doc.last_seq);
  }
}
