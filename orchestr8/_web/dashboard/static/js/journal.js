// The journal panel: the execution's events newest first (GET /executions/{id}/journal with
// order=desc, paged by `before`), filtered by event type (checkboxes by family) and by step (its
// map items and loop iterations too, as the server does). New live events that match the filters
// are put on top in one batch per frame; when the reader has scrolled down, a "N new events"
// button waits instead, so the rows never jump under the pointer. Activating a row (click, Enter
// or Space) travels to that event: the state view beside the table shows the state there.

import { getJSON, query } from "./api.js";
import { showError } from "./banner.js";
import { duration, element, timestamp } from "./format.js";
import * as stateView from "./state_view.js";

const FAMILIES = {
  execution: ["execution.started", "execution.succeeded", "execution.failed", "execution.cancelled", "execution.resumed", "execution.waiting"],
  step: ["step.started", "step.progress", "step.usage", "step.succeeded", "step.failed", "step.skipped", "step.cancelled", "step.replanned"],
  attempt: ["attempt.started", "attempt.failed", "attempt.rejected", "retry.scheduled"],
  breaker: ["breaker.opened", "breaker.half_opened", "breaker.closed", "breaker.rejected"],
  "map, loop, child": ["map.started", "iteration.finished", "child.started"],
  "plan, gate": ["plan.proposed", "plan.rejected", "gate.opened", "gate.resolved"],
};
const PAGE = 100;
// The most rows live events keep in the table (older ones stay a click on "Older events" away):
// at 1,000 events a second a longer table costs more layout per frame than anyone can read.
const MAX_ROWS = 200;
// One formatter for every row: `toLocaleTimeString` builds a new one per call, which at 1,000
// events a second was the journal's biggest cost.
const TIME_OF_DAY = new Intl.DateTimeFormat([], { hour: "numeric", minute: "numeric", second: "numeric", hour12: false });

/** The time of day of an ISO timestamp, to the millisecond (the date is in the cell's title). */
export function clock(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso || "";
  return `${TIME_OF_DAY.format(date)}.${String(date.getMilliseconds()).padStart(3, "0")}`;
}

/** A short summary of an event's data for its row. */
export function summarize(event) {
  const data = event.data || {};
  if (data.error) return `${data.error.type || "error"}: ${data.error.message || ""}`.slice(0, 160);
  if (data.delay !== undefined) return `retry in ${duration(data.delay)}`;
  const text = JSON.stringify(data);
  return text === "{}" ? "" : text.length > 160 ? `${text.slice(0, 157)}…` : text;
}

class Journal {
  constructor(page, container) {
    this.page = page;
    this.types = new Set();
    this.step = "";
    this.newest = 0;
    this.oldest = null;
    this.pending = [];
    this.selected = null;
    this.generation = 0;
    this.loading = false;
    this.stale = false;
    this.drawn = false;
    this.knownSteps = new Set();
    this.build(container);
  }

  build(container) {
    this.container = container;
    const families = Object.entries(FAMILIES).map(([family, types]) =>
      element(
        "fieldset",
        { className: "journal-family" },
        element("legend", {}, family),
        ...types.map((type) => {
          const box = element("input", { type: "checkbox", value: type, name: "type" });
          box.addEventListener("change", () => {
            if (box.checked) this.types.add(type);
            else this.types.delete(type);
            this.reload();
          });
          return element("label", {}, box, ` ${type}`);
        }),
      ),
    );
    this.stepInput = element("input", { type: "text", name: "step", list: "journal-steps", placeholder: "any step", autocomplete: "off" });
    this.stepList = element("datalist", { id: "journal-steps" });
    this.stepInput.addEventListener("change", () => {
      this.step = this.stepInput.value.trim();
      this.reload();
    });
    const clear = element("button", { type: "button" }, "Clear filters");
    clear.addEventListener("click", () => {
      for (const box of container.querySelectorAll('input[name="type"]')) box.checked = false;
      this.types.clear();
      this.stepInput.value = this.step = "";
      this.reload();
    });
    this.filterText = element("span", { className: "journal-filter-text", "aria-live": "polite" });
    const filters = element(
      "div",
      { className: "filters journal-filters" },
      element("details", { className: "journal-types" }, element("summary", {}, "Event types"), element("div", { className: "journal-families" }, ...families)),
      element("label", {}, "Step (with its items and iterations)", this.stepInput),
      this.stepList,
      clear,
      this.filterText,
    );
    this.newButton = element("button", { type: "button", className: "journal-new", hidden: true });
    this.newButton.addEventListener("click", () => this.showPending(true));
    this.body = element("tbody");
    this.table = element(
      "table",
      { className: "journal-table", "aria-label": "Events, newest first" },
      element("thead", {}, element("tr", {}, ...["Seq", "Time", "Elapsed", "Type", "Step", "Attempt", "Data"].map((name) => element("th", { scope: "col" }, name)))),
      this.body,
    );
    this.scroller = element("div", { className: "journal-scroll" }, this.table);
    this.scroller.addEventListener("scroll", () => {
      if (this.scroller.scrollTop === 0 && this.pending.length) this.showPending(false);
    });
    // A hidden panel builds no rows: live events wait, and go on top when the panel shows.
    new ResizeObserver(() => this.shown()).observe(this.scroller);
    this.olderButton = element("button", { type: "button", className: "journal-older", hidden: true }, "Older events");
    this.olderButton.addEventListener("click", () => this.older());
    this.message = element("div", { className: "journal-message" });
    const state = element("section", { className: "state-view", id: "state-view", "aria-labelledby": "state-view-title" });
    container.replaceChildren(
      filters,
      element("div", { className: "journal-layout" }, element("div", { className: "journal-main" }, this.newButton, this.message, this.scroller, this.olderButton), state),
    );
    stateView.mount(this.page, state);
    this.page.addEventListener("travel", ({ detail }) => this.mark(detail.seq));
  }

  filterQuery(extra) {
    return query({ order: "desc", limit: PAGE, type: [...this.types].join(","), step: this.step, ...extra });
  }

  matches(event) {
    if (this.types.size && !this.types.has(event.type)) return false;
    if (!this.step) return true;
    const id = event.step_id;
    return id === this.step || (id !== undefined && id !== null && (id.startsWith(`${this.step}[`) || id.startsWith(`${this.step}#`)));
  }

  /** Read the newest page again for the current filters. */
  async reload() {
    const generation = ++this.generation;
    const parts = [];
    if (this.types.size) parts.push(`${this.types.size} type${this.types.size === 1 ? "" : "s"}`);
    if (this.step) parts.push(`step ${this.step}`);
    this.filterText.textContent = parts.length ? `Showing ${parts.join(" and ")}` : "Showing every event";
    this.pending = [];
    this.updateNewButton();
    this.loading = true;
    let answer;
    try {
      answer = await getJSON(this.page.path(`/journal${this.filterQuery({})}`));
    } catch (error) {
      if (generation === this.generation) {
        this.loading = false;
        showError(this.message, error, "The journal could not be read");
      }
      return;
    }
    if (generation !== this.generation) return;
    this.loading = false;
    this.message.replaceChildren();
    this.body.replaceChildren();
    this.newest = answer.events.length ? answer.events[0].seq : this.page.lastSeq;
    this.oldest = null;
    this.append(answer);
    if (!answer.events.length) this.message.replaceChildren(element("p", { className: "empty" }, "No event matches these filters."));
    this.pending = this.pending.filter((event) => event.seq > this.newest);
    if (this.pending.length) this.showPending(false);
    if (!this.drawn) {
      this.drawn = true;
      performance.mark("orchestr8:journal-ready");
    }
  }

  /** The panel showed: put the live events that came while it was hidden on top. */
  shown() {
    if (this.container.hidden || this.loading) return;
    if (this.stale) {
      this.stale = false;
      this.reload();
    } else if (this.pending.length) {
      if (this.scroller.scrollTop === 0) this.showPending(false);
      else this.updateNewButton();
    }
  }

  append(answer) {
    const rows = answer.events.map((event) => this.row(event));
    this.body.append(...rows);
    if (answer.events.length) this.oldest = answer.events[answer.events.length - 1].seq;
    this.olderButton.hidden = !answer.has_more;
  }

  async older() {
    const generation = this.generation;
    this.olderButton.disabled = true;
    try {
      const answer = await getJSON(this.page.path(`/journal${this.filterQuery({ before: this.oldest })}`));
      if (generation === this.generation) this.append(answer);
    } catch (error) {
      showError(this.message, error, "Older events could not be read");
    } finally {
      this.olderButton.disabled = false;
    }
  }

  row(event) {
    const selected = event.seq === this.selected;
    const row = element(
      "tr",
      { tabindex: "0", dataset: { seq: event.seq, type: event.type }, "aria-selected": String(selected), title: "Show the state at this event" },
      element("td", { className: "mono" }, String(event.seq)),
      element("td", { title: timestamp(event.ts) }, clock(event.ts)),
      element("td", {}, duration(event.elapsed)),
      element("td", { className: "mono" }, event.type),
      element("td", { className: "mono" }, event.step_id || ""),
      element("td", {}, event.attempt ? String(event.attempt) : ""),
      element("td", { className: "journal-data" }, summarize(event)),
    );
    const travel = () => this.page.travel(event.seq);
    row.addEventListener("click", travel);
    row.addEventListener("keydown", (key) => {
      if (key.key === "Enter" || key.key === " ") {
        key.preventDefault();
        travel();
      } else if (key.key === "ArrowDown" || key.key === "ArrowUp") {
        key.preventDefault();
        (key.key === "ArrowDown" ? row.nextElementSibling : row.previousElementSibling)?.focus();
      }
    });
    return row;
  }

  mark(seq) {
    this.selected = seq;
    for (const row of this.body.querySelectorAll('tr[aria-selected="true"]')) row.setAttribute("aria-selected", "false");
    if (seq !== null && seq !== undefined) this.body.querySelector(`tr[data-seq="${seq}"]`)?.setAttribute("aria-selected", "true");
  }

  /** Live events: the matching ones go on top, or wait behind the button if the reader scrolled. */
  live(events) {
    const fresh = events.filter((event) => event.seq > this.newest && this.matches(event));
    if (events.length) this.newest = Math.max(this.newest, events[events.length - 1].seq);
    this.noteSteps(events.map((event) => event.step_id).filter((id) => id && !id.includes("[")));
    if (!fresh.length) return;
    this.pending.push(...fresh);
    if (this.loading) return;
    if (this.container.hidden) {
      // More than a table's worth waited: read the newest page when the panel shows instead.
      if (this.pending.length > MAX_ROWS) {
        this.pending = [];
        this.stale = true;
      }
      return;
    }
    if (this.scroller.scrollTop === 0) this.showPending(false);
    else this.updateNewButton();
  }

  showPending(scroll) {
    const rows = this.pending.reverse().map((event) => this.row(event));
    this.pending = [];
    this.body.prepend(...rows);
    while (this.body.rows.length > MAX_ROWS) {
      this.body.lastElementChild.remove();
      this.olderButton.hidden = false;
    }
    this.oldest = Number(this.body.lastElementChild?.dataset.seq ?? this.oldest);
    if (this.body.rows.length) this.message.replaceChildren();
    this.updateNewButton();
    if (scroll) this.scroller.scrollTop = 0;
  }

  updateNewButton() {
    const count = this.pending.length;
    this.newButton.hidden = count === 0;
    this.newButton.textContent = `${count} new event${count === 1 ? "" : "s"} — show them`;
  }

  noteSteps(source) {
    for (const id of source) {
      if (id && !this.knownSteps.has(id)) {
        this.knownSteps.add(id);
        this.stepList.append(element("option", { value: id }));
      }
    }
  }
}

/** Mount the journal panel: the newest events, filters, paging, live rows and the state view. */
export function mount(page, container) {
  const journal = new Journal(page, container);
  journal.reload(); // at once: the newest page needs nothing from the summary
  page.addEventListener("document", ({ detail }) => journal.noteSteps(Object.keys(detail.steps || {})));
  page.addEventListener("events", ({ detail }) => journal.live(detail.events));
}
