// Messages a person must see: the connection banner at the top, and errors in place of content.

const banner = () => document.getElementById("banner");

/** Show the top banner with a message (kind "warning" or "error"). */
export function showBanner(message, kind = "warning") {
  const element = banner();
  element.textContent = message;
  element.dataset.kind = kind;
  element.hidden = false;
}

/** Hide the top banner. */
export function hideBanner() {
  const element = banner();
  element.hidden = true;
  element.textContent = "";
}

/** A problem's detail as a sentence for people: the API's "; see errors" pointer dropped. */
function readableDetail(error) {
  const detail = error.detail || (!error.title && error.message) || "";
  return detail.replace(/;?\s*see errors\.?$/, "");
}

/** The field errors not already said by the detail (a bad parameter names itself in both). */
function unsaid(errors, detail) {
  return (errors || []).filter((item) => !(item.message && detail.includes(item.message)));
}

/** Replace `container`'s content with a readable error (an ApiError's title, detail and paths). */
export function showError(container, error, what = "Something went wrong") {
  const box = document.createElement("div");
  box.className = "error-message";
  box.setAttribute("role", "alert");
  if (error.raw) box.title = error.raw;
  const heading = document.createElement("strong");
  heading.textContent = `${what}: ${error.title || error.name || "error"}`;
  box.append(heading);
  const detail = readableDetail(error);
  if (detail) {
    const paragraph = document.createElement("p");
    paragraph.textContent = detail;
    box.append(paragraph);
  }
  const errors = unsaid(error.errors, detail);
  if (errors.length) {
    const list = document.createElement("ul");
    for (const item of errors) {
      const entry = document.createElement("li");
      entry.textContent = `${item.path}: ${item.message}`;
      list.append(entry);
    }
    box.append(list);
  }
  container.replaceChildren(box);
  return box;
}
