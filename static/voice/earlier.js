// Older messages: the page shows the newest messages only; older ones load, a
// page at a time, when the reader scrolls up to the top (or presses "Show
// earlier messages").

import { getJson } from "./http.js";
import { list, showError } from "./page.js";
import { session } from "./session.js";

const earlier = document.getElementById("messages-earlier");
let loadingEarlier = false;

async function loadEarlier() {
  if (loadingEarlier || !earlier?.isConnected || !session.conversationId) return;
  loadingEarlier = true;
  try {
    const page = await getJson(`/c/${session.conversationId}/messages/`, { before: list.firstId });
    // Where the reader was stays put: the page grows above it.
    const scroller = list.list;
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    list.addEarlier(page.messages);
    scroller.scrollTop = scroller.scrollHeight - fromBottom;
    if (page.has_more) {
      // Still in view (short messages, a tall window): observed afresh, the next page comes too.
      earlierObserver.unobserve(earlier);
      earlierObserver.observe(earlier);
    } else {
      if (earlier.contains(document.activeElement)) scroller.focus({ preventScroll: true });
      earlier.remove();
    }
  } catch (error) {
    showError(`Could not load earlier messages: ${error.message}`);
  } finally {
    loadingEarlier = false;
  }
}

const earlierObserver = new IntersectionObserver(
  (entries) => {
    if (entries.some((entry) => entry.isIntersecting)) loadEarlier();
  },
  { root: list.list, rootMargin: "300px 0px 0px 0px" },
);
if (earlier) {
  earlierObserver.observe(earlier);
  document.getElementById("load-earlier").addEventListener("click", loadEarlier);
}
