// The composer: the message box (its text kept as a draft across reloads),
// sending a typed query (the first one creates the conversation), and the
// voice and speed the replies are spoken with.

import { conversationCreated } from "./conversations.js";
import { post } from "./http.js";
import { chat, follower, input, list, showError } from "./page.js";
import { newClientId, queryEvent } from "./protocol.js";
import { session } from "./session.js";
import { connection } from "./socket.js";
import { interruptPlayback, player } from "./speaking.js";
import { TITLE_CHARS } from "./wire.js";

const form = document.getElementById("composer");
const voicePicker = document.getElementById("voice-picker");
const speedPicker = document.getElementById("speed-picker");
// The server's VOICE_MAX_QUERY_CHARS: a longer query is not sent. Not the box's maxlength, which would cut a
// pasted text short without a word: the box keeps it all, and says it is too long as soon as it is.
const MAX_QUERY_CHARS = Number(chat.dataset.maxQueryChars) || Infinity;
let tooLongTold = false;

/** Counted as the server counts (characters, not UTF-16 units). */
function queryLength(text) {
  return text.length > MAX_QUERY_CHARS ? [...text].length : text.length;
}
function tooLong(length) {
  return `your message has ${length} characters; the limit is ${MAX_QUERY_CHARS}. It is still in the box.`;
}
function checkLength() {
  const length = queryLength(input.value.trim());
  if (length > MAX_QUERY_CHARS) {
    // Said once as it crosses the limit (the error is an alert: not again at every key).
    if (!tooLongTold) showError(`Too long to send: ${tooLong(length)} Shorten it to send it.`);
    tooLongTold = true;
  } else if (tooLongTold) {
    showError("");
    tooLongTold = false;
  }
}

// --- Drafts: the box survives a reload ---------------------------------------------------
// Per tab (sessionStorage), so that nothing typed stays behind on a shared computer.
const draftKey = () => `voice-draft:${session.conversationId ?? "new"}`;
function forgetDraft(key) {
  try {
    sessionStorage.removeItem(key);
  } catch {
    // storage disabled: the box still holds the text
  }
}
function saveDraft() {
  if (!input.value.trim()) {
    forgetDraft(draftKey());
    return;
  }
  try {
    sessionStorage.setItem(draftKey(), input.value);
  } catch {
    // storage full or disabled: as above
  }
}
export function restoreDraft() {
  try {
    const draft = sessionStorage.getItem(draftKey());
    if (draft && !input.value) input.value = draft;
  } catch {
    // as above
  }
}

/** The box grows with its text, up to a limit. */
export function autosize() {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight + 2, 200)}px`;
}

// --- Sending --------------------------------------------------------------------
function pickedSettings() {
  return { voice: voicePicker.value, speed: speedPicker.value };
}

/** The conversation's name from its first query, as the server makes it (Conversation.title_from). */
export function titleFrom(query) {
  const title = query.split(/\s+/).join(" ");
  return title.length > TITLE_CHARS ? `${title.slice(0, TITLE_CHARS - 1)}…` : title;
}

/** Create the conversation on its first query (null: not known yet, said aloud); true if created now. */
export async function ensureConversation(firstQuery) {
  if (session.conversationId) return false;
  const created = await post(chat.dataset.createUrl, pickedSettings());
  forgetDraft(draftKey()); // kept under the conversation's own key from now on
  session.conversationId = String(created.id);
  chat.dataset.conversationId = session.conversationId;
  history.replaceState(null, "", created.url);
  // As the server names it from the first query; a spoken one is named once it is heard.
  conversationCreated(created.id, created.url, firstQuery === null ? "New conversation" : titleFrom(firstQuery));
  connection.connect();
  return true;
}

/** Words the server refused go back to the box, to send again, unless the user is typing something else there. */
export function offerAgain(text) {
  if (input.value.trim()) return;
  input.value = text;
  autosize();
}

/** The server stored the typed query in flight (or refused it, with ``refused``): on to the next. */
export function settleQuery(refused = false) {
  const entry = connection.settle();
  if (!entry) return;
  const { text, pending } = entry;
  if (!refused) session.replyWanted = entry.stops;
  pending?.remove();
  if (refused) {
    offerAgain(text);
    list.stopThinking();
  } else if (input.value.trim() === text) {
    input.value = "";
    autosize();
  }
  saveDraft();
  connection.flushOutbox();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  player.unlock(); // inside the gesture: required for sound on iOS/Safari
  const text = input.value.trim();
  if (!text) return;
  // Refused here, it stays in the box and nothing is sent: no conversation made for it, no frame too large
  // for the socket.
  const length = queryLength(text);
  if (length > MAX_QUERY_CHARS) {
    showError(`Not sent: ${tooLong(length)}`);
    return;
  }
  showError("");
  const stopsBefore = session.stops; // a Stop from now on is a Stop for this query's reply too
  // Barge-in: the new query interrupts the reply being spoken; it says how much of it was heard.
  const payload = queryEvent(text, newClientId(), interruptPlayback());
  session.sentAt = performance.now();
  try {
    await ensureConversation(text);
  } catch (error) {
    showError(`Not sent: ${error.message} Your message is still in the box.`);
    return;
  }
  const connected = connection.open && !connection.inFlight && !connection.waiting;
  // Connected: the box keeps the text until the server has stored it. Otherwise the
  // query waits, shown as pending, and the box is free for the next one.
  const pending = connected ? null : list.addUnstored("pending", text, "Not sent yet: waiting for the connection.");
  if (!connected) {
    follower.grew();
    input.value = "";
    autosize();
    saveDraft();
  }
  // First: barge-in latency is measured from Enter to the other tabs' silence.
  connection.ask({ payload, text, pending, stops: stopsBefore });
  follower.following = true;
  list.startThinking();
});

input.addEventListener("input", () => {
  autosize();
  saveDraft();
  checkLength();
});
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

// --- Voice and speed ----------------------------------------------------------------
for (const picker of [voicePicker, speedPicker]) {
  picker.addEventListener("change", async () => {
    if (!session.conversationId) return; // sent when the conversation is created
    try {
      await post(`/c/${session.conversationId}/settings/`, pickedSettings());
      showError("");
    } catch (error) {
      showError(`Could not save the setting: ${error.message}`);
    }
  });
}

/** "en-US" → "American English", in the reader's own language where the browser knows it. */
export function nameVoiceLanguages() {
  let names;
  try {
    names = new Intl.DisplayNames([navigator.language, "en"], { type: "language" });
  } catch {
    return; // the server's "(en-US)" stays
  }
  for (const option of voicePicker.querySelectorAll("option[data-language]")) {
    const language = option.dataset.language;
    let name = language;
    try {
      name = names.of(language) ?? language;
    } catch {
      // not a language tag the browser knows: keep the code
    }
    option.textContent = `${option.textContent.replace(/ \([^)]*\)$/, "")} · ${name}`;
  }
}
