// The time-travel view inside the journal panel: the execution's state right after one event
// (GET /executions/{id}/state?at=SEQ&since=SEQ-1) and what that event changed, the changed steps
// marked with a word as well as a colour. Shown on the page's "travel" event; "Back to now"
// travels to null, which hides it.

import { getJSON, query } from "./api.js";
import { showError } from "./banner.js";
import { duration, element, statusBadge, timestamp } from "./format.js";
import { jsonView } from "./json_view.js";

function changeWords(change) {
  return change.before === null ? "started" : `changed: ${change.changed.join(", ")}`;
}

/** A map's items at this event in words (`6 items: 4 succeeded, 2 running`), else "". */
export function itemWords(items) {
  if (!items) return "";
  const counts = Object.entries(items)
    .filter(([name, value]) => !["count", "attempts", "failed_items"].includes(name) && typeof value === "number" && value > 0)
    .map(([name, value]) => `${value} ${name}`);
  const count = items.count ?? "?";
  return `${count} item${count === 1 ? "" : "s"}${counts.length ? `: ${counts.join(", ")}` : ""}`;
}

// Above this many steps, the table lists only the steps the event changed, until asked for all.
const FEW_STEPS = 25;

function stepsTable(document, changes, showAll, onToggle) {
  const changed = new Map((changes?.units || []).map((change) => [change.unit, change]));
  // The changed units first, each map item or loop iteration followed by its step (its counts).
  const units = [];
  for (const unit of changed.keys()) {
    if (!units.includes(unit)) units.push(unit);
    const owner = unit.match(/^(.+)(\[\d+\]|#\d+)$/)?.[1];
    if (owner && document.steps[owner] && !units.includes(owner)) units.push(owner);
  }
  const first = units.length;
  for (const unit of Object.keys(document.steps)) if (!units.includes(unit)) units.push(unit);
  const total = units.length;
  const shortened = total > FEW_STEPS && !showAll;
  const shown = shortened ? units.slice(0, first) : units;
  const body = element("tbody");
  for (const unit of shown) {
    const step = document.steps[unit] || changed.get(unit).after;
    const change = changed.get(unit);
    const items = itemWords(step.items);
    body.append(
      element(
        "tr",
        { dataset: { unit, ...(change ? { changed: "true" } : {}) } },
        element("th", { scope: "row", className: "mono" }, unit),
        element("td", {}, statusBadge(step.status), items ? element("span", { className: "state-items" }, items) : ""),
        element("td", {}, String(step.items?.attempts ?? step.attempts ?? 0)),
        element("td", {}, step.duration === null || step.duration === undefined ? "" : duration(step.duration)),
        element("td", { className: "change" }, change ? element("strong", {}, `● ${changeWords(change)}`) : ""),
      ),
    );
  }
  const table = element(
    "table",
    { className: "state-steps" },
    element("caption", {}, shortened ? `Steps this event changed, with their map or loop (${shown.length} of ${total})` : `Steps at this event (${total}; the changed ones first)`),
    element("thead", {}, element("tr", {}, ...["Step", "Status", "Attempts", "Duration", "This event"].map((name) => element("th", { scope: "col" }, name)))),
    body,
  );
  if (total <= FEW_STEPS) return table;
  const toggle = element("button", { type: "button", className: "state-all", "aria-pressed": String(showAll) }, showAll ? "Show only the changed steps" : `Show all ${total} steps`);
  toggle.addEventListener("click", onToggle);
  return element("div", { className: "state-steps-box" }, toggle, table);
}

function summary(changes) {
  if (!changes) return element("p", { className: "empty" }, "The first event: everything starts here.");
  const items = changes.units.map((change) => element("li", {}, element("span", { className: "mono" }, change.unit), ` ${changeWords(change)}`));
  if (changes.status.before !== changes.status.after) items.unshift(element("li", {}, `execution: ${changes.status.before} → ${changes.status.after}`));
  for (const gate of changes.gates.opened || []) items.push(element("li", {}, `gate ${gate} opened`));
  for (const [gate, status] of Object.entries(changes.gates.resolved || {})) items.push(element("li", {}, `gate ${gate} ${status}`));
  for (const [name, count] of Object.entries(changes.usage || {})) items.push(element("li", {}, `${name}: +${count}`));
  if (!items.length) return element("p", { className: "empty" }, "This event changed no step's state.");
  return element("ul", { className: "state-changes" }, ...items);
}

/** Mount the state view into `container`; it follows the page's "travel" events. */
export function mount(page, container) {
  container.hidden = true;
  let shown = null;
  let showAll = false;
  // A state that could not be read for want of a connection is read again once it is back.
  page.addEventListener("reconnected", () => {
    if (shown !== null && shown !== undefined && container.querySelector(".error-message")) show(shown);
  });
  page.addEventListener("travel", ({ detail }) => show(detail.seq));
  async function show(seq) {
    shown = seq;
    if (seq === null || seq === undefined) {
      container.hidden = true;
      container.replaceChildren();
      return;
    }
    container.hidden = false;
    container.replaceChildren(element("p", { className: "empty" }, `Reading the state at event ${seq}…`));
    let document;
    try {
      document = await getJSON(page.path(`/state${query({ at: seq, since: seq > 1 ? seq - 1 : undefined })}`));
    } catch (error) {
      if (shown === seq) showError(container, error, `The state at event ${seq} could not be read`);
      return;
    }
    if (shown !== seq) return;
    const back = element("button", { type: "button", className: "back-to-now" }, "Back to now");
    back.addEventListener("click", () => page.travel(null));
    // "Show all N steps" and back: only the table is drawn again; the button keeps the focus.
    const toggle = () => {
      showAll = !showAll;
      container.querySelector(".state-steps-box")?.replaceWith(stepsTable(document, document.changes, showAll, toggle));
      container.querySelector(".state-all")?.focus();
    };
    const changedUnits = new Set((document.changes?.units || []).map((change) => change.unit));
    container.replaceChildren(
      element(
        "div",
        { className: "state-head" },
        element("h2", { id: "state-view-title" }, `State at event ${seq}`),
        element("span", { className: "mono" }, document.at_type || ""),
        statusBadge(document.status),
        element("span", { className: "muted" }, timestamp(document.at_time)),
        back,
      ),
      element("h3", {}, "What this event changed"),
      summary(document.changes),
      stepsTable(document, document.changes, showAll, toggle),
      element(
        "details",
        { className: "state-document" },
        element("summary", {}, "The whole state (JSON)"),
        jsonView(document, "The state at this event", {
          openDepth: 2,
          mark: (path) => (path.length === 2 && path[0] === "steps" && changedUnits.has(path[1]) ? "changed" : null),
        }),
      ),
    );
  }
}
