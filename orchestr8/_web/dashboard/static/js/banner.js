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

/** Replace `container`'s content with a readable error (an ApiError's title, detail and paths). */
export function showError(container, error, what = "Something went wrong") {
  const box = document.createElement("div");
  box.className = "error-message";
  box.setAttribute("role", "alert");
  const heading = document.createElement("strong");
  heading.textContent = `${what}: ${error.title || error.name || "error"}`;
  box.append(heading);
  if (error.detail || (!error.title && error.message)) {
    const detail = document.createElement("p");
    detail.textContent = error.detail || error.message;
    box.append(detail);
  }
  if (error.errors && error.errors.length) {
    const list = document.createElement("ul");
    for (const item of error.errors) {
      const entry = document.createElement("li");
      entry.textContent = `${item.path}: ${item.message}`;
      list.append(entry);
    }
    box.append(list);
  }
  container.replaceChildren(box);
  return box;
}
