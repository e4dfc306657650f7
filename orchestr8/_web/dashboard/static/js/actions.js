// The actions bar of the execution page: cancel, resume, fork from a step, and the answer forms
// of its open approval gates, all through the REST API. A button is enabled only while its
// action applies to the execution's status (updated live); every outcome shows on the status
// line, and every refusal as a readable error (the problem's title, detail and field errors).
// While the connection is lost (`page.offline`) a failed read of the gates keeps the cards shown;
// they are read again when the page says "reconnected". The heading's gate badge counts the open
// gates, since the execution's status stays `running` while it waits for a person.

import { getJSON, postJSON } from "./api.js";
import { showError } from "./banner.js";
import { element } from "./format.js";
import { showOpenGates } from "./header.js";
import { forkDialog } from "./fork_dialog.js";
import { FieldError, schemaForm } from "./schema_form.js";

const CANCELLABLE = new Set(["pending", "running", "retrying", "waiting"]);
const RESUMABLE = new Set(["failed", "cancelled", "interrupted"]);
const FORKABLE = new Set(["succeeded", "failed", "cancelled", "interrupted"]);
const FINAL = new Set(["succeeded", "failed", "cancelled", "interrupted"]);
const GATE_EVENTS = new Set(["gate.opened", "gate.resolved", "execution.waiting", "execution.resumed", "execution.succeeded", "execution.failed", "execution.cancelled"]);

function cancelDialog(onConfirm) {
  const reason = element("input", { id: "cancel-reason", type: "text", maxlength: 1000, placeholder: "cancelled from the dashboard" });
  const dialog = element(
    "dialog",
    { className: "action-dialog", "aria-labelledby": "cancel-title" },
    element(
      "form",
      { method: "dialog" },
      element("h2", { id: "cancel-title" }, "Cancel this execution?"),
      element("p", {}, "Running steps are stopped; a cancelled execution can be resumed later."),
      element("label", { for: "cancel-reason" }, "Reason (optional)"),
      reason,
      element(
        "div",
        { className: "dialog-buttons" },
        // The only submit button: Enter in the reason field means "Cancel execution".
        element("button", { type: "button", onclick: () => dialog.close("keep") }, "Keep running"),
        element("button", { type: "submit", value: "cancel", className: "danger" }, "Cancel execution"),
      ),
    ),
  );
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "cancel") onConfirm(reason.value.trim());
    reason.value = "";
    dialog.returnValue = "";
  });
  return dialog;
}

function gateCard(page, gate, say, refresh) {
  const form = schemaForm(gate.schema || {}, "$.input");
  const problems = element("div", { className: "gate-problems", id: `gate-problems-${gate.gate_id}` });
  const reason = element("input", { id: `reject-reason-${gate.gate_id}`, type: "text", maxlength: 1000, "aria-describedby": problems.id });
  const reasonOk = () => {
    reason.removeAttribute("aria-invalid");
    problems.replaceChildren();
  };
  reason.addEventListener("input", () => {
    if (reason.getAttribute("aria-invalid") === "true" && reason.value.trim()) reasonOk();
  });
  const send = async (approve) => {
    problems.replaceChildren();
    const body = { approve, by: "dashboard" };
    if (approve) {
      try {
        body.input = form.read();
      } catch (error) {
        if (error instanceof FieldError) return form.showErrors([{ path: error.field.path, message: error.message }]);
        throw error;
      }
      form.showErrors([]);
    } else {
      if (!reason.value.trim()) {
        reason.setAttribute("aria-invalid", "true");
        reason.focus();
        problems.append(element("p", { className: "field-error", role: "alert" }, "A rejection needs a reason."));
        return;
      }
      reasonOk();
      body.reason = reason.value.trim();
    }
    try {
      const outcome = await postJSON(page.path(`/gates/${encodeURIComponent(gate.gate_id)}`), body);
      // The card goes away: focus moves to the status line saying what happened, not to <body>.
      const recorded = outcome.status === "recorded" && outcome.message ? outcome.message.split(": ").slice(1).join(": ") : "";
      say(recorded ? `Gate '${gate.gate_id}': ${recorded}` : `Gate '${gate.gate_id}' ${approve ? "approved" : "rejected"}.`, { focus: true });
      refresh();
    } catch (error) {
      if (error.errors && error.errors.some((item) => item.path.startsWith("$.input"))) {
        form.showErrors(error.errors);
        problems.replaceChildren(element("p", { className: "field-error", role: "alert" }, `${error.title}: fix the fields marked above.`));
      } else {
        showError(problems, error, `Gate ${gate.gate_id} could not be answered`);
      }
    }
  };
  const formElement = element(
    "form",
    { novalidate: true, className: "gate-form", onsubmit: (event) => { event.preventDefault(); send(true); } },
    form.element,
    element("button", { type: "submit", className: "approve" }, "Approve"),
  );
  return element(
    "article",
    { className: "gate", dataset: { gateId: gate.gate_id }, "aria-labelledby": `gate-title-${gate.gate_id}` },
    element("h3", { id: `gate-title-${gate.gate_id}` }, `Approval: `, element("span", { className: "mono" }, gate.gate_id)),
    gate.prompt ? element("p", { className: "gate-prompt" }, gate.prompt) : null,
    gate.deadline ? element("p", { className: "hint" }, `Times out at ${new Date(gate.deadline).toLocaleString()} (then: ${gate.on_timeout || "reject"})`) : null,
    formElement,
    element(
      "form",
      { novalidate: true, className: "gate-reject", onsubmit: (event) => { event.preventDefault(); send(false); } },
      element("label", { for: `reject-reason-${gate.gate_id}` }, "Reason to reject"),
      reason,
      element("button", { type: "submit", className: "danger" }, "Reject"),
    ),
    problems,
  );
}

/** Mount the action buttons and the open gates' forms in `container`. */
export function mount(page, container) {
  const status = element("div", { className: "action-status", role: "status", "aria-live": "polite", tabindex: -1 });
  const gates = element("section", { className: "gates", "aria-label": "Open approval gates", hidden: true });
  const gatesError = element("div", { className: "gates-error" });
  let cancelRequested = false; // "Cancel requested" is said until the execution has ended
  const say = (text, { focus = false } = {}) => {
    cancelRequested = false;
    status.textContent = text;
    if (focus) status.focus();
  };
  const fail = (error, what) => showError(status, error, what);

  const cancel = async (reason) => {
    say("Cancelling…");
    try {
      const outcome = await postJSON(page.path("/cancel"), reason ? { reason } : {});
      if (outcome.status === "cancelled") page.setStatus("cancelled");
      say(outcome.status === "cancelled" ? "Cancelled." : "Cancel requested; the execution stops shortly.");
      cancelRequested = outcome.status !== "cancelled";
    } catch (error) {
      fail(error, "Cancel failed");
    }
    update();
  };
  const dialog = cancelDialog(cancel);

  const resume = async () => {
    say("Resuming…");
    try {
      await postJSON(page.path("/resume"));
      page.setStatus("running");
      page.follow(page.lastSeq);
      say("Resumed: the steps that did not succeed run again.");
    } catch (error) {
      fail(error, "Resume failed");
    }
    update();
  };

  const fork = forkDialog(page, say);
  const buttons = {
    cancel: element("button", { type: "button", className: "danger", onclick: () => dialog.showModal() }, "Cancel…"),
    resume: element("button", { type: "button", onclick: resume }, "Resume"),
    fork: element("button", { type: "button", onclick: () => fork.open() }, "Fork…"),
  };

  function update() {
    buttons.cancel.disabled = !CANCELLABLE.has(page.status);
    buttons.resume.disabled = !RESUMABLE.has(page.status);
    buttons.fork.disabled = !FORKABLE.has(page.status);
    if (cancelRequested && FINAL.has(page.status)) say(page.status === "cancelled" ? "Cancelled." : `The execution ended ${page.status}.`);
  }

  let loading = null;
  const refreshGates = async () => {
    if (loading) return;
    loading = true;
    try {
      const list = await getJSON(page.path("/gates"));
      const open = list.gates.filter((gate) => gate.status === "open");
      const shown = new Set([...gates.querySelectorAll("[data-gate-id]")].map((card) => card.dataset.gateId));
      const wanted = new Set(open.map((gate) => gate.gate_id));
      for (const card of gates.querySelectorAll("[data-gate-id]")) if (!wanted.has(card.dataset.gateId)) card.remove();
      for (const gate of open) if (!shown.has(gate.gate_id)) gates.append(gateCard(page, gate, say, refreshGates));
      gatesError.replaceChildren();
      gates.hidden = open.length === 0;
      showOpenGates(open.length);
    } catch (error) {
      // Offline, the banner says so already: the cards stay as they were until "reconnected".
      if (page.offline || error.status === 0) return;
      gates.hidden = false;
      showError(gatesError, error, "The approval gates could not be read");
    } finally {
      loading = null;
    }
  };

  container.replaceChildren(buttons.cancel, buttons.resume, buttons.fork, status, dialog, fork.dialog);
  gates.append(gatesError);
  container.after(gates);
  update();
  page.addEventListener("document", () => {
    update();
    refreshGates();
  });
  page.addEventListener("events", ({ detail }) => {
    update();
    if (detail.events.some((event) => GATE_EVENTS.has(event.type))) refreshGates();
  });
  page.addEventListener("ended", update);
  page.addEventListener("reconnected", refreshGates);
}
