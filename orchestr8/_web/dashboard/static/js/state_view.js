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

function stepsTable(document, changes) {
  const changed = new Map((changes?.units || []).map((change) => [change.unit, change]));
  const units = [...Object.keys(document.steps)];
  for (const unit of changed.keys()) if (!units.includes(unit)) units.push(unit);
  const body = element("tbody");
  for (const unit of units) {
    const step = document.steps[unit] || changed.get(unit).after;
    const change = changed.get(unit);
    body.append(
      element(
        "tr",
        { dataset: { unit, ...(change ? { changed: "true" } : {}) } },
        element("th", { scope: "row", className: "mono" }, unit),
        element("td", {}, statusBadge(step.status)),
        element("td", {}, String(step.attempts ?? 0)),
        element("td", {}, step.duration === null || step.duration === undefined ? "" : duration(step.duration)),
        element("td", { className: "change" }, change ? element("strong", {}, `● ${changeWords(change)}`) : ""),
      ),
    );
  }
  return element(
    "table",
    { className: "state-steps" },
    element("caption", {}, "Steps at this event"),
    element("thead", {}, element("tr", {}, ...["Step", "Status", "Attempts", "Duration", "This event"].map((name) => element("th", { scope: "col" }, name)))),
    body,
  );
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
      stepsTable(document, document.changes),
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
