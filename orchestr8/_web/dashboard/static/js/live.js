// An execution's events, live, over the API's WebSocket: a cursor (`after`) so that a reconnect
// loses nothing and repeats nothing, a banner while the connection is down, and batching, so that
// a thousand events a second cost one DOM update per animation frame, not a thousand.

import { getJSON } from "./api.js";
import { hideBanner, showBanner } from "./banner.js";

const FINISHED = 1000;
const RETRYABLE = new Set([1001, 1006, 1011, 1013]);

/**
 * Follow `executionId`'s events after seq `after`; `onBatch(events)` gets them in seq order, at
 * most once per animation frame. `onEnd(code, reason)` is called when the stream ends for good
 * (the execution finished: 1000; interrupted or not running anywhere: 4409). `onLost()` is
 * called when the connection drops and a reconnect is scheduled, `onReconnect()` when the stream
 * opens again after such a loss.
 * Returns { close(), get last() }.
 */
export function followEvents(executionId, after, onBatch, onEnd = () => {}, { onLost = () => {}, onReconnect = () => {} } = {}) {
  let last = after;
  let socket = null;
  let queue = [];
  let scheduled = false;
  let closed = false;
  let delay = 250;
  let timer = null;
  let lost = false;

  const flush = () => {
    scheduled = false;
    if (!queue.length) return;
    const batch = queue;
    queue = [];
    onBatch(batch);
  };

  // A handshake refused before the socket opened may mean the session ended (signed out in
  // another tab, the server's key changed): an API call then answers 401, and api.js sends the
  // browser to the login page instead of reconnecting here forever.
  const reconnect = (wasOpen) => {
    const again = () => {
      if (!closed) connect();
    };
    if (wasOpen) again();
    else getJSON("/executions?limit=1").then(again, again);
  };

  const connect = () => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}/executions/${encodeURIComponent(executionId)}/events?after=${last}`;
    socket = new WebSocket(url);
    let opened = false;
    socket.addEventListener("open", () => {
      opened = true;
      delay = 250;
      hideBanner();
      if (lost) {
        lost = false;
        onReconnect();
      }
    });
    socket.addEventListener("message", (message) => {
      const event = JSON.parse(message.data);
      if (event.seq <= last) return;
      last = event.seq;
      queue.push(event);
      if (!scheduled) {
        scheduled = true;
        requestAnimationFrame(flush);
      }
    });
    socket.addEventListener("close", (close) => {
      flush();
      if (closed) return;
      if (close.code === FINISHED || !RETRYABLE.has(close.code)) {
        closed = true;
        onEnd(close.code, close.reason);
        return;
      }
      showBanner(`Connection to the server lost; reconnecting from event ${last}…`);
      if (!lost) {
        lost = true;
        onLost();
      }
      timer = setTimeout(() => reconnect(opened), delay);
      delay = Math.min(delay * 2, 5000);
    });
  };

  connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      if (socket) socket.close(1000);
    },
    get last() {
      return last;
    },
  };
}
