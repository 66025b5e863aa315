// The parts of the chat page that every module uses: the message list and its
// scrolling, the message box, the error line and the screen-reader announcer.

import { MessageList } from "./messages.js";
import { Follower } from "./scroll.js";

export const chat = document.getElementById("chat");
export const input = document.getElementById("query");
export const list = new MessageList(document.getElementById("messages"));
export const follower = new Follower(list.list, document.getElementById("jump-latest"));

const errorLine = document.getElementById("chat-error");
const announcer = document.getElementById("announcer");

export function keepLast(array, limit) {
  if (array.length > limit) array.splice(0, array.length - limit);
}

/** The error line says ``text``; an empty one hides it. */
export function showError(text) {
  document.getElementById("chat-error-text").textContent = text;
  errorLine.hidden = !text;
}

/** Said by a screen reader, politely. */
export function announce(text) {
  // Cleared first, so that the same words are announced again.
  announcer.textContent = "";
  requestAnimationFrame(() => {
    announcer.textContent = text;
  });
}
