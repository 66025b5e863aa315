// The chat page: one socket per conversation, text shown at once, speech
// played as it streams. User and model text is only ever set as textContent.

import { decodeAudioFrame, decodeBase64Chunk, socketUrl } from "./protocol.js";
import { StreamPlayer } from "./player.js";

const chat = document.getElementById("chat");
const list = document.getElementById("messages");
const form = document.getElementById("composer");
const input = document.getElementById("query");
const stopButton = document.getElementById("stop");
const muteButton = document.getElementById("mute");
const statusLine = document.getElementById("connection-status");
const errorLine = document.getElementById("chat-error");
const csrfToken = form.closest("main").querySelector("input[name=csrfmiddlewaretoken]").value;

const player = new StreamPlayer();
window.voicePlayer = player; // inspectable playback log (tests, benchmarks)

let conversationId = chat.dataset.conversationId || null;
let socket = null;
let reconnectDelay = 500;
let reconnectTimer = null;
const outbox = []; // queries typed while disconnected, sent on reconnect
const playHere = new Set(); // ids of replies this tab asked for
let sentAt = null; // performance.now() when Enter was pressed
window.voiceLatency = []; // Enter-to-first-sound per reply, in ms

// --- Messages ------------------------------------------------------------
function messageElement(message) {
  let item = list.querySelector(`[data-message-id="${message.id}"]`);
  if (!item) {
    document.getElementById("messages-empty")?.remove();
    item = document.createElement("li");
    item.className = `message message--${message.role}`;
    item.dataset.messageId = String(message.id);
    const text = document.createElement("p");
    text.className = "message__text";
    item.append(text);
    if (message.role === "assistant") {
      const meta = document.createElement("div");
      meta.className = "message__meta";
      item.append(meta);
    }
    list.append(item);
  }
  return item;
}

function renderMessage(message) {
  const item = messageElement(message);
  item.dataset.status = message.status;
  item.querySelector(".message__text").textContent = message.text;
  if (message.role === "assistant") renderMeta(item, message);
  item.scrollIntoView({ block: "end" });
}

function renderMeta(item, message) {
  const meta = item.querySelector(".message__meta");
  meta.replaceChildren();
  if (message.audio_url) {
    item.dataset.audioUrl = message.audio_url;
    const replay = document.createElement("button");
    replay.type = "button";
    replay.className = "message__replay";
    replay.setAttribute("aria-label", "Replay this reply");
    replay.textContent = "▶ Replay";
    meta.append(replay);
  }
  if (message.status !== "complete") {
    const status = document.createElement("span");
    status.className = "message__status";
    status.textContent = message.status === "streaming" ? "…" : message.status.replace("_", " ");
    meta.append(status);
  }
}

function appendDelta(messageId, text) {
  const item = list.querySelector(`[data-message-id="${messageId}"]`);
  if (item) item.querySelector(".message__text").textContent += text;
}

function showError(text) {
  errorLine.textContent = text;
  errorLine.hidden = !text;
}

function setSpeaking(messageId) {
  for (const item of list.querySelectorAll(".message--speaking")) item.classList.remove("message--speaking");
  if (messageId == null) return;
  list.querySelector(`[data-message-id="${messageId}"]`)?.classList.add("message--speaking");
}

player.onchunkstart = (meta) => {
  setSpeaking(meta.message_id);
  if (sentAt !== null && meta.message_id != null) {
    const latency = Math.round(performance.now() - sentAt);
    window.voiceLatency.push({ messageId: meta.message_id, ms: latency });
    console.info(`voice: first sound ${latency} ms after Enter`);
    sentAt = null;
  }
};
player.onidle = () => setSpeaking(null);

// --- Socket --------------------------------------------------------------
function connect() {
  if (!conversationId) return;
  clearTimeout(reconnectTimer);
  socket = new WebSocket(socketUrl(conversationId));
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    reconnectDelay = 500;
    statusLine.textContent = "";
    chat.dataset.connection = "open";
    while (outbox.length && socket.readyState === WebSocket.OPEN) socket.send(outbox.shift());
  };
  socket.onmessage = (frame) => {
    if (frame.data instanceof ArrayBuffer) onAudio(decodeAudioFrame(frame.data));
    else onEvent(JSON.parse(frame.data));
  };
  socket.onclose = (event) => {
    chat.dataset.connection = "closed";
    if (event.code === 4401) {
      location.assign(`/accounts/login/?next=${encodeURIComponent(location.pathname)}`);
      return;
    }
    if (event.code === 4403) {
      showError("You do not have access to this conversation.");
      return;
    }
    statusLine.textContent = `Reconnecting in ${Math.round(reconnectDelay / 1000)} s…`;
    chat.dataset.connection = "reconnecting";
    reconnectTimer = setTimeout(connect, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, 15000);
  };
}

function onEvent(event) {
  switch (event.type) {
    case "message":
      if (event.requested_here && event.message.role === "assistant") playHere.add(event.message.id);
      renderMessage(event.message);
      break;
    case "reply.delta":
      appendDelta(event.message_id, event.text);
      break;
    case "audio.chunk":
      onAudio(decodeBase64Chunk(event));
      break;
    case "reply.done":
      playHere.delete(event.message_id);
      chat.dataset.lastStatus = event.status;
      break;
    case "error":
      showError(event.message);
      break;
    default:
      break; // audio.start, audio.end: nothing to show
  }
}

function onAudio({ header, data }) {
  if (playHere.has(header.message_id)) player.enqueue(header, data);
}

function send(payload) {
  const text = JSON.stringify(payload);
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(text);
  else outbox.push(text);
}

function addToSidebar(url, title) {
  const sidebar = document.getElementById("conversation-list");
  for (const link of sidebar.querySelectorAll("a[aria-current]")) link.removeAttribute("aria-current");
  const item = document.createElement("li");
  const link = document.createElement("a");
  link.href = url;
  link.textContent = title;
  link.setAttribute("aria-current", "page");
  item.append(link);
  sidebar.prepend(item);
}

async function ensureConversation(firstQuery) {
  if (conversationId) return;
  const response = await fetch(chat.dataset.createUrl, {
    method: "POST",
    headers: { "X-CSRFToken": csrfToken },
    credentials: "same-origin",
  });
  if (!response.ok) throw new Error(`Could not start a conversation (${response.status}).`);
  const created = await response.json();
  conversationId = String(created.id);
  chat.dataset.conversationId = conversationId;
  history.replaceState(null, "", created.url);
  addToSidebar(created.url, firstQuery.length > 80 ? `${firstQuery.slice(0, 79)}…` : firstQuery);
  connect();
}

// --- Controls ------------------------------------------------------------
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  player.unlock(); // inside the gesture: required for sound on iOS/Safari
  const text = input.value.trim();
  if (!text) return;
  showError("");
  player.stop();
  sentAt = performance.now();
  try {
    await ensureConversation(text);
  } catch (error) {
    showError(error.message);
    return;
  }
  send({ type: "query", text });
  input.value = "";
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

function stopSpeech() {
  player.stop();
  // A cancel is only meaningful now: never queue it for a later connection.
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "cancel" }));
}

stopButton.addEventListener("click", stopSpeech);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") stopSpeech();
});

muteButton.addEventListener("click", () => {
  const muted = !player.muted;
  player.setMuted(muted);
  muteButton.setAttribute("aria-pressed", String(muted));
  muteButton.textContent = muted ? "Unmute" : "Mute";
});

list.addEventListener("click", (event) => {
  const replay = event.target.closest(".message__replay");
  if (!replay) return;
  const item = replay.closest("[data-message-id]");
  player.unlock();
  player
    .playUrl(item.dataset.audioUrl, { message_id: Number(item.dataset.messageId) })
    .catch((error) => showError(`Replay failed: ${error.message}`));
});

connect();
