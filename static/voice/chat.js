// The chat page: one socket per conversation, reply text shown as it is
// written, speech played as it streams. This module wires together the ones
// that each do one job:
//   socket.js         the socket (joined again when it drops) and the outbox of typed queries
//   events.js         what the server says on it, dispatched
//   composer.js       the message box, its draft, sending a query, the voice and speed pickers
//   voice-input.js    talking: an utterance from the mic button to the stored query
//   handsfree.js      hands-free: the microphone left open, the server finding the turns
//   speaking.js       replies played (live or stored), Stop, the latency badge
//   message-actions.js, earlier.js   copy and replay buttons; older messages
//   page.js, session.js              what they share: the list, the error line; the conversation's state
//   protocol.js, wire.js             the wire format and its vocabulary (wire.js is generated)
// and below them: messages.js (the list), markdown.js and highlight.js (rendering, the spoken
// sentence), scroll.js (following the newest message), player.js and replay.js (audio),
// conversations.js (drawer, search, rename, delete), http.js (the page's views), mic.js (the
// microphone, its level meter and the push-to-talk button).

import { autosize, nameVoiceLanguages, restoreDraft } from "./composer.js";
import { closeDrawer, drawerOpen, initConversations } from "./conversations.js";
import "./earlier.js";
import { catchUp, onEvent } from "./events.js";
import { handsFreeConnectionLost, initHandsFree, resumeHandsFree, showHandsFree } from "./handsfree.js";
import "./message-actions.js";
import { follower, input, list, showError } from "./page.js";
import { session } from "./session.js";
import { connection } from "./socket.js";
import { onAudio, player, showPlaying, stopSpeech } from "./speaking.js";
import { flushVoice, initMic, voiceConnectionLost } from "./voice-input.js";

connection.oncatchup = catchUp;
// Joined (again): push-to-talk's waiting frames first, then hands-free mode starts again if it is on.
connection.onopen = () => {
  flushVoice();
  resumeHandsFree();
};
connection.onevent = onEvent;
connection.onaudio = onAudio;
connection.onlost = () => {
  voiceConnectionLost();
  handsFreeConnectionLost();
};
// Playback started or stopped: the Stop button, and hands-free's "Speaking".
player.onstatechange = () => {
  showPlaying();
  showHandsFree();
};
list.onrender = () => follower.grew();

document.getElementById("chat-error-dismiss").addEventListener("click", () => {
  showError("");
  input.focus();
});

// Escape stops speech, as the Stop button does, unless it closes the drawer (or a dialog does).
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || event.defaultPrevented || document.querySelector("dialog[open]")) return;
  if (drawerOpen()) closeDrawer();
  else stopSpeech();
});

initConversations({ id: session.conversationId, onError: showError });
nameVoiceLanguages();
restoreDraft();
autosize();
follower.toEnd("instant"); // a conversation opens at its newest message
showPlaying();
initMic();
initHandsFree();
connection.connect();
