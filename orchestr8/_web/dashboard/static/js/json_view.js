// A JSON value as a collapsible tree, with a copy button: how the step panel shows inputs and
// outputs. Objects and arrays are native <details> elements, so Tab reaches each one and Enter or
// Space opens and closes it, with no script of ours in the way; leaves are text, never markup.
// The state view marks what an event changed (`mark(path)` returns a note such as "changed");
// marked containers start open, so the change is in sight.

import { element } from "./format.js";

const OPEN_DEPTH = 1; // levels shown open at first by default; deeper ones start collapsed
const OPEN_SIZE = 20; // containers with more entries start collapsed whatever their depth

function scalar(value) {
  const kind = value === null ? "null" : typeof value;
  const text = kind === "string" ? JSON.stringify(value) : String(value);
  return element("span", { className: `json-${kind}` }, text);
}

function summaryText(value) {
  if (Array.isArray(value)) return `[ ${value.length} item${value.length === 1 ? "" : "s"} ]`;
  const count = Object.keys(value).length;
  return `{ ${count} key${count === 1 ? "" : "s"} }`;
}

function node(value, label, depth, path, options) {
  const key = label === null ? null : element("span", { className: "json-key" }, `${label}: `);
  const note = path.length ? options.mark(path) : null;
  const tag = note ? element("span", { className: "json-mark" }, note) : null;
  const marked = note ? { marked: "true" } : {};
  if (value === null || typeof value !== "object") {
    return element("div", { className: "json-leaf", dataset: marked }, key, scalar(value), tag ? [" ", tag] : []);
  }
  const entries = Array.isArray(value) ? value.map((item, index) => [index, item]) : Object.entries(value);
  if (!entries.length) return element("div", { className: "json-leaf", dataset: marked }, key, Array.isArray(value) ? "[]" : "{}", tag ? [" ", tag] : []);
  const details = element(
    "details",
    { className: "json-node", dataset: marked, open: Boolean(note) || (depth < options.openDepth && entries.length <= OPEN_SIZE) },
    element("summary", {}, key, tag ? [tag, " "] : [], element("span", { className: "json-count" }, summaryText(value))),
  );
  const children = element("div", { className: "json-children" });
  // Children are built on first opening: a large output costs nothing until someone looks.
  const fill = () => {
    if (children.childElementCount || !details.open) return;
    for (const [childLabel, child] of entries) children.append(node(child, childLabel, depth + 1, [...path, childLabel], options));
  };
  details.addEventListener("toggle", fill);
  details.append(children);
  fill();
  return details;
}

async function copy(value, status) {
  try {
    await navigator.clipboard.writeText(JSON.stringify(value, null, 2));
    status.textContent = "Copied";
  } catch (error) {
    status.textContent = `Copy failed: ${error.message || error}`;
  }
}

/** A labelled, collapsible view of `value` with a "Copy JSON" button; `mark(path)` may tag entries. */
export function jsonView(value, label, { openDepth = OPEN_DEPTH, mark = () => null } = {}) {
  const status = element("span", { className: "json-copy-status", role: "status" });
  const button = element(
    "button",
    { type: "button", className: "json-copy", "aria-label": `Copy ${label} as JSON`, onclick: () => copy(value, status) },
    "Copy JSON",
  );
  return element(
    "div",
    { className: "json-view", role: "group", "aria-label": label },
    element("div", { className: "json-toolbar" }, button, status),
    element("div", { className: "json-tree mono" }, node(value === undefined ? null : value, null, 0, [], { openDepth, mark })),
  );
}
