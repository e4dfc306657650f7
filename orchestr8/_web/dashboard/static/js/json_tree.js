// A small JSON viewer: objects and arrays as nested <details> (keyboard-usable as they are:
// Tab to a summary, Enter or Space opens it), scalars as text. Built with DOM nodes, never markup
// from data. The step panel's json_view.js may replace it once both slices are merged.

import { element } from "./format.js";

function scalar(value) {
  const kind = value === null ? "null" : typeof value;
  const text = kind === "string" ? JSON.stringify(value) : String(value);
  return element("span", { className: `json-${kind}` }, text);
}

function preview(value) {
  if (Array.isArray(value)) return `[${value.length} item${value.length === 1 ? "" : "s"}]`;
  const keys = Object.keys(value);
  return `{${keys.slice(0, 4).join(", ")}${keys.length > 4 ? ", …" : ""}}`;
}

/** A tree of `value`; `open` levels start expanded, `mark(path)` tags entries (e.g. changed). */
export function jsonTree(value, { open = 1, mark = () => null, path = [] } = {}) {
  if (value === null || typeof value !== "object") return scalar(value);
  const entries = Array.isArray(value) ? value.map((item, index) => [index, item]) : Object.entries(value);
  if (!entries.length) return scalar(Array.isArray(value) ? "[]" : "{}");
  const list = element("ul", { className: "json-tree" });
  for (const [key, item] of entries) {
    const here = [...path, key];
    const note = mark(here);
    const name = element("span", { className: "json-key" }, String(key));
    const tag = note ? element("span", { className: "json-mark" }, note) : null;
    const entry = element("li", { dataset: note ? { marked: "true" } : {} });
    if (item !== null && typeof item === "object" && Object.keys(item).length) {
      const details = element("details", { open: open > 1 || note ? true : undefined });
      details.append(element("summary", {}, name, tag ? [" ", tag] : [], " ", element("span", { className: "json-preview" }, preview(item))));
      details.append(jsonTree(item, { open: open - 1, mark, path: here }));
      entry.append(details);
    } else {
      entry.append(name, ": ", jsonTree(item), tag ? [" ", tag] : []);
    }
    list.append(entry);
  }
  return list;
}
