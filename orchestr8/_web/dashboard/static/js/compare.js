// Two executions side by side.

import { getJSON, query } from "./api.js";
import { showError } from "./banner.js";
import { element } from "./format.js";

async function load() {
  const { first, second } = document.body.dataset;
  const container = document.getElementById("comparison");
  if (!first || !second) return;
  try {
    const comparison = await getJSON(`/executions/compare${query({ a: first, b: second })}`);
    container.replaceChildren(element("pre", {}, JSON.stringify(comparison, null, 2)));
  } catch (error) {
    showError(container, error, "The executions could not be compared");
  }
}

load();
