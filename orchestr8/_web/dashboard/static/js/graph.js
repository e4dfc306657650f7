// The execution's DAG, left to right, coloured and labelled by status and updated live. Reads the
// graph document (`GET /executions/{id}/graph`, the page's summary), lays it out (graph_layout),
// draws only the nodes and edges inside the visible part of the scrollable panel (so 10,000 steps
// cost what a screenful does), and on each batch of live events (graph_live) redraws only the
// nodes whose status or attempts changed. Groups (map items, loop iterations, child executions) are one node
// with counts that expands into a member list (graph_members). Keyboard: Tab reaches the current
// node, arrow keys move along edges and within a column, Enter/Space selects (and expands a group).

import { element } from "./format.js";
import { arrowDefinitions, drawEdge, drawNode, svg, updateNode } from "./graph_draw.js";
import { NODE_HEIGHT, NODE_WIDTH, layout } from "./graph_layout.js";
import { LiveGraph, ownerOf } from "./graph_live.js";
import { MemberList } from "./graph_members.js";

const OVERSCAN = 240;
const MIN_ZOOM = 0.1;
const MAX_ZOOM = 2;

/** Draw the execution's graph in `container` and keep it live. */
export function mount(page, container) {
  return new GraphView(page, container);
}

class GraphView {
  constructor(page, container) {
    this.page = page;
    this.nodes = new Map();
    this.drawn = new Map();
    this.edgesDrawn = new Map();
    this.scale = 1;
    this.current = null;
    this.selected = null;
    this.frame = 0;
    this.ready = false;
    this.zoomText = element("span", { className: "graph-zoom", "aria-live": "polite" }, "100%");
    this.info = element("span", { className: "graph-info" });
    const button = (label, text, onclick) => element("button", { type: "button", "aria-label": label, title: label, onclick }, text);
    const toolbar = element(
      "div",
      { className: "graph-toolbar", role: "toolbar", "aria-label": "Graph view" },
      button("Zoom out of the graph", "\u2212", () => this.zoom(this.scale / 1.25)),
      this.zoomText,
      button("Zoom in on the graph", "+", () => this.zoom(this.scale * 1.25)),
      button("Fit the whole graph", "Fit", () => this.fit()),
      button("Actual size", "1:1", () => this.zoom(1)),
      this.info,
    );
    this.svg = svg("svg", { class: "graph-svg", role: "group" });
    this.edgeLayer = svg("g", { class: "graph-edges" });
    this.nodeLayer = svg("g", { class: "graph-nodes" });
    this.svg.append(arrowDefinitions(), this.edgeLayer, this.nodeLayer);
    this.scroller = element("div", { className: "graph-scroll", tabindex: 0, "aria-label": "Workflow graph" });
    this.scroller.append(this.svg);
    const members = element("section", { className: "graph-members" });
    this.members = new MemberList(page, members, (stepId) => this.drawn.get(stepId)?.setAttribute("aria-expanded", "false"));
    container.replaceChildren(toolbar, this.scroller, members);
    this.scroller.addEventListener("scroll", () => this.schedule(), { passive: true });
    this.scroller.addEventListener("wheel", (event) => this.wheel(event), { passive: false });
    this.scroller.addEventListener("keydown", (event) => this.key(event));
    this.svg.addEventListener("click", (event) => {
      const target = event.target.closest(".graph-node");
      if (target) this.activate(target.dataset.stepId);
    });
    new ResizeObserver(() => this.schedule()).observe(this.scroller);
    page.addEventListener("document", ({ detail }) => this.setDocument(detail));
    this.live = new LiveGraph(page, {
      redraw: (id) => this.redraw(id),
      memberStatus: (id, status) => this.members.setStatus(id, status),
    });
    page.addEventListener("events", ({ detail }) => this.live.apply(detail.events));
    page.addEventListener("select", ({ detail }) => this.highlight(detail.stepId));
    page.addEventListener("ended", ({ detail }) => this.live.settle(detail?.reason || ""));
  }

  /** A new graph document: lay it out and draw what is visible. */
  setDocument(doc) {
    if (!doc || !Array.isArray(doc.nodes)) return;
    this.nodes = new Map(doc.nodes.map((node) => [node.id, { ...node }]));
    this.live.reset(this.nodes, doc.last_seq || 0);
    this.layout = layout(doc.nodes);
    this.dependents = new Map();
    for (const edge of this.layout.edges) {
      if (!this.dependents.has(edge.from)) this.dependents.set(edge.from, []);
      this.dependents.get(edge.from).push(edge.to);
    }
    // Up/Down walk a rank top to bottom; a rank the layered layout wrapped into sub-columns is one
    // column here, so the keys carry on from the foot of one sub-column to the head of the next.
    this.columns = new Map();
    this.columnOf = new Map();
    for (const [id, position] of this.layout.positions) {
      const key = position.rank ?? Math.round(position.x);
      if (!this.columns.has(key)) this.columns.set(key, []);
      this.columns.get(key).push(id);
      this.columnOf.set(id, key);
    }
    const { positions } = this.layout;
    for (const column of this.columns.values()) column.sort((a, b) => positions.get(a).x - positions.get(b).x || positions.get(a).y - positions.get(b).y);
    this.current = doc.nodes.length ? doc.nodes[0].id : null;
    const count = doc.nodes.length;
    this.info.textContent = `${count} step${count === 1 ? "" : "s"} \u00B7 ${this.layout.kind === "dagre" ? "dagre" : "layered"} layout`;
    this.svg.setAttribute("aria-label", `Workflow graph: ${count} steps. Arrow keys move between steps, Enter selects.`);
    this.nodeLayer.replaceChildren();
    this.edgeLayer.replaceChildren();
    this.drawn.clear();
    this.edgesDrawn.clear();
    if (!count) this.info.textContent = "This workflow has no steps to draw.";
    this.zoom(this.scale);
    if (!this.ready) {
      this.ready = true;
      performance.mark("orchestr8:graph-ready");
    }
  }

  /** Redraw at the next animation frame (scrolls and resizes come many per frame). */
  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  /** Draw the nodes and edges inside the visible area (plus a margin), drop the others. */
  render() {
    if (!this.layout) return;
    const left = this.scroller.scrollLeft / this.scale - OVERSCAN;
    const top = this.scroller.scrollTop / this.scale - OVERSCAN;
    const right = left + this.scroller.clientWidth / this.scale + 2 * OVERSCAN;
    const bottom = top + this.scroller.clientHeight / this.scale + 2 * OVERSCAN;
    const inside = (x1, y1, x2, y2) => x2 >= left && x1 <= right && y2 >= top && y1 <= bottom;
    const focused = document.activeElement?.closest?.(".graph-node")?.dataset.stepId;
    for (const [id, position] of this.layout.positions) {
      const visible = inside(position.x, position.y, position.x + NODE_WIDTH, position.y + NODE_HEIGHT);
      const drawn = this.drawn.get(id);
      if (visible && !drawn) this.place(id, position);
      else if (!visible && drawn && id !== focused) {
        drawn.remove();
        this.drawn.delete(id);
      }
    }
    this.layout.edges.forEach((edge, index) => {
      const from = this.layout.positions.get(edge.from);
      const to = this.layout.positions.get(edge.to);
      const visible = inside(Math.min(from.x, to.x), Math.min(from.y, to.y), Math.max(from.x, to.x) + NODE_WIDTH, Math.max(from.y, to.y) + NODE_HEIGHT);
      const drawn = this.edgesDrawn.get(index);
      if (visible && !drawn) {
        const path = drawEdge(edge, this.layout.positions);
        this.edgesDrawn.set(index, path);
        this.edgeLayer.append(path);
      } else if (!visible && drawn) {
        drawn.remove();
        this.edgesDrawn.delete(index);
      }
    });
  }

  /** Draw node `id` at `position`, with its selection, focus stop and expansion marked. */
  place(id, position) {
    const node = this.nodes.get(id);
    const group = drawNode(node, position);
    if (id === this.current) group.setAttribute("tabindex", "0");
    if (id === this.selected) group.setAttribute("aria-current", "true");
    if (node.group && this.members.stepId === id) group.setAttribute("aria-expanded", "true");
    this.drawn.set(id, group);
    this.nodeLayer.append(group);
  }

  /** Zoom to `scale` (clamped), keeping the centre of the view where it was. */
  zoom(scale) {
    if (!this.layout) return;
    const next = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, scale));
    const centreX = (this.scroller.scrollLeft + this.scroller.clientWidth / 2) / this.scale;
    const centreY = (this.scroller.scrollTop + this.scroller.clientHeight / 2) / this.scale;
    this.scale = next;
    this.svg.setAttribute("viewBox", `0 0 ${this.layout.width} ${this.layout.height}`);
    this.svg.setAttribute("width", String(Math.ceil(this.layout.width * next)));
    this.svg.setAttribute("height", String(Math.ceil(this.layout.height * next)));
    this.scroller.scrollLeft = centreX * next - this.scroller.clientWidth / 2;
    this.scroller.scrollTop = centreY * next - this.scroller.clientHeight / 2;
    this.zoomText.textContent = `${Math.round(next * 100)}%`;
    this.render();
  }

  /** Zoom so the whole graph fits the panel (never above actual size). */
  fit() {
    if (!this.layout) return;
    const scale = Math.min(1, this.scroller.clientWidth / this.layout.width, this.scroller.clientHeight / this.layout.height);
    this.zoom(scale);
  }

  /** Ctrl+wheel zooms; a plain wheel scrolls as usual. */
  wheel(event) {
    if (!event.ctrlKey) return;
    event.preventDefault();
    this.zoom(event.deltaY < 0 ? this.scale * 1.1 : this.scale / 1.1);
  }

  /** Select node `id` for the step panel; a group also opens or closes its member list. */
  activate(id) {
    const node = this.nodes.get(id);
    if (!node) return;
    this.moveTo(id);
    this.page.select(id);
    if (!node.group) return;
    if (this.members.stepId === id) {
      this.members.close();
    } else {
      if (this.members.stepId) this.drawn.get(this.members.stepId)?.setAttribute("aria-expanded", "false");
      this.drawn.get(id)?.setAttribute("aria-expanded", "true");
      this.members.open(node);
    }
  }

  /** Keys on a node: arrows move, Enter/Space select; `+`/`-` zoom; Enter on the panel focuses. */
  key(event) {
    const target = event.target.closest?.(".graph-node");
    if (event.key === "+" || event.key === "=") return this.zoom(this.scale * 1.25);
    if (event.key === "-") return this.zoom(this.scale / 1.25);
    if (!target) {
      if (event.key === "Enter" && this.current) {
        event.preventDefault();
        this.moveTo(this.current);
      }
      return;
    }
    const id = target.dataset.stepId;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      this.activate(id);
      return;
    }
    const next = this.neighbour(id, event.key);
    if (next !== undefined) {
      event.preventDefault();
      if (next) this.moveTo(next);
    }
  }

  /** The node an arrow key leads to from `id` (null: none that way; undefined: not an arrow). */
  neighbour(id, key) {
    const here = this.layout.positions.get(id);
    const nearest = (ids) => ids.reduce((best, other) => {
      const distance = Math.abs(this.layout.positions.get(other).y - here.y);
      return best === null || distance < best.distance ? { id: other, distance } : best;
    }, null)?.id || null;
    if (key === "ArrowRight") return nearest(this.dependents.get(id) || []);
    if (key === "ArrowLeft") return nearest(this.nodes.get(id).depends_on.filter((dep) => this.nodes.has(dep)));
    if (key === "ArrowUp" || key === "ArrowDown") {
      const column = this.columns.get(this.columnOf.get(id));
      const index = column.indexOf(id) + (key === "ArrowUp" ? -1 : 1);
      return column[index] || null;
    }
    if (key === "Home") return this.layout.positions.keys().next().value || null;
    return undefined;
  }

  /** Make `id` the focus stop, scroll it into view, draw it and focus it. */
  moveTo(id) {
    const previous = this.drawn.get(this.current);
    if (previous) previous.setAttribute("tabindex", "-1");
    this.current = id;
    const position = this.layout.positions.get(id);
    const x = position.x * this.scale;
    const y = position.y * this.scale;
    const { scrollLeft, scrollTop, clientWidth, clientHeight } = this.scroller;
    if (x < scrollLeft || x + NODE_WIDTH * this.scale > scrollLeft + clientWidth) this.scroller.scrollLeft = x - clientWidth / 3;
    if (y < scrollTop || y + NODE_HEIGHT * this.scale > scrollTop + clientHeight) this.scroller.scrollTop = y - clientHeight / 3;
    this.render();
    const group = this.drawn.get(id);
    if (group) {
      group.setAttribute("tabindex", "0");
      group.focus({ preventScroll: true });
    }
  }

  /** Highlight the selected step (a member selects its group's node). */
  highlight(stepId) {
    const owner = stepId && !this.nodes.has(stepId) ? ownerOf(stepId) : stepId;
    this.drawn.get(this.selected)?.removeAttribute("aria-current");
    this.selected = owner && this.nodes.has(owner) ? owner : null;
    this.drawn.get(this.selected)?.setAttribute("aria-current", "true");
    this.members.select(stepId);
  }

  /** Bring node `id`'s drawing (if drawn) and its member list (if open) up to date. */
  redraw(id) {
    const node = this.nodes.get(id);
    const group = this.drawn.get(id);
    if (group) updateNode(group, node);
    if (node.group) this.members.setGroup(node);
  }
}
