// An expanded group of the graph: a map's items or a loop's iterations, listed with their status
// a page at a time from `GET /executions/{id}/graph/{step}/members`, each selectable for the step
// panel; a sub-workflow or plan links to its child execution instead. Live events update the
// listed members' badges in place.

import { getJSON, query } from "./api.js";
import { showError } from "./banner.js";
import { element, shortId, statusBadge } from "./format.js";
import { describeGroup } from "./graph_draw.js";

const PAGE = 200;

/** The member list of the graph: `open(node)` shows a group's members, `close()` hides them. */
export class MemberList {
  constructor(page, container, onClose) {
    this.page = page;
    this.container = container;
    this.onClose = onClose;
    this.stepId = null;
    this.rows = new Map();
    container.hidden = true;
  }

  /** Show the members of group node `node` (its first page). */
  async open(node) {
    this.stepId = node.id;
    this.rows.clear();
    const close = element("button", { type: "button", className: "members-close", onclick: () => this.close() }, "Close");
    this.summary = element("p", { className: "members-summary" }, describeGroup(node.group, node.status));
    this.list = element("ul", { className: "members-list", "aria-label": `Members of ${node.id}` });
    this.more = element("div", { className: "members-more" });
    const heading = element("h2", { id: "members-heading" }, `${node.id}: ${node.group.kind === "loop" ? "iterations" : node.group.kind === "map" ? "items" : "child execution"}`);
    this.container.replaceChildren(element("div", { className: "members-head" }, heading, close), this.summary, this.list, this.more);
    this.container.setAttribute("aria-labelledby", "members-heading");
    this.container.hidden = false;
    await this.load(node, 0);
  }

  /** Read one page of members after `offset` and append it. */
  async load(node, offset) {
    let document;
    try {
      document = await getJSON(`${this.page.path(`/graph/${encodeURIComponent(node.id)}/members`)}${query({ offset, limit: PAGE })}`);
    } catch (error) {
      showError(this.list, error, `The members of ${node.id} could not be read`);
      return;
    }
    if (this.stepId !== node.id) return;
    if (document.child_execution_id) {
      this.list.append(
        element(
          "li",
          {},
          element("a", { href: `/ui/executions/${encodeURIComponent(document.child_execution_id)}` }, `Open child execution ${shortId(document.child_execution_id)}`),
        ),
      );
    } else if (!document.members.length && offset === 0) {
      this.list.append(element("li", { className: "empty" }, "No members yet."));
    }
    for (const member of document.members) this.list.append(this.row(member));
    this.more.replaceChildren();
    if (document.next_offset !== null) {
      const left = document.total - document.next_offset;
      this.more.append(
        element("button", { type: "button", onclick: () => this.load(node, document.next_offset) }, `Show ${Math.min(left, PAGE)} more of ${left}`),
      );
    }
  }

  /** One member's row: a button selecting it, with its status badge. */
  row(member) {
    const button = element(
      "button",
      { type: "button", className: "member", onclick: () => this.page.select(member.id) },
      element("span", { className: "mono" }, member.id),
      " ",
      statusBadge(member.status),
      member.attempts > 1 ? ` ${member.attempts} attempts` : "",
    );
    if (this.page.selected === member.id) button.setAttribute("aria-current", "true");
    const row = element("li", { dataset: { memberId: member.id } }, button);
    this.rows.set(member.id, row);
    return row;
  }

  /** A live status for member `memberId`, if it is listed. */
  setStatus(memberId, status) {
    const row = this.rows.get(memberId);
    if (row) row.querySelector(".status").replaceWith(statusBadge(status));
  }

  /** The group's counts changed: update the summary line. */
  setGroup(node) {
    if (this.stepId === node.id && this.summary) this.summary.textContent = describeGroup(node.group, node.status);
  }

  /** Mark the selected member, if listed. */
  select(stepId) {
    for (const [memberId, row] of this.rows) {
      const button = row.querySelector("button");
      if (memberId === stepId) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  }

  /** Hide the list. */
  close() {
    const stepId = this.stepId;
    this.stepId = null;
    this.rows.clear();
    this.container.hidden = true;
    this.container.replaceChildren();
    if (stepId) this.onClose(stepId);
  }
}
