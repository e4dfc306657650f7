// The step panel: everything about the step the page selected (a step, a map item `ID[3]` or a
// loop iteration `ID#2`) from GET /executions/{id}/steps/{step}: status, agent, attempts with
// their durations and errors, the declared and the resolved input, the output, the error, the
// tokens, its gate and its child execution. It refreshes (at most twice a second) while events
// for that step arrive. Opening it leaves focus where it was (the graph's arrow keys keep
// working; a live region says what opened); Escape in the graph or the panel, or its close
// button, closes it and hands focus back to the step's node. `?step=ID` in the page's address
// opens it on that step, and selecting a step writes it there (closing removes it), so a reload
// or a shared link shows the same step. A map's or a loop's members are buttons that select them.
// An approval step shows its gate (status, answer, by whom, why) instead of an agent's attempts.
// A read that fails while the connection is lost keeps what the panel shows (the banner says the
// connection is lost); the panel reads again once the page says it has "reconnected".

import { getJSON } from "./api.js";
import { showError } from "./banner.js";
import { duration, element, shortId, statusBadge, timestamp } from "./format.js";
import { jsonView } from "./json_view.js";

const REFRESH_MS = 500;

function belongsTo(eventStep, stepId) {
  return eventStep === stepId || eventStep.startsWith(`${stepId}[`) || eventStep.startsWith(`${stepId}#`);
}

function section(title, ...content) {
  return element("section", { className: "step-section" }, element("h3", {}, title), ...content);
}

// Steps whose work is done by their members: their attempts and inputs are the members'.
const GROUP_KINDS = { map: "items", loop: "iterations" };

// Why a step that did not succeed has no output, by its status.
const NO_OUTPUT = {
  failed: "No output: the step failed.",
  cancelled: "No output: the step was cancelled.",
  interrupted: "No output: the step was interrupted (no process runs its execution).",
};

/** What the Output section says when the step has none, by its status. */
function noOutput(step) {
  if (step.status === "skipped") return `Skipped: ${step.reason || "no reason recorded"}`;
  return NO_OUTPUT[step.status] || "No output yet.";
}

/** What the Attempts section says when the step made none, by its status. */
function noAttempts(step) {
  if (step.status === "skipped") return "No attempts: the step was skipped.";
  return NO_OUTPUT[step.status] ? "No attempts were made." : "No attempts yet.";
}

function attemptsTable(step) {
  const { attempts } = step;
  if (!attempts.length && GROUP_KINDS[step.kind]) {
    return element("p", { className: "empty" }, `A ${step.kind} step's attempts are its ${GROUP_KINDS[step.kind]}': select one below.`);
  }
  if (!attempts.length) return element("p", { className: "empty" }, noAttempts(step));
  // An attempt's error gets a full-width row of its own under the attempt: the panel is narrow.
  const rows = attempts.flatMap((attempt) => [
    element(
      "tr",
      { dataset: { attempt: attempt.attempt } },
      element("td", {}, String(attempt.attempt)),
      element("td", {}, statusBadge(attempt.outcome)),
      element("td", { title: attempt.started }, timestamp(attempt.started)),
      element("td", {}, attempt.duration !== null ? duration(attempt.duration) : attempt.outcome === "running" ? "…" : "—"),
    ),
    attempt.error
      ? element("tr", { className: "attempt-error-row" }, element("td", { colspan: 4, className: "mono attempt-error" }, errorText(attempt.error)))
      : null,
  ]);
  return element(
    "table",
    { className: "attempts", "aria-label": "Attempts" },
    element("thead", {}, element("tr", {}, ...["#", "Outcome", "Started", "Duration"].map((name) => element("th", { scope: "col" }, name)))),
    element("tbody", {}, rows),
  );
}

function errorText(error) {
  if (error && typeof error === "object" && "message" in error) {
    return error.type ? `${error.type}: ${error.message}` : String(error.message);
  }
  return typeof error === "string" ? error : JSON.stringify(error, null, 2);
}

function inputTabs(step) {
  const resolved = step.resolved_input;
  if (GROUP_KINDS[step.kind] && !resolved.resolved) {
    const note = `Each of its ${GROUP_KINDS[step.kind]} resolves this input on its own: select one below to see what it was given.`;
    return section("Input", jsonView(step.declared_input, "Declared input"), element("p", { className: "empty" }, note));
  }
  const panels = [
    ["declared", "Declared", () => jsonView(step.declared_input, "Declared input")],
    [
      "resolved",
      "Resolved",
      () => (resolved.resolved ? jsonView(resolved.value, "Resolved input") : element("p", { className: "empty" }, resolved.reason)),
    ],
  ];
  const tabs = element("div", { role: "tablist", className: "input-tabs", "aria-label": "Input" });
  const bodies = [];
  const buttons = panels.map(([key, title], index) =>
    element("button", { type: "button", role: "tab", id: `input-tab-${key}`, "aria-controls": `input-panel-${key}`, "aria-selected": String(index === 1), tabindex: index === 1 ? 0 : -1 }, title),
  );
  const choose = (chosen) => {
    buttons.forEach((button, index) => {
      const selected = button === chosen;
      button.setAttribute("aria-selected", String(selected));
      button.tabIndex = selected ? 0 : -1;
      bodies[index].hidden = !selected;
    });
    chosen.focus();
  };
  buttons.forEach((button, index) => {
    button.addEventListener("click", () => choose(button));
    button.addEventListener("keydown", (event) => {
      const move = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (move) choose(buttons[(index + move + buttons.length) % buttons.length]);
    });
    tabs.append(button);
  });
  for (const [index, [key, , build]] of panels.entries()) {
    bodies.push(element("div", { role: "tabpanel", id: `input-panel-${key}`, "aria-labelledby": `input-tab-${key}`, hidden: index !== 1 }, build()));
  }
  return section("Input", tabs, ...bodies);
}

function usageList(usage) {
  const entries = Object.entries(usage || {});
  if (!entries.length) return element("p", { className: "empty" }, "No tokens recorded.");
  return element("dl", { className: "facts usage" }, entries.flatMap(([name, count]) => [element("dt", {}, name.replaceAll("_", " ")), element("dd", {}, count.toLocaleString())]));
}

function agentName(agent) {
  if (!agent) return "—";
  return typeof agent === "string" ? agent : agent.id || JSON.stringify(agent);
}

/** Whether a value says something: not null, not an empty object or array. */
function hasValue(value) {
  if (value === undefined || value === null) return false;
  return typeof value !== "object" || Object.keys(value).length > 0;
}

/** An approval step's gate: its status, what it asked, and how it was answered, by whom and why. */
function gateSection(gate) {
  const answer = gate.answer || {};
  const fact = (name, value, className = "") => (value === undefined || value === null || value === "" ? null : [element("dt", {}, name), element("dd", { className }, String(value))]);
  return section(
    "Gate",
    element(
      "dl",
      { className: "facts gate-facts" },
      element("dt", {}, "Status"), element("dd", {}, statusBadge(gate.status)),
      fact("Asks", gate.prompt),
      fact("Answered by", answer.by, "mono"),
      fact("Reason", answer.reason),
      fact("How", answer.how),
    ),
    hasValue(answer.input) ? jsonView(answer.input, "Answer") : null,
  );
}

function memberList(members, select) {
  return element(
    "ul",
    { className: "step-members" },
    members.map((member) => element("li", {}, element("button", { type: "button", className: "mono link-button", onclick: () => select(member) }, member))),
  );
}

function render(step, close, select) {
  const approval = step.kind === "approval";
  const facts = element(
    "dl",
    { className: "facts" },
    element("dt", {}, "Kind"), element("dd", {}, step.kind),
    approval ? null : [element("dt", {}, "Agent"), element("dd", { className: "mono step-agent" }, agentName(step.agent))],
    GROUP_KINDS[step.kind]
      ? [element("dt", {}, step.kind === "map" ? "Items" : "Iterations"), element("dd", {}, String(step.items.length + step.iterations.length))]
      : approval
        ? null
        : [element("dt", {}, "Attempts"), element("dd", { className: "step-attempt-count" }, String(step.attempt_count))],
    element("dt", {}, "Duration"), element("dd", {}, step.duration === null ? "—" : duration(step.duration)),
    step.depends_on.length ? [element("dt", {}, "Depends on"), element("dd", { className: "mono" }, step.depends_on.join(", "))] : null,
    step.reason ? [element("dt", {}, "Reason"), element("dd", {}, step.reason)] : null,
    step.child_execution_id
      ? [element("dt", {}, "Child"), element("dd", {}, element("a", { href: `/ui/executions/${encodeURIComponent(step.child_execution_id)}` }, `execution ${shortId(step.child_execution_id)}`))]
      : null,
  );
  const members = [...step.items, ...step.iterations];
  return [
    element(
      "header",
      { className: "step-panel-head" },
      element("h2", { id: "step-panel-title", className: "mono" }, step.step_id),
      statusBadge(step.status),
      element("button", { type: "button", className: "step-panel-close", "aria-label": "Close step details", onclick: close }, "✕"),
    ),
    facts,
    step.error ? section("Error", element("pre", { className: "step-error mono", role: "alert" }, errorText(step.error))) : null,
    approval ? null : section("Attempts", attemptsTable(step)),
    approval ? (step.gate ? gateSection(step.gate) : section("Gate", element("p", { className: "empty" }, "The gate has not opened yet."))) : null,
    approval && step.declared_input === null ? null : inputTabs(step),
    section("Output", step.output === null && step.status !== "succeeded" ? element("p", { className: "empty step-no-output" }, noOutput(step)) : jsonView(step.output, "Output")),
    section("Tokens", usageList(step.usage)),
    members.length ? section(step.items.length ? "Items" : "Iterations", memberList(members, select)) : null,
  ];
}

/** Put the selected step in the page's address as `?step=ID` (none: removed), keeping history. */
export function rememberStep(stepId) {
  const url = new URL(location.href);
  if (stepId) url.searchParams.set("step", stepId);
  else url.searchParams.delete("step");
  if (url.href !== location.href) history.replaceState(history.state, "", url);
}

/** Show the selected step's details in `container`, following the page's "select" and events. */
export function mount(page, container) {
  let selected = null;
  let timer = null;
  let generation = 0;
  let announce = false;
  let stale = false;
  container.setAttribute("aria-labelledby", "step-panel-title");
  container.tabIndex = -1;

  const close = () => {
    const stepId = selected;
    page.select(null);
    const node = stepId && document.querySelector(`#graph [data-step-id="${CSS.escape(stepId)}"]`);
    const controls = "button, a, [role=\"button\"], [tabindex]";
    const focusable = node && (node.matches(controls) ? node : node.querySelector(controls));
    (focusable || document.getElementById("main")).focus();
  };

  const load = async () => {
    const stepId = selected;
    const mine = ++generation;
    try {
      const step = await getJSON(page.path(`/steps/${encodeURIComponent(stepId)}`));
      if (mine !== generation) return;
      stale = false;
      container.replaceChildren(...render(step, close, (member) => page.select(member)).filter(Boolean));
      container.dataset.stepId = stepId;
      container.dataset.status = step.status;
      if (announce) {
        announce = false;
        document.getElementById("step-announcer").textContent = `Details of step ${stepId}, ${step.status}, shown beside the graph`;
      }
    } catch (error) {
      if (mine !== generation) return;
      // Offline: keep what is shown (the banner says so); "reconnected" reads it again.
      if ((page.offline || error.status === 0) && container.dataset.stepId === stepId) {
        stale = true;
        if (!container.querySelector(".step-stale")) {
          const note = element("p", { className: "step-stale", role: "status" }, "Shown as last read: the server cannot be reached.");
          container.querySelector(".step-panel-head")?.after(note);
        }
        return;
      }
      showError(container, error, `Step ${stepId} could not be read`);
      delete container.dataset.stepId;
      container.prepend(element("button", { type: "button", className: "step-panel-close", "aria-label": "Close step details", onclick: close }, "✕"));
    }
  };

  page.addEventListener("select", ({ detail }) => {
    selected = detail.stepId;
    rememberStep(selected);
    clearTimeout(timer);
    timer = null;
    if (!selected) {
      generation++;
      container.hidden = true;
      container.replaceChildren();
      delete container.dataset.stepId;
      return;
    }
    container.hidden = false;
    // Focus stays where the selection came from (the graph's arrow keys keep working); the
    // live region says what opened, and Tab or the panel's controls reach it.
    announce = true;
    load();
  });

  // The process running the execution died: its running step reads interrupted now.
  page.addEventListener("ended", ({ detail }) => {
    if (selected && String(detail?.reason || "").startsWith("interrupted")) load();
  });

  page.addEventListener("reconnected", () => {
    if (selected && (stale || !container.dataset.stepId)) load();
  });

  page.addEventListener("events", ({ detail }) => {
    if (!selected || timer) return;
    if (!detail.events.some((event) => event.step_id && belongsTo(event.step_id, selected))) return;
    timer = setTimeout(() => {
      timer = null;
      if (selected) load();
    }, REFRESH_MS);
  });

  // Escape closes the panel from the panel itself or from the graph that opened it.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || !selected || event.defaultPrevented) return;
    const from = event.target instanceof Element ? event.target : null;
    if (from && !from.closest("#step-panel, #graph")) return;
    event.preventDefault();
    close();
  });

  const wanted = new URLSearchParams(location.search).get("step");
  if (wanted) {
    page.addEventListener("document", () => page.selected !== wanted && page.select(wanted), { once: true });
  }
}
