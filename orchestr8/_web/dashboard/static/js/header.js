// The execution page's heading, beyond what the server rendered: the creation time in the
// reader's local time (the ISO value stays in the tooltip and `datetime`), and a second badge
// counting the open approval gates, because the execution's status stays `running` while it
// waits for a person to answer one.

import { timestamp } from "./format.js";

/** Show the heading's creation time in local time; the UTC ISO value stays as its title. */
export function showCreated() {
  const created = document.getElementById("execution-created");
  if (!created) return;
  const iso = created.getAttribute("datetime");
  created.textContent = timestamp(iso);
  created.title = iso;
}

/** Show "‖ N gate(s) open" beside the status while `count` gates wait for an answer. */
export function showOpenGates(count) {
  const badge = document.getElementById("execution-gates");
  if (!badge) return;
  badge.hidden = count === 0;
  badge.textContent = count === 1 ? "1 gate open" : `${count} gates open`;
}
