// The fork dialog of the actions bar: pick the step to run again from, edit the inputs as JSON
// (filled with the recorded ones), preview the plan (a dry run: which steps keep their recorded
// output, which run again and why), then start the fork and go to the new execution's page.
// Inputs the journal keeps redacted (`***`) are left out of what is sent, so the server names
// each one it needs again instead of running with `***` as a value. Only declared steps are
// offered: a fork runs a map or a loop again as a whole, never from one of its items.

import { getJSON, postJSON } from "./api.js";
import { showError } from "./banner.js";
import { element } from "./format.js";

const REDACTED = "***";
// A declared step's id; map items (`fan[2]`) and loop iterations (`loopy#2`) are not fork points.
const DECLARED_STEP = /^[A-Za-z_][A-Za-z0-9_-]*$/;

function withoutRedacted(inputs) {
  return Object.fromEntries(Object.entries(inputs).filter(([, value]) => value !== REDACTED));
}

function planView(plan) {
  const kept = plan.kept || [];
  const rerun = plan.rerun || [];
  return element(
    "div",
    { className: "fork-plan" },
    element("h3", {}, "Plan"),
    element("p", {}, `Forked at event ${plan.fork_seq}, from step `, element("span", { className: "mono" }, plan.from), "."),
    element("h4", {}, `Keep their recorded output (${kept.length})`),
    kept.length ? element("ul", { className: "fork-kept" }, kept.map((step) => element("li", { className: "mono" }, step))) : element("p", { className: "empty" }, "None."),
    element("h4", {}, `Run again (${rerun.length})`),
    element("ul", { className: "fork-rerun" }, rerun.map((entry) => element("li", {}, element("span", { className: "mono" }, entry.step), ` — ${entry.reason}`))),
  );
}

/** The fork dialog for `page`: {dialog, open()}; `say` reports outcomes on the status line. */
export function forkDialog(page, say) {
  const step = element("select", { id: "fork-step", required: true });
  const inputs = element("textarea", { id: "fork-inputs", rows: 8, className: "mono", spellcheck: "false", "aria-describedby": "fork-inputs-hint" });
  const result = element("div", { className: "fork-result", "aria-live": "polite" });
  const preview = element("button", { type: "button", onclick: () => submit(true) }, "Preview");
  const start = element("button", { type: "button", className: "primary", onclick: () => submit(false) }, "Start fork");
  const dialog = element(
    "dialog",
    { className: "action-dialog fork-dialog", "aria-labelledby": "fork-title" },
    element("h2", { id: "fork-title" }, "Fork from a step"),
    element("p", {}, "A new execution keeps the outputs of the steps before the chosen one and runs it and its dependents again."),
    element("label", { for: "fork-step" }, "Run again from step"),
    step,
    element("label", { for: "fork-inputs" }, "Inputs (JSON)"),
    inputs,
    element("small", { id: "fork-inputs-hint", className: "hint" }, "Change what should differ; redacted inputs (***) must be given again."),
    result,
    element(
      "div",
      { className: "dialog-buttons" },
      element("button", { type: "button", onclick: () => dialog.close() }, "Close"),
      preview,
      start,
    ),
  );

  const body = (dryRun) => {
    let parsed;
    try {
      parsed = inputs.value.trim() ? JSON.parse(inputs.value) : {};
    } catch (error) {
      throw Object.assign(new Error(error.message), { title: "The inputs are not valid JSON", detail: error.message });
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      throw Object.assign(new Error("not an object"), { title: "The inputs must be a JSON object", detail: "" });
    }
    return { from: step.value, inputs: withoutRedacted(parsed), dry_run: dryRun };
  };

  async function submit(dryRun) {
    preview.disabled = start.disabled = true;
    try {
      const answer = await postJSON(page.path("/fork"), body(dryRun));
      if (dryRun) {
        result.replaceChildren(planView(answer));
      } else {
        say(`Fork ${answer.execution_id} started.`);
        window.location.assign(`/ui/executions/${encodeURIComponent(answer.execution_id)}`);
      }
    } catch (error) {
      showError(result, error, dryRun ? "The plan could not be made" : "The fork could not start");
    } finally {
      preview.disabled = start.disabled = false;
    }
  }

  async function open() {
    result.replaceChildren();
    dialog.showModal();
    try {
      const execution = await getJSON(page.path());
      const steps = Object.keys(execution.steps || {}).filter((id) => DECLARED_STEP.test(id));
      step.replaceChildren(...steps.map((id) => element("option", { value: id, selected: id === (page.selected || "").split(/[[#]/)[0] }, id)));
      inputs.value = JSON.stringify(execution.inputs || {}, null, 2);
    } catch (error) {
      showError(result, error, "The execution could not be read");
    }
  }

  return { dialog, open };
}
