// The buttons each message carries: copy (a message, a code block) and its
// replay (play/pause, the seek slider).

import { setIcon } from "./icons.js";
import { announce, list, showError } from "./page.js";
import { replay, silenceLiveSpeech } from "./speaking.js";

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    showError("Copying needs the clipboard permission; select the text instead.");
    return;
  }
  setIcon(button, "check");
  announce("Copied");
  setTimeout(() => setIcon(button, "copy"), 1500);
}

list.list.addEventListener("click", (event) => {
  const button = event.target.closest("button");
  if (!button) return;
  const item = button.closest(".message[data-message-id]");
  if (!item) return;
  const messageId = Number(item.dataset.messageId);
  if (button.classList.contains("message__copy")) {
    const text = item.classList.contains("message--assistant")
      ? list.source(messageId)
      : item.querySelector(".message__text").textContent;
    copy(text, button);
  } else if (button.classList.contains("code-copy")) {
    copy(button.closest("pre").querySelector("code").textContent, button);
  } else if (button.classList.contains("replay__toggle")) {
    silenceLiveSpeech();
    replay.toggle(messageId, item.dataset.audioUrl).catch((error) => showError(`Replay failed: ${error.message}`));
  }
});

list.list.addEventListener("input", (event) => {
  if (!event.target.classList.contains("replay__seek")) return;
  const item = event.target.closest(".message[data-message-id]");
  silenceLiveSpeech();
  replay
    .seek(Number(item.dataset.messageId), item.dataset.audioUrl, Number(event.target.value) / 1000)
    .catch((error) => showError(`Replay failed: ${error.message}`));
});
