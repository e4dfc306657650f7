// The execution page: read the summary, mount the panels, then follow the events live. The
// summary is the graph document (`GET /executions/{id}/graph`: execution_id, workflow, status,
// last_seq and one compact node per step, no outputs), so that a 10,000-step run loads fast;
// panels needing more (outputs, gates) read their own routes.

import { getJSON } from "./api.js";
import { showError } from "./banner.js";
import { showCreated } from "./header.js";
import { ExecutionPage } from "./page.js";
import * as actions from "./actions.js";
import * as graph from "./graph.js";
import * as journal from "./journal.js";
import * as stepPanel from "./step_panel.js";
import * as timeline from "./timeline.js";

function wireTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const choose = (chosen) => {
    for (const tab of tabs) {
      const selected = tab === chosen;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
      document.getElementById(tab.getAttribute("aria-controls")).hidden = !selected;
    }
    chosen.focus();
  };
  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => choose(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (step) choose(tabs[(index + step + tabs.length) % tabs.length]);
    });
  });
}

async function start() {
  const page = new ExecutionPage(document.body.dataset.executionId);
  showCreated();
  wireTabs();
  graph.mount(page, document.getElementById("graph"));
  stepPanel.mount(page, document.getElementById("step-panel"));
  timeline.mount(page, document.getElementById("timeline"));
  journal.mount(page, document.getElementById("journal"));
  actions.mount(page, document.getElementById("actions"));
  let summary;
  try {
    summary = await getJSON(page.path("/graph"));
  } catch (error) {
    showError(document.getElementById("graph"), error, "The execution could not be read");
    return;
  }
  page.setDocument(summary);
  page.follow(summary.last_seq);
}

start();
