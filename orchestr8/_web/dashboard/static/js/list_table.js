// The executions table of the list page: rows built once, then only the cells that change.
// Live polling hands every page it reads to `ExecutionTable.show`; rows already on screen are
// kept (so focus and ticked boxes survive), new ones are added at the top, and a status, finish
// time or duration is written only when it differs from what the row shows.

import { duration, element, shortId, statusBadge, timestamp } from "./format.js";

const COLUMNS = ["Compare", "Execution", "Workflow", "Status", "Created", "Duration", "Origin"];

/** Seconds an execution ran: started to finished, or to `now` while it has not finished. */
export function runSeconds(item, now = Date.now()) {
  if (!item.started_at) return null;
  const start = Date.parse(item.started_at);
  const end = item.finished_at ? Date.parse(item.finished_at) : now;
  return Number.isNaN(start) || Number.isNaN(end) ? null : Math.max(0, (end - start) / 1000);
}

/** An id as the list shows it: 8 characters, and a child's path after the dot (`1140ec2c.sub`). */
export function listedId(id) {
  const dot = id.indexOf(".");
  return dot < 0 ? shortId(id) : shortId(id) + id.slice(dot);
}

function executionLink(id) {
  return element("a", { href: `/ui/executions/${encodeURIComponent(id)}`, className: "mono", title: id }, listedId(id));
}

function lineage(item) {
  if (item.parent_id) return ["child of ", executionLink(item.parent_id)];
  if (item.forked_from) return ["fork of ", executionLink(item.forked_from)];
  return [];
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** The table of executions, with a tick box per row for picking two to compare. */
export class ExecutionTable {
  constructor(container, onSelection) {
    this.container = container;
    this.onSelection = onSelection;
    this.rows = new Map(); // execution id -> <tr>
    this.selected = []; // ids, in the order they were ticked
    this.body = element("tbody");
    const head = element(
      "thead",
      {},
      element("tr", {}, ...COLUMNS.map((name, index) => element("th", { scope: "col", className: index === 0 ? "select" : null }, name))),
    );
    this.table = element("table", { "aria-label": "Executions, newest first" }, head, this.body);
    this.empty = element("p", { className: "empty" });
  }

  /** Replace every row with `items` (a new filter or another page). */
  replace(items, emptyText) {
    this.rows.clear();
    this.body.replaceChildren();
    this.show(items, { emptyText, addNew: true, fresh: true });
  }

  /** Show `items` in order: keep known rows, update what changed; the number of rows added.
   *
   * With `addNew`, rows missing from `items` are removed and unknown ones are added (the first
   * page); without it only the rows already shown are updated (a later page). */
  show(items, { emptyText = "", addNew = true, fresh = false } = {}) {
    let added = 0;
    const now = Date.now();
    for (const row of this.body.querySelectorAll("tr.new-row")) row.classList.remove("new-row");
    if (addNew) {
      const newest = this.body.firstElementChild ? this.body.firstElementChild.dataset.created : "";
      const wanted = new Set(items.map((item) => item.execution_id));
      for (const [id, row] of this.rows) {
        if (!wanted.has(id)) {
          row.remove();
          this.rows.delete(id);
        }
      }
      let previous = null;
      for (const item of items) {
        let row = this.rows.get(item.execution_id);
        if (row === undefined) {
          row = this.buildRow(item);
          this.rows.set(item.execution_id, row);
          if (!fresh && item.created_at > newest) {
            row.classList.add("new-row");
            added += 1;
          }
        }
        const expected = previous === null ? this.body.firstElementChild : previous.nextElementSibling;
        if (expected !== row) {
          if (previous === null) this.body.prepend(row);
          else previous.after(row);
        }
        this.updateRow(row, item, now);
        previous = row;
      }
    } else {
      for (const item of items) {
        const row = this.rows.get(item.execution_id);
        if (row !== undefined) this.updateRow(row, item, now);
      }
    }
    this.syncBoxes();
    this.mount(emptyText);
    return added;
  }

  mount(emptyText) {
    if (this.rows.size > 0) {
      if (this.table.parentNode !== this.container) this.container.replaceChildren(this.table);
    } else {
      setText(this.empty, emptyText);
      if (this.empty.parentNode !== this.container) this.container.replaceChildren(this.empty);
    }
  }

  buildRow(item) {
    const id = item.execution_id;
    const box = element("input", {
      type: "checkbox",
      "aria-label": `Select ${listedId(id)} (${item.workflow}) for comparison`,
    });
    box.checked = this.selected.includes(id);
    box.addEventListener("change", () => this.toggle(id, box.checked));
    const row = element(
      "tr",
      { dataset: { executionId: id, created: item.created_at }, "aria-selected": box.checked ? "true" : "false" },
      element("td", { className: "select" }, box),
      element("td", {}, executionLink(id)),
      element("td", { className: "workflow" }, item.workflow),
      element("td", { className: "status-cell" }, statusBadge(item.status)),
      element("td", { className: "created" }, element("time", { datetime: item.created_at, title: item.created_at }, timestamp(item.created_at))),
      element("td", { className: "duration" }),
      element("td", { className: "lineage" }, ...lineage(item)),
    );
    return row;
  }

  updateRow(row, item, now) {
    const badge = row.querySelector(".status-cell .status");
    if (badge.dataset.status !== item.status) {
      badge.dataset.status = item.status;
      badge.textContent = item.status;
    }
    setText(row.querySelector(".duration"), duration(runSeconds(item, now)));
  }

  toggle(id, checked) {
    this.selected = this.selected.filter((one) => one !== id);
    if (checked) this.selected.push(id);
    const row = this.rows.get(id);
    if (row) row.setAttribute("aria-selected", checked ? "true" : "false");
    this.syncBoxes();
    this.onSelection(this.selected);
  }

  /** Disable the unticked boxes once two are ticked, so a pair is all one can pick. */
  syncBoxes() {
    const full = this.selected.length >= 2;
    for (const [id, row] of this.rows) {
      const box = row.querySelector("input[type=checkbox]");
      box.checked = this.selected.includes(id);
      box.disabled = full && !box.checked;
    }
  }
}
