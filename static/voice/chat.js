// The chat page: one socket per conversation, text shown at once, speech
// played as it streams. User and model text is only ever set as text
// (textContent / text nodes), never parsed as HTML.

import { decodeAudioFrame, decodeBase64Chunk, socketUrl } from "./protocol.js";
import { StreamPlayer } from "./player.js";

const chat = document.getElementById("chat");
const list = document.getElementById("messages");
const form = document.getElementById("composer");
const input = document.getElementById("query");
const stopButton = document.getElementById("stop");
const muteButton = document.getElementById("mute");
const voicePicker = document.getElementById("voice-picker");
const speedPicker = document.getElementById("speed-picker");
const latencyBadge = document.getElementById("latency-badge");
const statusLine = document.getElementById("connection-status");
const errorLine = document.getElementById("chat-error");
const csrfToken = chat.querySelector("input[name=csrfmiddlewaretoken]").value;

const player = new StreamPlayer();
let conversationId = chat.dataset.conversationId || null;
let socket = null;
let reconnectDelay = 500;
let reconnectTimer = null;
const outbox = []; // queries typed while disconnected, sent on reconnect
const playHere = new Set(); // ids of replies this tab asked for
const replyText = new Map(); // message id -> full reply text so far
let sentAt = null; // performance.now() when Enter was pressed

// Inspectable by tests and benchmarks.
window.voicePlayer = player;
window.voiceLatency = []; // {messageId, ms}: Enter to first sound
window.voiceReplies = {}; // message id -> {audioEnd, done}

for (const item of list.querySelectorAll(".message--assistant")) {
  replyText.set(Number(item.dataset.messageId), item.querySelector(".message__text").textContent);
}

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
  if (message.role === "assistant") {
    replyText.set(message.id, message.text);
    renderMeta(item, message);
  }
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
  replyText.set(messageId, (replyText.get(messageId) || "") + text);
  const item = list.querySelector(`[data-message-id="${messageId}"]`);
  if (item && !item.classList.contains("message--speaking")) {
    item.querySelector(".message__text").textContent = replyText.get(messageId);
  }
}

function showPending(text) {
  document.getElementById("messages-empty")?.remove();
  const item = document.createElement("li");
  item.className = "message message--user message--pending";
  const body = document.createElement("p");
  body.className = "message__text";
  body.textContent = text;
  const note = document.createElement("div");
  note.className = "message__meta";
  note.textContent = "Waiting for the connection; will send on reconnect.";
  item.append(body, note);
  list.append(item);
}

function showError(text) {
  errorLine.textContent = text;
  errorLine.hidden = !text;
}

// --- Speaking indicator and sentence highlight -----------------------------
function highlight(messageId, start, end) {
  for (const item of list.querySelectorAll(".message--speaking")) {
    item.classList.remove("message--speaking");
    const id = Number(item.dataset.messageId);
    if (replyText.has(id)) item.querySelector(".message__text").textContent = replyText.get(id);
  }
  if (messageId == null) return;
  const item = list.querySelector(`[data-message-id="${messageId}"]`);
  if (!item) return;
  item.classList.add("message--speaking");
  const text = replyText.get(messageId);
  if (text === undefined || start == null) return;
  const mark = document.createElement("mark");
  mark.textContent = text.slice(start, end);
  item
    .querySelector(".message__text")
    .replaceChildren(document.createTextNode(text.slice(0, start)), mark, document.createTextNode(text.slice(end)));
}

player.onchunkstart = (meta) => {
  highlight(meta.message_id, meta.text_start, meta.text_end);
  if (sentAt !== null && meta.message_id != null && playHere.has(meta.message_id)) {
    const ms = Math.round(performance.now() - sentAt);
    window.voiceLatency.push({ messageId: meta.message_id, ms });
    latencyBadge.textContent = `first sound ${ms} ms`;
    latencyBadge.hidden = false;
    console.info(`voice: first sound ${ms} ms after Enter`);
    sentAt = null;
  }
};
player.onidle = () => highlight(null);

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
    for (const pending of list.querySelectorAll(".message--pending")) pending.remove();
    while (outbox.length && socket.readyState === WebSocket.OPEN) socket.send(outbox.shift());
  };
  socket.onmessage = (frame) => {
    if (frame.data instanceof ArrayBuffer) onAudio(decodeAudioFrame(frame.data));
    else onEvent(JSON.parse(frame.data));
  };
  socket.onclose = (event) => {
    if (event.code === 4401) {
      location.assign(`/accounts/login/?next=${encodeURIComponent(location.pathname)}`);
      return;
    }
    if (event.code === 4403) {
      chat.dataset.connection = "closed";
      showError("You do not have access to this conversation.");
      return;
    }
    chat.dataset.connection = "reconnecting";
    statusLine.textContent = `Connection lost. Reconnecting in ${(reconnectDelay / 1000).toFixed(1)} s…`;
    reconnectTimer = setTimeout(connect, reconnectDelay);
    // Exponential backoff with jitter, so many tabs do not reconnect in step.
    reconnectDelay = Math.min(reconnectDelay * 2, 15000) * (0.8 + Math.random() * 0.4);
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
    case "audio.end":
      record(event.message_id).audioEnd = event;
      break;
    case "reply.done":
      record(event.message_id).done = event;
      chat.dataset.lastStatus = event.status;
      break;
    case "error":
      showError(event.message);
      break;
    default:
      break; // audio.start: nothing to show
  }
}

function record(messageId) {
  window.voiceReplies[messageId] ??= {};
  return window.voiceReplies[messageId];
}

function onAudio({ header, data }) {
  const received = record(header.message_id);
  received.bytes = (received.bytes || 0) + data.byteLength;
  if (playHere.has(header.message_id)) player.enqueue(header, data);
}

async function post(url, fields) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "X-CSRFToken": csrfToken },
    body: new URLSearchParams(fields),
    credentials: "same-origin",
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = body.errors ? Object.values(body.errors).flat().join(" ") : response.statusText;
    throw new Error(detail || `Request failed (${response.status}).`);
  }
  return body;
}

function pickedSettings() {
  return { voice: voicePicker.value, speed: speedPicker.value };
}

async function ensureConversation(firstQuery) {
  if (conversationId) return;
  const created = await post(chat.dataset.createUrl, pickedSettings());
  conversationId = String(created.id);
  chat.dataset.conversationId = conversationId;
  history.replaceState(null, "", created.url);
  addToSidebar(created.url, firstQuery.length > 80 ? `${firstQuery.slice(0, 79)}…` : firstQuery);
  connect();
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
  input.value = "";
  const payload = JSON.stringify({ type: "query", text });
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(payload);
  } else {
    outbox.push(payload);
    showPending(text);
  }
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

function stopSpeech() {
  player.stop();
  // A cancel only means something now: never queue it for a later connection.
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

for (const picker of [voicePicker, speedPicker]) {
  picker.addEventListener("change", async () => {
    if (!conversationId) return; // sent when the conversation is created
    try {
      await post(`/c/${conversationId}/settings/`, pickedSettings());
      showError("");
    } catch (error) {
      showError(`Could not save the setting: ${error.message}`);
    }
  });
}

list.addEventListener("click", (event) => {
  const replay = event.target.closest(".message__replay");
  if (!replay) return;
  const item = replay.closest("[data-message-id]");
  player.unlock();
  const messageId = Number(item.dataset.messageId);
  player
    .playUrl(item.dataset.audioUrl, { message_id: messageId })
    .catch((error) => showError(`Replay failed: ${error.message}`));
});

connect();
