// The steps of the execution with their status, updated live.

import { element, statusBadge } from "./format.js";

const STEP_STATUS = {
  "step.started": "running",
  "retry.scheduled": "retrying",
  "step.succeeded": "succeeded",
  "step.failed": "failed",
  "step.skipped": "skipped",
  "step.cancelled": "cancelled",
  "gate.opened": "waiting",
};

export function mount(page, container) {
  const rows = new Map();
  const setStatus = (stepId, status) => {
    const row = rows.get(stepId);
    if (!row) return;
    row.querySelector(".status").replaceWith(statusBadge(status));
  };
  page.addEventListener("document", ({ detail }) => {
    const list = element("ul", { className: "step-list" });
    rows.clear();
    for (const [stepId, step] of Object.entries(detail.steps)) {
      const row = element(
        "li",
        { dataset: { stepId } },
        element("button", { type: "button", className: "step-name", onclick: () => page.select(stepId) }, stepId),
        " ",
        statusBadge(step.status),
      );
      rows.set(stepId, row);
      list.append(row);
    }
    container.replaceChildren(list);
  });
  page.addEventListener("events", ({ detail }) => {
    for (const event of detail.events) {
      const status = STEP_STATUS[event.type];
      if (status && event.step_id) setStatus(event.step_id, status);
    }
  });
}
