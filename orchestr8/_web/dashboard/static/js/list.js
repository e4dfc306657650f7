// The executions list page: filters kept in the URL, paging by cursors, and a live first page.
// The page shown is in the URL too (`cursor` and `page`; the cursors of the newer pages in the
// history entry's state): Older and Newer push a history entry, so Back and reload keep the page;
// a filter change replaces the entry and starts again at page 1. What the URL asks for goes to the
// API as it is, so a bad status or cursor shows the API's problem instead of being ignored.
// The current page is read again every second while the tab is visible: on the first page new
// executions appear at the top and statuses change in place; on older pages only statuses
// change (so rows never shift under the reader). The table itself is `list_table.js`.

import { ApiError, getJSON, query } from "./api.js";
import { showError } from "./banner.js";
import { element } from "./format.js";
import { ExecutionTable } from "./list_table.js";

const POLL_MS = 1000;
const TYPING_MS = 300;
const ID_PREFIX = /^[0-9a-f]{1,32}$/;

const form = document.getElementById("filters");
const errorBox = document.getElementById("list-error");
const announcer = document.getElementById("list-announcer");
const olderButton = document.getElementById("older");
const newerButton = document.getElementById("newer");
const pageNumber = document.getElementById("page-number");
const compareButton = document.getElementById("compare");
const compareHint = document.getElementById("compare-hint");

const table = new ExecutionTable(document.getElementById("executions"), selectionChanged);
let cursor = null; // the cursor of the page shown (null: the first page)
let newerCursors = []; // the cursors of the pages before it, for "← Newer"
let pageIndex = 1; // the number of the page shown, as the pager says it
let nextCursor = null;
let generation = 0; // bumped by every new filter or page, so late answers are dropped
let timer = null;
let typing = null;

/** The filters as the URL and the form hold them. */
function readFilters() {
  const elements = form.elements;
  return {
    status: elements.status.value,
    workflow: elements.workflow.value.trim(),
    id_prefix: elements.id_prefix.value.trim().toLowerCase(),
    top_level: elements.show_children.checked ? "false" : "",
    limit: new URLSearchParams(location.search).get("limit") || "",
  };
}

/** Fill the form from the URL's query, so a reload or going back shows the same filters. */
function restoreFilters() {
  const search = new URLSearchParams(location.search);
  const elements = form.elements;
  const status = search.get("status") || "";
  for (const option of elements.status.querySelectorAll("option[data-unknown]")) option.remove();
  if (![...elements.status.options].some((option) => option.value === status)) {
    // Kept so that the API names the problem; the select shows what the URL asked for.
    elements.status.append(element("option", { value: status, dataset: { unknown: "" } }, `${status} (unknown)`));
  }
  elements.status.value = status;
  elements.workflow.value = search.get("workflow") || "";
  elements.id_prefix.value = search.get("id_prefix") || "";
  elements.show_children.checked = search.get("top_level") === "false";
  cursor = search.get("cursor") || null;
  const saved = history.state && Array.isArray(history.state.newerCursors) ? history.state.newerCursors : null;
  // A shared link has a cursor but no history: "← Newer" then goes back to the first page.
  newerCursors = saved || (cursor === null ? [] : [null]);
  const number = Number.parseInt(search.get("page") || "", 10);
  pageIndex = cursor === null ? 1 : Number.isInteger(number) && number > 1 ? number : newerCursors.length + 1;
}

/** The URL of the filters and the page shown. */
function pageURL() {
  const paging = cursor === null ? {} : { cursor, page: pageIndex };
  return `${location.pathname}${query({ ...readFilters(), ...paging })}`;
}

/** The sentence shown when the filters match nothing, naming them. */
function emptyText(filters) {
  const named = [];
  if (filters.status) named.push(`status “${filters.status}”`);
  if (filters.workflow) named.push(`workflow “${filters.workflow}”`);
  if (filters.id_prefix) named.push(`id starting “${filters.id_prefix}”`);
  if (cursor !== null) return "No older executions.";
  if (named.length === 0) return "No executions yet. Run a workflow and it appears here.";
  return `No executions match ${named.join(", ")}.`;
}

function apiQuery(filters) {
  return query({ ...filters, top_level: filters.top_level || "true", cursor });
}

function invalidPrefix(prefix) {
  const message = "use 1 to 32 characters from 0 to 9 and a to f";
  return new ApiError(400, "Invalid id prefix", `“${prefix}” cannot start an execution id.`, [{ path: "id_prefix", message }]);
}

function updatePager() {
  newerButton.disabled = cursor === null;
  olderButton.disabled = nextCursor === null;
  pageNumber.textContent = `Page ${pageIndex}`;
}

function announce(added) {
  if (added > 0) announcer.textContent = added === 1 ? "1 new execution" : `${added} new executions`;
}

/** Read the current page; `fresh` rebuilds the table (new filters or page), else updates it. */
async function load(fresh) {
  const filters = readFilters();
  const mine = fresh ? ++generation : generation;
  const prefixBox = form.elements.id_prefix;
  if (filters.id_prefix && !ID_PREFIX.test(filters.id_prefix)) {
    if (!fresh) return;
    prefixBox.setAttribute("aria-invalid", "true");
    table.replace([], "");
    nextCursor = null;
    updatePager();
    showError(errorBox, invalidPrefix(filters.id_prefix), "The executions could not be listed");
    return;
  }
  prefixBox.removeAttribute("aria-invalid");
  try {
    const page = await getJSON(`/executions${apiQuery(filters)}`);
    if (mine !== generation) return;
    errorBox.replaceChildren();
    nextCursor = page.next_cursor;
    if (fresh) table.replace(page.items, emptyText(filters));
    else announce(table.show(page.items, { emptyText: emptyText(filters), addNew: cursor === null }));
    updatePager();
  } catch (error) {
    if (mine !== generation) return;
    if (fresh) table.replace([], "");
    // A poll that keeps failing shows its error once, not once a second.
    if (fresh || errorBox.childElementCount === 0) showError(errorBox, error, "The executions could not be listed");
  }
}

/** Write the filters into the URL (no new history entry) and show their first page. */
function applyFilters() {
  for (const option of form.elements.status.querySelectorAll("option[data-unknown]:not(:checked)")) option.remove();
  cursor = null;
  newerCursors = [];
  pageIndex = 1;
  history.replaceState({ newerCursors }, "", pageURL());
  restart();
}

/** Show another page: a new history entry, so that Back returns to the page before. */
function turnPage(to, newer, step) {
  cursor = to;
  newerCursors = newer;
  pageIndex = cursor === null ? 1 : pageIndex + step;
  history.pushState({ newerCursors }, "", pageURL());
  restart();
}

/** Load now, then poll every second while the tab is visible. */
function restart() {
  clearTimeout(timer);
  timer = null;
  load(true).finally(schedule);
}

function schedule() {
  clearTimeout(timer);
  timer = null;
  if (document.visibilityState !== "visible") return;
  timer = setTimeout(() => load(false).finally(schedule), POLL_MS);
}

function selectionChanged(selected) {
  compareButton.disabled = selected.length !== 2;
  compareButton.textContent = selected.length ? `Compare selected (${selected.length} of 2)` : "Compare selected";
  compareHint.textContent = selected.length === 2 ? "Ready to compare." : "Tick two executions to compare them.";
}

compareButton.addEventListener("click", () => {
  const [first, second] = table.selected;
  if (first && second) location.assign(`/ui/compare${query({ a: first, b: second })}`);
});

olderButton.addEventListener("click", () => {
  if (nextCursor === null) return;
  turnPage(nextCursor, [...newerCursors, cursor], 1);
});

newerButton.addEventListener("click", () => {
  turnPage(newerCursors.length ? newerCursors[newerCursors.length - 1] : null, newerCursors.slice(0, -1), -1);
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(typing);
  applyFilters();
});
form.addEventListener("change", (event) => {
  if (event.target.type === "search") return; // typed text applies after a pause, or on Enter
  applyFilters();
});
form.addEventListener("input", (event) => {
  if (event.target.type !== "search") return;
  clearTimeout(typing);
  typing = setTimeout(applyFilters, TYPING_MS);
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") load(false).finally(schedule);
  else clearTimeout(timer);
});
window.addEventListener("popstate", () => {
  restoreFilters();
  restart();
});

restoreFilters();
selectionChanged([]);
history.replaceState({ newerCursors }, "", pageURL());
restart();
