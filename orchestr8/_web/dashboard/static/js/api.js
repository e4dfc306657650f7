// The REST API as the dashboard reads it: JSON in, JSON out, problems turned into readable errors.
// Requests go to this origin with the session cookie (same-origin), so no key ever lives in script.

/** An API answer that was not a success: the problem document's words, ready to show. */
export class ApiError extends Error {
  constructor(status, title, detail, errors = [], raw = "") {
    super(detail ? `${title}: ${detail}` : title);
    this.name = "ApiError";
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.errors = errors; // [{path, message}] for validation problems
    this.raw = raw; // the browser's own words for a network failure, for a tooltip only
  }
}

const UNREACHABLE = "Is it still running? The page tries again when the connection is back.";

async function readProblem(response) {
  const text = await response.text();
  try {
    const problem = JSON.parse(text);
    const title = problem.title || `HTTP ${response.status}`;
    return new ApiError(response.status, title, problem.detail || "", problem.errors || []);
  } catch {
    const detail = text.trim().slice(0, 300) || response.statusText;
    return new ApiError(response.status, `HTTP ${response.status}`, detail);
  }
}

async function send(method, url, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    // The browser's words ("Failed to fetch") mean nothing to a reader; they stay in a tooltip.
    throw new ApiError(0, "The server cannot be reached", UNREACHABLE, [], String(error.message || error));
  }
  if (response.status === 401 && document.body.dataset.page !== "login") {
    window.location.assign(`/ui/login?next=${encodeURIComponent(location.pathname + location.search)}`);
  }
  if (!response.ok) throw await readProblem(response);
  if (response.status === 204) return null;
  return response.json();
}

/** GET a JSON document; throws ApiError with the problem's title and detail. */
export function getJSON(url) {
  return send("GET", url);
}

/** POST a JSON body (or none) and read the JSON answer; throws ApiError. */
export function postJSON(url, body) {
  return send("POST", url, body);
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
