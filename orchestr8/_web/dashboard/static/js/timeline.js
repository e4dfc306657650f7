// The timeline panel: an SVG Gantt chart of the execution's attempts, from the same row model as
// `orchestr8 inspect ID --timeline` (GET /executions/{id}/timeline). One row per step; map items
// and loop iterations sit under their step, collapsed until it is expanded. Failed attempts are
// hatched, retry waits dotted, rejections a diamond, the resume gap shaded — never colour alone.
// Zoom with the buttons, + / - / 0 keys, or ctrl+wheel around the pointer; scroll sideways.
// Only the rows in view are drawn, so 10,000 rows stay fast. Live events are folded into the rows
// (timeline_live) and drawn at the next frame; the whole timeline is read again only when an event
// is one the fold leaves to the server (map items, loop iterations, a resume...: at most every
// 500 ms, less often when a read is slow), every few seconds to settle any difference, and when
// the run ends. A hidden panel reads nothing until it shows. Running bars grow between events.

import { getJSON, query } from "./api.js";
import { showError } from "./banner.js";
import { duration, element } from "./format.js";
import { niceStep, tickLabel } from "./timeline_axis.js";
import { LiveRows } from "./timeline_live.js";

const SVG = "http://www.w3.org/2000/svg";
const ROW = 26;
const AXIS = 28;
const LABELS = 190;
const REFRESH = 500;
// While events are folded in, the whole timeline is still read this often (or 10 reads' time).
const SETTLE = 5000;
// How often live events (and running bars) redraw the rows in view.
const LIVE_DRAW = 250;
const ZOOM_STEP = 1.5;
const ZOOM_MAX = 2000;
const KIND_WORDS = {
  attempt: "succeeded",
  failed: "failed",
  running: "running",
  interrupted: "interrupted",
  wait: "retry wait",
  rejected: "rejected",
};
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  node.append(...children);
  return node;
}

function title(text) {
  const node = svg("title");
  node.textContent = text;
  return node;
}

/** Words for one segment: which attempt, what came of it, how long. */
export function describeSegment(row, segment) {
  const attempt = segment.attempt ? `attempt ${segment.attempt}` : "run";
  const span = segment.end - segment.start;
  const what = segment.kind === "wait" ? `retry wait after ${attempt}` : `${attempt}: ${KIND_WORDS[segment.kind]}`;
  const length = segment.kind === "rejected" ? `at ${duration(segment.start)}` : `${duration(span)}, ${duration(segment.start)} → ${duration(segment.end)}`;
  return `${row.step_id} — ${what} (${length})`;
}

class Timeline {
  constructor(page, container) {
    this.page = page;
    this.container = container;
    this.data = null;
    this.parents = new Set();
    this.running = false;
    this.zoom = 1;
    this.expanded = new Set();
    this.fetchedAt = -Infinity;
    this.readTime = 0;
    this.reading = null;
    this.again = false;
    this.timer = null;
    this.drawQueued = false;
    this.drawn = false;
    this.stale = false;
    this.liveRows = new LiveRows();
    this.unread = [];
    this.drawTimer = null;
    this.lastAt = 0;
    this.build();
  }

  build() {
    const button = (label, text, onclick) => element("button", { type: "button", "aria-label": label, onclick }, text);
    this.zoomText = element("span", { className: "timeline-zoom", "aria-live": "polite" }, "Zoom 100%");
    const legend = element(
      "ul",
      { className: "timeline-legend", "aria-label": "Legend" },
      ...Object.entries({ attempt: "attempt", failed: "failed attempt (hatched or ✗)", wait: "retry wait (dotted)", rejected: "rejected (◆)", running: "running", interrupted: "interrupted", gap: "resume gap (shaded)" }).map(
        ([kind, text]) => element("li", { dataset: { kind } }, element("span", { className: "swatch", "aria-hidden": "true" }), text),
      ),
    );
    const tools = element(
      "div",
      { className: "timeline-tools" },
      button("Zoom in on the timeline", "+ Zoom in", () => this.zoomBy(ZOOM_STEP)),
      button("Zoom out of the timeline", "− Zoom out", () => this.zoomBy(1 / ZOOM_STEP)),
      button("Reset zoom", "Reset", () => this.zoomBy(0)),
      this.zoomText,
      legend,
    );
    this.scroller = element("div", {
      className: "timeline-scroll",
      tabindex: "0",
      role: "group",
      "aria-label": "Timeline chart: + and - zoom, 0 resets, arrow keys scroll or move between steps",
    });
    this.chart = svg("svg", { class: "timeline-chart", role: "img", "aria-label": "Gantt chart of the steps' attempts" });
    this.defs = svg(
      "defs",
      {},
      svg(
        "pattern",
        { id: "timeline-hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" },
        svg("line", { x1: 0, y1: 0, x2: 0, y2: 6, class: "hatch" }),
      ),
    );
    this.gapLayer = svg("g", { class: "timeline-gaps" });
    this.rowLayer = svg("g", { class: "timeline-rows" });
    this.axisLayer = svg("g", { class: "timeline-axis" });
    this.labelLayer = svg("g", { class: "timeline-labels" });
    this.chart.append(this.defs, this.gapLayer, this.rowLayer, this.axisLayer, this.labelLayer);
    this.scroller.append(this.chart);
    this.status = element("p", { className: "empty" }, "Reading the timeline…");
    this.container.replaceChildren(tools, this.status, this.scroller);
    this.scroller.addEventListener("scroll", () => this.queueDraw());
    this.scroller.addEventListener("keydown", (event) => this.key(event));
    this.scroller.addEventListener("wheel", (event) => this.wheel(event), { passive: false });
    // A hidden tab has no size: draw again when it shows (and when the window is resized).
    new ResizeObserver(() => this.shown()).observe(this.scroller);
  }

  /** The panel was resized or showed: draw, and read again if events came while it was hidden. */
  shown() {
    if (this.stale && !this.container.hidden) {
      this.stale = false;
      this.refresh();
    }
    this.queueDraw();
  }

  /** Read the timeline now, or once more after the read under way, at most every 500 ms. */
  refresh() {
    // A hidden panel reads nothing: it reads once when it shows.
    if (this.container.hidden && this.data) {
      this.stale = true;
      return;
    }
    if (this.reading) {
      this.again = true;
      return;
    }
    // At most every 500 ms, and never more than half the time: a 10,000-step run's read is slow.
    const wait = this.fetchedAt + Math.max(REFRESH, 2 * this.readTime) - performance.now();
    if (wait > 0) {
      if (!this.timer) this.timer = setTimeout(() => ((this.timer = null), this.refresh()), wait);
      return;
    }
    const asked = performance.now();
    this.reading = getJSON(this.page.path(`/timeline${query({ limit: 10000 })}`))
      .then((data) => {
        this.readTime = performance.now() - asked;
        this.data = data;
        // Events that came while the read was under way, and are newer than what it read.
        this.liveRows.reset(data);
        this.liveRows.fold(this.unread);
        this.unread = [];
        this.parents = new Set(data.rows.map((row) => row.parent).filter(Boolean));
        this.running = data.rows.some((row) => row.segments.some((segment) => segment.kind === "running"));
        this.fetchedAt = this.lastAt = performance.now();
        this.status.hidden = data.rows.length > 0;
        this.status.textContent = "No step has started yet.";
        this.queueDraw();
      })
      .catch((error) => showError(this.status, error, "The timeline could not be read"))
      .finally(() => {
        this.status.hidden = this.status.hidden && !this.status.querySelector(".error-message");
        this.reading = null;
        if (this.again) {
          this.again = false;
          this.refresh();
        }
      });
  }

  /** A batch of live events: fold them into the rows, and read the timeline only when needed. */
  follow(events) {
    if (this.reading || !this.data) this.unread.push(...events);
    if (!this.data) {
      if (!this.reading) this.refresh(); // the first read failed: try again
      return;
    }
    const needsRead = this.liveRows.fold(events);
    this.lastAt = performance.now(); // `data.last` is the newest event's time now
    this.running = this.liveRows.running;
    this.status.hidden = this.data.rows.length > 0;
    if (needsRead || performance.now() - this.fetchedAt > Math.max(SETTLE, 10 * this.readTime)) this.refresh();
    else this.drawSoon();
  }

  /** Draw within 250 ms: events come every frame, but redrawing the rows in view each frame is waste. */
  drawSoon() {
    if (this.drawTimer) return;
    this.drawTimer = setTimeout(() => {
      this.drawTimer = null;
      this.queueDraw();
    }, LIVE_DRAW);
  }

  live() {
    return Boolean(this.data && this.running && !TERMINAL.has(this.page.status));
  }

  /** The end of the axis: the last event, or now while bars are running. */
  end() {
    const last = this.data.last;
    return this.live() ? last + (performance.now() - this.lastAt) / 1000 : last;
  }

  scale() {
    const width = Math.max(200, this.scroller.clientWidth - LABELS - 24);
    return (width / Math.max(this.end() - this.data.first, 0.01)) * this.zoom;
  }

  shownRows() {
    return this.data.rows.filter((row) => !row.parent || this.expanded.has(row.parent));
  }

  zoomBy(factor, pointerX) {
    if (!this.data) return;
    const before = this.scale();
    const anchor = pointerX ?? (this.scroller.clientWidth - LABELS) / 2 + LABELS;
    const at = (this.scroller.scrollLeft + anchor - LABELS) / before;
    this.zoom = factor === 0 ? 1 : Math.min(ZOOM_MAX, Math.max(1, this.zoom * factor));
    this.zoomText.textContent = `Zoom ${Math.round(this.zoom * 100)}%`;
    this.container.dataset.zoom = String(this.zoom);
    this.draw();
    this.scroller.scrollLeft = Math.max(0, at * this.scale() + LABELS - anchor);
  }

  key(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const factor = { "+": ZOOM_STEP, "=": ZOOM_STEP, "-": 1 / ZOOM_STEP, 0: 0 }[event.key];
    if (factor === undefined) return;
    event.preventDefault();
    this.zoomBy(factor);
  }

  wheel(event) {
    if (!event.ctrlKey) return;
    event.preventDefault();
    const box = this.scroller.getBoundingClientRect();
    this.zoomBy(event.deltaY < 0 ? ZOOM_STEP : 1 / ZOOM_STEP, event.clientX - box.left);
  }

  queueDraw() {
    if (this.drawQueued) return;
    this.drawQueued = true;
    requestAnimationFrame(() => {
      this.drawQueued = false;
      if (this.container.hidden) return; // drawn again by the ResizeObserver when it shows
      if (this.data) this.draw();
      if (this.live()) this.drawSoon();
    });
  }

  draw() {
    const rows = this.shownRows();
    const scale = this.scale();
    const first = this.data.first;
    const end = this.end();
    const x = (at) => LABELS + (at - first) * scale;
    const width = LABELS + (end - first) * scale + 24;
    const height = AXIS + rows.length * ROW + 4;
    this.chart.setAttribute("width", width);
    this.chart.setAttribute("height", height);
    const top = this.scroller.scrollTop;
    const left = this.scroller.scrollLeft;
    const from = Math.max(0, Math.floor((top - AXIS) / ROW) - 2);
    const to = Math.min(rows.length, from + Math.ceil(this.scroller.clientHeight / ROW) + 5);
    this.gapLayer.replaceChildren(
      ...this.data.gaps.map(([start, stop]) =>
        svg("rect", { class: "gap", x: x(start), y: AXIS, width: Math.max(2, (stop - start) * scale), height: rows.length * ROW }, title(`resume gap: ${duration(stop - start)}, resumed at ${duration(stop)}`)),
      ),
    );
    const drawn = [];
    const labels = [svg("rect", { class: "label-ground", x: 0, y: AXIS, width: LABELS - 4, height: rows.length * ROW })];
    for (let index = from; index < to; index += 1) {
      const row = rows[index];
      const y = AXIS + index * ROW;
      drawn.push(this.drawRow(row, y, x, end));
      labels.push(this.drawLabel(row, y));
    }
    // Redraws replace the labels: the one with the keyboard focus gets it back.
    const focused = this.labelLayer.contains(document.activeElement) ? document.activeElement.dataset.stepId : null;
    this.rowLayer.replaceChildren(...drawn);
    this.labelLayer.setAttribute("transform", `translate(${left},0)`);
    this.labelLayer.replaceChildren(...labels);
    if (focused !== null) this.labelLayer.querySelector(`[data-step-id="${CSS.escape(focused)}"]`)?.focus({ preventScroll: true });
    this.drawAxis(first, end, scale, width, top, left);
    if (!this.drawn) {
      this.drawn = true;
      performance.mark("orchestr8:timeline-ready");
    }
  }

  drawRow(row, y, x, end) {
    const group = svg("g", { class: "row", "data-step-id": row.step_id, "data-status": row.status });
    group.append(svg("line", { class: "row-rule", x1: LABELS, x2: x(end), y1: y + ROW, y2: y + ROW }));
    const reach = { attempt: -1, failed: -1, wait: -1, running: -1, interrupted: -1, rejected: -1 };
    const ordered = [...row.segments].sort((a, b) => (a.kind === "wait") - (b.kind === "wait") || a.start - b.start);
    for (const segment of ordered) {
      const stop = segment.kind === "running" && this.live() ? end : segment.end;
      const left = x(segment.start);
      const right = Math.max(left + 2, x(stop));
      if (right <= reach[segment.kind] + 0.5) continue; // hidden under a bar of its kind already drawn
      reach[segment.kind] = right;
      const shape = this.drawSegment(segment, left, right, y);
      shape.append(title(describeSegment(row, { ...segment, end: stop })));
      group.append(shape);
    }
    return group;
  }

  drawSegment(segment, left, right, y) {
    const attributes = { class: `seg seg-${segment.kind}`, "data-kind": segment.kind, "data-attempt": segment.attempt ?? "" };
    if (segment.kind === "wait") {
      return svg("g", attributes, svg("line", { x1: left, x2: right, y1: y + ROW / 2, y2: y + ROW / 2 }), svg("rect", { class: "hit", x: left, y: y + 6, width: right - left, height: ROW - 12 }));
    }
    if (segment.kind === "rejected") {
      const middle = y + ROW / 2;
      return svg("g", attributes, svg("path", { d: `M${left} ${middle - 7} L${left + 7} ${middle} L${left} ${middle + 7} L${left - 7} ${middle} Z` }));
    }
    const bar = svg("rect", { x: left, y: y + 5, width: right - left, height: ROW - 10, rx: 2 });
    const shape = svg("g", attributes, bar);
    if (segment.kind === "failed") {
      shape.append(svg("rect", { class: "hatching", x: left, y: y + 5, width: right - left, height: ROW - 10 }));
      if (right - left < 10) {
        // Too narrow for the hatching to show: a cross says "failed" instead.
        const cross = svg("text", { class: "seg-cross", x: (left + right) / 2, y: y + ROW / 2 + 4, "text-anchor": "middle" });
        cross.textContent = "✗";
        shape.append(cross);
      }
    }
    return shape;
  }

  drawLabel(row, y) {
    const grouped = Boolean(row.group && this.parents.has(row.step_id));
    const open = this.expanded.has(row.step_id);
    const indent = row.parent ? 16 : 0;
    const counts = row.items ? `, ${row.items.count ?? "?"} items` : "";
    const words = `${row.step_id}: ${row.status}, ${row.attempts} attempt${row.attempts === 1 ? "" : "s"}${counts}`;
    const label = svg("g", {
      class: "row-label",
      "data-step-id": row.step_id,
      "data-status": row.status,
      tabindex: 0,
      role: grouped ? "button" : "img",
      "aria-label": grouped ? `${words}; ${open ? "collapse" : "expand"} its ${row.group === "map" ? "items" : "iterations"}` : words,
      "aria-expanded": grouped ? String(open) : undefined,
    });
    const text = svg("text", { x: 8 + indent, y: y + ROW / 2 + 4 });
    text.textContent = `${grouped ? (open ? "▾ " : "▸ ") : ""}${row.step_id}`;
    const mark = svg("text", { class: "row-status", x: LABELS - 10, y: y + ROW / 2 + 4, "text-anchor": "end" });
    mark.textContent = row.status;
    label.append(title(words), text, mark);
    label.addEventListener("click", () => (grouped ? this.toggle(row.step_id) : this.page.select(row.step_id)));
    label.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        this.focusRow(row.step_id, event.key === "ArrowDown" ? 1 : -1);
        return;
      }
      if (event.key !== "Enter" && event.key !== " ") return;
      event.preventDefault();
      if (grouped) this.toggle(row.step_id);
      else this.page.select(row.step_id);
    });
    return label;
  }

  /** Move the keyboard focus `by` rows from `stepId`'s, scrolling it into view (rows are virtual). */
  focusRow(stepId, by) {
    const rows = this.shownRows();
    const index = rows.findIndex((row) => row.step_id === stepId) + by;
    if (index < 0 || index >= rows.length) return;
    const top = AXIS + index * ROW;
    const view = this.scroller;
    if (top - AXIS < view.scrollTop) view.scrollTop = top - AXIS;
    else if (top + ROW > view.scrollTop + view.clientHeight) view.scrollTop = top + ROW - view.clientHeight;
    this.draw();
    this.labelLayer.querySelector(`[data-step-id="${CSS.escape(rows[index].step_id)}"]`)?.focus({ preventScroll: true });
  }

  toggle(stepId) {
    if (this.expanded.has(stepId)) this.expanded.delete(stepId);
    else this.expanded.add(stepId);
    this.draw();
  }

  drawAxis(first, end, scale, width, top, left) {
    const step = niceStep(90 / scale);
    const parts = [svg("rect", { class: "axis-ground", x: 0, y: 0, width, height: AXIS })];
    // `left` was read before the rows changed: reading scrollLeft now would force a layout.
    const hidden = left + LABELS;
    for (let value = Math.ceil(first / step) * step; value <= end + 1e-9; value += step) {
      const x = LABELS + (value - first) * scale;
      if (x < hidden) continue; // under the step names
      const label = svg("text", { class: "tick", x: x + 3, y: 16 });
      label.textContent = tickLabel(value, step);
      parts.push(svg("line", { x1: x, x2: x, y1: 20, y2: AXIS }), label);
    }
    this.axisLayer.setAttribute("transform", `translate(0,${top})`);
    this.axisLayer.replaceChildren(...parts);
  }
}

/** Mount the timeline panel: read it now, fold live events in, read again when they need it. */
export function mount(page, container) {
  const timeline = new Timeline(page, container);
  timeline.refresh(); // at once: a big run's summary must not hold the chart back
  page.addEventListener("document", () => timeline.refresh());
  page.addEventListener("events", ({ detail }) => timeline.follow(detail.events));
  page.addEventListener("ended", () => timeline.refresh());
}
