// How one node and one edge of the graph look in SVG: a rounded box with the step id, its agent
// or its group's counts, and a status badge (icon + word, coloured from the stylesheet's status
// variables), kept apart from the graph's logic so a live update touches only what changed.

import { duration } from "./format.js";
import { NODE_HEIGHT, NODE_WIDTH } from "./graph_layout.js";

const SVG = "http://www.w3.org/2000/svg";
const ICONS = {
  pending: "\u25CB",
  running: "\u25B6",
  retrying: "\u21BB",
  succeeded: "\u2713",
  failed: "\u2717",
  skipped: "\u21B7",
  cancelled: "\u25A0",
  waiting: "\u2016",
  interrupted: "\u26A0",
};
const SHOWN_COUNTS = ["failed", "interrupted", "running", "retrying", "waiting", "cancelled", "skipped", "not_started"];

/** An SVG element with attributes, and text content when given. */
export function svg(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

/** `text` cut to `limit` characters with an ellipsis. */
function fit(text, limit) {
  return text.length > limit ? `${text.slice(0, limit - 1)}\u2026` : text;
}

// A step in one of these statuses will not run more members than it has now.
const ENDED = new Set(["succeeded", "failed", "skipped", "cancelled", "interrupted"]);

/** How many members a group has so far: a map's items (once known), a loop's iterations run. */
function memberCount(group) {
  const counted = Object.values(group.counts || {}).reduce((sum, count) => sum + count, 0);
  return group.kind === "map" && Number.isInteger(group.total) ? group.total : counted;
}

/** A group's counts as people read them: `37/100 succeeded · 2 failed`; `status` is its node's. */
export function describeGroup(group, status = "") {
  if (group.kind === "workflow" || group.kind === "plan") {
    return group.child_execution_id ? `child run ${group.child_execution_id.slice(0, 8)}` : "child run not started";
  }
  const counts = group.counts || {};
  const unknown = group.total === null || group.total === undefined;
  if (group.kind === "map" && unknown && !memberCount(group) && ENDED.has(status)) return `${status} before items known`;
  const total = unknown ? "?" : group.total;
  const unit = group.kind === "loop" ? "iterations" : "";
  const parts = [`${counts.succeeded || 0}/${total} ${unit ? `${unit} ` : ""}succeeded`];
  for (const status of SHOWN_COUNTS) if (counts[status]) parts.push(`${counts[status]} ${status.replace("_", " ")}`);
  return parts.join(" \u00B7 ");
}

/** A count with its noun, singular or plural: `1 item`, `6 items`. */
function counted(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/** What a screen reader says of a node: `step fetch, succeeded, 2 attempts` (a map: `6 items`). */
export function describeNode(node) {
  const parts = [`step ${node.id}`, node.status];
  const unit = { map: "item", loop: "iteration" }[node.group?.kind];
  if (unit) parts.push(counted(memberCount(node.group), unit));
  else if (node.attempts) parts.push(counted(node.attempts, "attempt"));
  if (node.gate) parts.push(`gate ${node.gate}`);
  if (node.group) parts.push(`${node.group.kind}: ${describeGroup(node.group, node.status)}`);
  return parts.join(", ");
}

/** The second line of a node: its group's counts, its gate's answer, else its agent or kind. */
function subtitle(node) {
  if (node.group) return describeGroup(node.group, node.status);
  if (node.kind === "approval" && node.gate) return `approval \u00B7 gate ${node.gate}`;
  return node.agent ? `${node.kind === "agent" ? "" : `${node.kind} \u00B7 `}${node.agent}` : node.kind;
}

/** The right end of the status line: attempts when retried, else how long it ran. */
function detail(node) {
  if (node.attempts > 1 && !node.group) return `${node.attempts} attempts`;
  return node.duration === null || node.duration === undefined ? "" : duration(node.duration);
}

/** The SVG group of one node at `position`; `update` refreshes it when the node changes. */
export function drawNode(node, position) {
  const group = svg("g", {
    class: "graph-node",
    transform: `translate(${position.x},${position.y})`,
    role: "button",
    tabindex: -1,
    "data-step-id": node.id,
    "data-kind": node.kind,
  });
  if (node.group) {
    group.dataset.group = node.group.kind;
    group.setAttribute("aria-expanded", "false");
  }
  group.append(
    svg("title"),
    svg("rect", { class: "node-box", width: NODE_WIDTH, height: NODE_HEIGHT, rx: 8 }),
    svg("rect", { class: "node-stripe", width: 5, height: NODE_HEIGHT - 12, x: 4, y: 6, rx: 2 }),
    svg("text", { class: "node-id", x: 16, y: 19 }, fit(node.id, 20)),
    svg("text", { class: "node-kind", x: NODE_WIDTH - 8, y: 19, "text-anchor": "end" }, node.group ? `${node.kind} \u25B8` : ""),
    svg("text", { class: "node-subtitle", x: 16, y: 37 }),
    svg("text", { class: "status-icon", x: 16, y: 55, "aria-hidden": "true" }),
    svg("text", { class: "status", x: 30, y: 55 }),
    svg("text", { class: "node-detail", x: NODE_WIDTH - 8, y: 55, "text-anchor": "end" }),
  );
  updateNode(group, node);
  return group;
}

/** Bring a drawn node up to date with `node` (status, counts, attempts, labels). */
export function updateNode(group, node) {
  group.dataset.status = node.status;
  if (node.gate) group.dataset.gate = node.gate;
  const label = describeNode(node);
  group.setAttribute("aria-label", label);
  group.querySelector("title").textContent = label;
  group.querySelector(".node-subtitle").textContent = fit(subtitle(node), 30);
  group.querySelector(".status-icon").textContent = ICONS[node.status] || "\u25CB";
  const status = group.querySelector(".status");
  status.dataset.status = node.status;
  status.textContent = node.status;
  group.querySelector(".node-detail").textContent = detail(node);
}

/** The path of an edge: dagre's routed points, else a curve from box to box. */
export function drawEdge(edge, positions) {
  let d;
  if (edge.points && edge.points.length) {
    const [first, ...rest] = edge.points;
    d = `M${first.x},${first.y}` + rest.map((point) => `L${point.x},${point.y}`).join("");
  } else {
    const from = positions.get(edge.from);
    const to = positions.get(edge.to);
    const x1 = from.x + NODE_WIDTH;
    const y1 = from.y + NODE_HEIGHT / 2;
    const x2 = to.x - 2;
    const y2 = to.y + NODE_HEIGHT / 2;
    const bend = Math.max(24, (x2 - x1) / 2);
    d = `M${x1},${y1}C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`;
  }
  return svg("path", { class: "graph-edge", d, "marker-end": "url(#graph-arrow)", "data-from": edge.from, "data-to": edge.to });
}

/** The arrowhead every edge ends with. */
export function arrowDefinitions() {
  const marker = svg("marker", {
    id: "graph-arrow",
    viewBox: "0 0 10 10",
    refX: 9,
    refY: 5,
    markerWidth: 7,
    markerHeight: 7,
    orient: "auto-start-reverse",
  });
  marker.append(svg("path", { d: "M0,0L10,5L0,10z", class: "graph-arrowhead" }));
  const defs = svg("defs");
  defs.append(marker);
  return defs;
}
