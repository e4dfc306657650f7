// The executions list: newest first, a page at a time.

import { getJSON, query } from "./api.js";
import { showError } from "./banner.js";
import { element, shortId, statusBadge, timestamp } from "./format.js";

async function load() {
  const container = document.getElementById("executions");
  const form = document.getElementById("filters");
  const status = form.elements.status.value;
  try {
    const page = await getJSON(`/executions${query({ status, limit: 50 })}`);
    const body = element("tbody");
    for (const item of page.items) {
      body.append(
        element(
          "tr",
          { dataset: { executionId: item.execution_id } },
          element("td", {}, element("a", { href: `/ui/executions/${item.execution_id}`, className: "mono" }, shortId(item.execution_id))),
          element("td", {}, item.workflow),
          element("td", {}, statusBadge(item.status)),
          element("td", {}, timestamp(item.created_at)),
        ),
      );
    }
    const head = element("thead", {}, element("tr", {}, ...["Execution", "Workflow", "Status", "Created"].map((name) => element("th", { scope: "col" }, name))));
    container.replaceChildren(page.items.length ? element("table", {}, head, body) : element("p", { className: "empty" }, "No executions yet."));
  } catch (error) {
    showError(container, error, "The executions could not be listed");
  }
}

document.getElementById("filters").addEventListener("change", load);
load();
