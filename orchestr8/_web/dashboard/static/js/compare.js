// The compare page: two executions side by side from GET /executions/compare?a=&b=. A header
// per execution (status, workflow, duration, tokens, a link back to it), then one row per step:
// status, duration, attempts and tokens of each side, and the output diff — the two outputs side
// by side, the keys that changed marked (with a word, not only a colour), unchanged ones folded
// away. Steps only one execution has are marked so, and a step one side has not finished reads
// "not finished in B" (the comparison's verdict) rather than "changed". The ids may be the
// 8-character prefixes the pages show: each is resolved to the one execution it starts (or the
// page says it is ambiguous).

import { ApiError, getJSON, query } from "./api.js";
import { showError } from "./banner.js";
import { duration, element, shortId, statusBadge } from "./format.js";

const SIDES = ["a", "b"];
const FULL_ID = /^[0-9a-f]{32}(\..+)?$/;
const PREFIX = /^[0-9a-f]{1,31}$/;
const SHOWN_MATCHES = 50;

/** The full id `given` names: itself, or the one execution whose id starts with it. */
async function resolveId(given, name) {
  if (FULL_ID.test(given) || !PREFIX.test(given)) return given;
  const page = await getJSON(`/executions${query({ id_prefix: given, top_level: "false", limit: SHOWN_MATCHES })}`);
  const ids = page.items.map((item) => item.execution_id);
  if (ids.length === 1) return ids[0];
  if (ids.length === 0) return given; // the comparison says there is no such execution
  const count = page.next_cursor ? `more than ${SHOWN_MATCHES}` : String(ids.length);
  const detail = `ambiguous: ${count} executions start with “${given}”; give more of the id.`;
  throw new ApiError(400, `${name.toUpperCase()} is ambiguous`, detail, [{ path: name, message: ids.slice(0, 5).join(", ") + (ids.length > 5 ? ", …" : "") }]);
}

/** The comparison's verdict on a step one side has not finished ("not finished in B"), or null. */
function unfinishedVerdict(entry) {
  if (!entry.output.startsWith("not finished in ")) return null;
  return entry.output.replace(/\b[ab]\b/g, (side) => side.toUpperCase());
}

function tokens(usage) {
  const total = Object.values(usage || {}).reduce((sum, count) => sum + count, 0);
  return total ? total.toLocaleString() : "—";
}

function pretty(value) {
  return value === undefined ? "" : JSON.stringify(value, null, 2);
}

function sideHeader(name, side) {
  return element(
    "section",
    { className: "compare-side", dataset: { side: name }, "aria-label": `Execution ${name.toUpperCase()}` },
    element("h2", {}, `${name.toUpperCase()}: `, element("a", { href: `/ui/executions/${encodeURIComponent(side.execution_id)}`, className: "mono" }, shortId(side.execution_id))),
    element(
      "dl",
      { className: "facts" },
      element("dt", {}, "Status"), element("dd", {}, statusBadge(side.status)),
      element("dt", {}, "Workflow"), element("dd", {}, side.workflow),
      element("dt", {}, "Duration"), element("dd", {}, side.duration === null ? "—" : duration(side.duration)),
      element("dt", {}, "Tokens"), element("dd", {}, tokens(side.usage)),
    ),
  );
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** The two outputs side by side: changed keys marked, unchanged keys folded into one line. */
function outputDiff(first, second) {
  if (!isObject(first) || !isObject(second)) {
    const same = pretty(first) === pretty(second);
    return element(
      "div",
      { className: "diff-grid" },
      element("pre", { className: `mono diff-cell${same ? "" : " changed"}` }, pretty(first)),
      element("pre", { className: `mono diff-cell${same ? "" : " changed"}` }, pretty(second)),
    );
  }
  const keys = [...new Set([...Object.keys(first), ...Object.keys(second)])];
  const changed = keys.filter((key) => pretty(first[key]) !== pretty(second[key]));
  const unchanged = keys.filter((key) => !changed.includes(key));
  const row = (key, kind) =>
    element(
      "div",
      { className: `diff-row ${kind}`, dataset: { key } },
      element("div", { className: "diff-key mono" }, key, kind === "changed" ? element("span", { className: "diff-mark" }, " changed") : null),
      element("pre", { className: "mono diff-cell" }, key in first ? pretty(first[key]) : "(absent)"),
      element("pre", { className: "mono diff-cell" }, key in second ? pretty(second[key]) : "(absent)"),
    );
  return element(
    "div",
    { className: "diff-keys" },
    changed.map((key) => row(key, "changed")),
    unchanged.length
      ? element("details", { className: "diff-unchanged" }, element("summary", {}, `${unchanged.length} unchanged key${unchanged.length === 1 ? "" : "s"}`), unchanged.map((key) => row(key, "same")))
      : null,
  );
}

function cell(step, read) {
  return element("td", {}, step ? read(step) : "—");
}

function stepRows(entry) {
  const { a, b } = entry;
  const only = entry.in === "both" ? null : `only in ${entry.in.toUpperCase()}`;
  const unfinished = only ? null : unfinishedVerdict(entry);
  const verdict = only || unfinished || entry.output;
  const main = element(
    "tr",
    { dataset: { stepId: entry.step_id, output: entry.output }, className: entry.differs ? "differs" : "" },
    element("th", { scope: "row", className: "mono" }, entry.step_id, only ? element("span", { className: "only-in" }, ` (${only})`) : null),
    cell(a, (step) => statusBadge(step.status)),
    cell(b, (step) => statusBadge(step.status)),
    cell(a, (step) => (step.duration === null ? "—" : duration(step.duration))),
    cell(b, (step) => (step.duration === null ? "—" : duration(step.duration))),
    cell(a, (step) => String(step.attempts)),
    cell(b, (step) => String(step.attempts)),
    cell(a, (step) => tokens(step.usage)),
    cell(b, (step) => tokens(step.usage)),
    element("td", { className: "output-verdict" }, verdict, entry.reused_by ? ` (reused by ${entry.reused_by.toUpperCase()})` : ""),
  );
  if (entry.output === "equal" || only || unfinished) return [main];
  const detail = element(
    "tr",
    { className: "output-diff-row", dataset: { stepId: entry.step_id } },
    element("td", { colspan: 10 }, element("details", { open: true }, element("summary", {}, `Output of ${entry.step_id}: A | B`), outputDiff(a.output, b.output))),
  );
  return [main, detail];
}

function render(comparison) {
  const heads = ["Step", "Status A", "Status B", "Duration A", "Duration B", "Attempts A", "Attempts B", "Tokens A", "Tokens B", "Output"];
  const summary = comparison.same ? "The two executions are the same." : `${comparison.differing_steps} step${comparison.differing_steps === 1 ? "" : "s"} differ.`;
  return [
    element("div", { className: "compare-sides" }, SIDES.map((name) => sideHeader(name, comparison[name]))),
    element(
      "p",
      { className: "compare-summary" },
      summary,
      comparison.same_workflow ? "" : " The workflows differ.",
      comparison.same_inputs ? " Same inputs." : " The inputs differ.",
    ),
    element(
      "table",
      { className: "compare-steps", "aria-label": "Steps compared" },
      element("thead", {}, element("tr", {}, heads.map((name) => element("th", { scope: "col" }, name)))),
      element("tbody", {}, comparison.steps.flatMap(stepRows)),
    ),
  ];
}

async function load() {
  const { first, second } = document.body.dataset;
  const container = document.getElementById("comparison");
  if (!first || !second) {
    container.replaceChildren(element("p", { className: "empty" }, "Give two execution ids to compare them."));
    return;
  }
  container.replaceChildren(element("p", { className: "empty" }, "Loading…"));
  try {
    const [a, b] = await Promise.all([resolveId(first, "a"), resolveId(second, "b")]);
    const comparison = await getJSON(`/executions/compare${query({ a, b })}`);
    container.replaceChildren(...render(comparison));
  } catch (error) {
    showError(container, error, "The executions could not be compared");
  }
}

load();
