// The chat page: one socket per conversation, reply text shown as it is
// written, speech played as it streams. The modules beside this one each do
// one job: protocol.js (wire format), player.js (gapless Web Audio), replay.js
// (stored replies), messages.js (the list), markdown.js and highlight.js
// (rendering, the spoken sentence), scroll.js (following the newest message),
// conversations.js (drawer, search, rename, delete), http.js (the page's views),
// mic.js (voice input: the microphone and the push-to-talk button).

import { conversationCreated, conversationNamed, closeDrawer, drawerOpen, initConversations } from "./conversations.js";
import { getJson, post } from "./http.js";
import { setIcon } from "./icons.js";
import { MessageList } from "./messages.js";
import { Microphone, PushToTalk, SAMPLE_RATE, micProblem, micUnavailable } from "./mic.js";
import { StreamPlayer } from "./player.js";
import { decodeAudioFrame, decodeBase64Chunk, socketUrl } from "./protocol.js";
import { ReplayPlayer } from "./replay.js";
import { Follower } from "./scroll.js";

const chat = document.getElementById("chat");
const form = document.getElementById("composer");
const input = document.getElementById("query");
const stopButton = document.getElementById("stop");
const muteButton = document.getElementById("mute");
const voicePicker = document.getElementById("voice-picker");
const speedPicker = document.getElementById("speed-picker");
const latencyBadge = document.getElementById("latency-badge");
const statusLine = document.getElementById("connection-status");
const errorLine = document.getElementById("chat-error");
const announcer = document.getElementById("announcer");
const micButton = document.getElementById("mic");
const micStatus = document.getElementById("mic-status");
const micNote = document.getElementById("mic-note");

// Bounds on what the page keeps, so that a tab open all day stays small.
const KEEP_REPLIES = 100; // window.voiceReplies entries
const KEEP_LATENCIES = 100; // window.voiceLatency entries
const KEEP_ANNOUNCED = 100; // ids of replies already announced
// The server's VOICE_MAX_QUERY_CHARS: a longer query is not sent (the box's maxlength can be got around).
const MAX_QUERY_CHARS = Number(chat.dataset.maxQueryChars) || Infinity;

const player = new StreamPlayer();
const replay = new ReplayPlayer(player);
const list = new MessageList(document.getElementById("messages"));
const follower = new Follower(list.list, document.getElementById("jump-latest"));
let conversationId = chat.dataset.conversationId || null;
let socket = null;
let reconnectDelay = 500;
let reconnectTimer = null;
// Queries not yet stored, oldest first: {payload, text, pending (element or null), stops}.
// One is in flight at a time; the next goes once the server has stored it.
const outbox = [];
let inFlight = null;
const playHere = new Set(); // ids of replies this tab asked for and still wants to hear
let stops = 0; // Stop presses so far: a reply asked before the latest one is not played
let replyWanted = null; // `stops` when the query whose reply comes next was stored
let sentAt = null; // performance.now() when Enter was pressed
const announced = new Set();

// Inspectable by tests and benchmarks.
window.voicePlayer = player;
window.voiceReplay = replay;
window.voiceLatency = []; // {messageId, ms}: Enter to first sound
window.voiceReplies = {}; // message id -> {audioEnd, done, bytes}

function keepLast(array, limit) {
  if (array.length > limit) array.splice(0, array.length - limit);
}

function record(messageId) {
  if (!(messageId in window.voiceReplies)) {
    window.voiceReplies[messageId] = {};
    const ids = Object.keys(window.voiceReplies); // integer keys: ascending, oldest first
    for (const old of ids.slice(0, Math.max(0, ids.length - KEEP_REPLIES))) delete window.voiceReplies[old];
  }
  return window.voiceReplies[messageId];
}

// --- Errors and announcements -----------------------------------------------------
function showError(text) {
  document.getElementById("chat-error-text").textContent = text;
  errorLine.hidden = !text;
}
document.getElementById("chat-error-dismiss").addEventListener("click", () => {
  showError("");
  input.focus();
});

function announce(text) {
  // Cleared first, so that the same words are announced again.
  announcer.textContent = "";
  requestAnimationFrame(() => {
    announcer.textContent = text;
  });
}

/** A finished reply is read out once, politely, whole (never token by token). */
function announceReply(message) {
  if (message.role !== "assistant" || message.status === "streaming" || announced.has(message.id)) return;
  if (message.status !== "complete" && message.status !== "audio_failed") return;
  announced.add(message.id);
  if (announced.size > KEEP_ANNOUNCED) announced.delete(announced.values().next().value);
  const item = list.item(message.id);
  const words = item?.querySelector(".message__text").textContent.trim() ?? "";
  if (words) announce(`Reply: ${words.length > 600 ? `${words.slice(0, 600)}…` : words}`);
}

// --- Drafts: the box survives a reload ---------------------------------------------------
// Per tab (sessionStorage), so that nothing typed stays behind on a shared computer.
const draftKey = () => `voice-draft:${conversationId ?? "new"}`;
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
function restoreDraft() {
  try {
    const draft = sessionStorage.getItem(draftKey());
    if (draft && !input.value) input.value = draft;
  } catch {
    // as above
  }
}

// --- Speaking ------------------------------------------------------------------
player.onchunkstart = (meta) => {
  list.highlight(meta.message_id, meta.text_start, meta.text_end);
  if (sentAt !== null && meta.message_id != null && playHere.has(meta.message_id)) {
    const ms = Math.round(performance.now() - sentAt);
    window.voiceLatency.push({ messageId: meta.message_id, ms });
    keepLast(window.voiceLatency, KEEP_LATENCIES);
    latencyBadge.textContent = `first sound ${ms} ms`;
    latencyBadge.hidden = false;
    console.info(`voice: first sound ${ms} ms after Enter`);
    sentAt = null;
  }
};
player.onidle = () => list.highlight(null);

function showPlaying() {
  const playing = player.playing || replay.playing;
  // Focus on the Stop button must not be lost when it hides.
  if (!playing && document.activeElement === stopButton) input.focus();
  stopButton.hidden = !playing;
  chat.dataset.playing = String(playing);
}
player.onstatechange = showPlaying;
replay.onstatechange = showPlaying;
replay.onprogress = (messageId, seconds, duration) => list.showProgress(messageId, seconds, duration, replay.playing);

/** Stop the reply this tab is playing; {message_id, heard_ms} of it, or null if nothing played. */
function interruptPlayback() {
  replay.stop();
  const messageId = player.playingMessageId;
  if (messageId == null) return null;
  const heard = player.stopMessage(messageId);
  playHere.delete(messageId); // its remaining chunks are not wanted
  return { message_id: messageId, heard_ms: heard };
}

function stopSpeech() {
  const cancel = { type: "cancel", ...(interruptPlayback() || {}) };
  player.stop();
  // Stop sticks: no chunk of any reply asked so far plays after this, whenever it arrives.
  playHere.clear();
  stops += 1;
  list.highlight(null);
  showError("");
  showPlaying();
  // A cancel only means something now: never queue it for a later connection.
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(cancel));
}

// --- Outbox ---------------------------------------------------------------------
function clientId() {
  // crypto.randomUUID needs a secure context; a plain-HTTP deployment has getRandomValues only.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function showPending(text) {
  document.getElementById("messages-empty")?.remove();
  // Shown until the server has stored it.
  const item = document.createElement("li");
  item.className = "message message--user message--pending";
  const bubble = document.createElement("div");
  bubble.className = "message__bubble";
  const body = document.createElement("p");
  body.className = "message__text";
  body.textContent = text;
  bubble.append(body);
  const note = document.createElement("div");
  note.className = "message__meta";
  note.textContent = "Not sent yet: waiting for the connection.";
  item.append(bubble, note);
  list.list.append(item);
  follower.grew();
  return item;
}

/** Send the oldest unsent query, if the socket is open and none is awaiting its confirmation. */
function flushOutbox() {
  if (inFlight || !outbox.length || !socket || socket.readyState !== WebSocket.OPEN) return;
  inFlight = outbox.shift();
  socket.send(inFlight.payload);
}

/** The server stored the query in flight (or refused it, with ``refused``): on to the next. */
function settleInFlight(refused = false) {
  if (!inFlight) return;
  const { text, pending } = inFlight;
  if (!refused) replyWanted = inFlight.stops;
  inFlight = null;
  pending?.remove();
  if (refused) {
    // Its text goes back to the box, unless the user is typing something else there.
    if (!input.value.trim()) input.value = text;
    list.stopThinking();
  } else if (input.value.trim() === text) {
    input.value = "";
    autosize();
  }
  saveDraft();
  flushOutbox();
}

// --- Socket --------------------------------------------------------------------
function connect() {
  if (!conversationId) return;
  clearTimeout(reconnectTimer);
  socket = new WebSocket(socketUrl(conversationId));
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    reconnectDelay = 500;
    statusLine.textContent = "";
    chat.dataset.connection = "open";
    if (inFlight) {
      // Sent on a connection that then dropped: it may or may not have been stored. Its
      // client_id makes sending it again safe: the server stores it at most once.
      outbox.unshift(inFlight);
      inFlight = null;
    }
    // Also on the first connection: what happened between rendering the page and joining.
    catchUp();
    flushOutbox();
    flushVoice();
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
    if (event.code === 4403 || event.code === 4404) {
      chat.dataset.connection = "closed";
      showError("You do not have access to this conversation.");
      return;
    }
    chat.dataset.connection = "reconnecting";
    voiceConnectionLost();
    statusLine.textContent = `Connection lost. Reconnecting in ${(reconnectDelay / 1000).toFixed(1)} s…`;
    reconnectTimer = setTimeout(connect, reconnectDelay);
    // Exponential backoff with jitter, so many tabs do not reconnect in step.
    reconnectDelay = Math.min(reconnectDelay * 2, 15000) * (0.8 + Math.random() * 0.4);
  };
}

/** What happened while the socket was not joined (finished replies, other tabs' queries). */
async function catchUp() {
  const unfinished = list.unfinishedIds();
  const after = unfinished.length ? Math.min(...unfinished) - 1 : list.lastId;
  try {
    const { messages } = await getJson(`/c/${conversationId}/messages/`, { after });
    for (const message of messages) {
      list.upsert(message);
      if (message.status !== "streaming") {
        record(message.id).done ??= { message_id: message.id, status: message.status, caughtUp: true };
      }
    }
    chat.dataset.caughtUp = String(Date.now());
    follower.grew();
  } catch (error) {
    showError(`Could not catch up after reconnecting: ${error.message}`);
  }
}

function onEvent(event) {
  switch (event.type) {
    case "message":
      onMessage(event);
      break;
    case "reply.delta":
      list.appendDelta(event.message_id, event.text);
      break;
    case "queued":
      list.showQueued(event.message_id, event.position, event.expected_wait_ms);
      break;
    case "audio.chunk":
      onAudio(decodeBase64Chunk(event));
      break;
    case "audio.end":
      record(event.message_id).audioEnd = event;
      list.setDuration(event.message_id, event.duration_ms);
      break;
    case "reply.done":
      record(event.message_id).done = event;
      chat.dataset.lastStatus = event.status;
      list.stopThinking();
      if (event.status === "interrupted" || event.status === "cancelled") {
        // Stopped from any tab: no more of it plays here.
        playHere.delete(event.message_id);
        player.stopMessage(event.message_id);
      }
      break;
    case "transcript":
      onTranscript(event);
      break;
    case "error":
      // Refused: nothing was stored (an utterance, or the typed query in flight).
      if (!event.message_id && !voiceRefused(event)) settleInFlight(true);
      showError(event.message);
      break;
    default:
      break; // audio.start: nothing to show
  }
}

function onMessage(event) {
  const message = event.message;
  if (message.role === "user") {
    if (event.requested_here) {
      if (!voiceStored(message)) settleInFlight();
      showError("");
    } else {
      // Another tab asked something: it interrupts what this tab is saying.
      const interrupted = interruptPlayback();
      if (interrupted && socket && socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({ type: "heard", ...interrupted }));
      }
    }
  }
  if (event.requested_here && message.role === "assistant" && message.status === "streaming") {
    list.stopThinking();
    if (replyWanted === stops) {
      playHere.add(message.id);
    } else if (replyWanted !== null && socket && socket.readyState === WebSocket.OPEN) {
      // Stop was pressed after its query went: the reply is not wanted at all.
      socket.send(JSON.stringify({ type: "cancel" }));
    }
    replyWanted = null;
  }
  if (message.role === "assistant" && message.status !== "streaming") {
    // Final. Its reply.done normally follows, but a full channel-layer queue can drop it: this is enough.
    record(message.id).done ??= { type: "reply.done", message_id: message.id, status: message.status, metrics: null };
  }
  list.upsert(message);
  announceReply(message);
  follower.grew();
}

function onAudio({ header, data }) {
  const received = record(header.message_id);
  received.bytes = (received.bytes || 0) + data.byteLength;
  if (playHere.has(header.message_id)) player.enqueue(header, data);
}

list.onrender = () => follower.grew();

// --- Sending --------------------------------------------------------------------
function pickedSettings() {
  return { voice: voicePicker.value, speed: speedPicker.value };
}

/** The conversation's name from its first query, as the server makes it (Conversation.title_from). */
function titleFrom(query) {
  const title = query.split(/\s+/).join(" ");
  return title.length > 80 ? `${title.slice(0, 79)}…` : title;
}

/** Create the conversation on its first query (null: not known yet, said aloud); true if created now. */
async function ensureConversation(firstQuery) {
  if (conversationId) return false;
  const created = await post(chat.dataset.createUrl, pickedSettings());
  forgetDraft(draftKey()); // kept under the conversation's own key from now on
  conversationId = String(created.id);
  chat.dataset.conversationId = conversationId;
  history.replaceState(null, "", created.url);
  // As the server names it from the first query; a spoken one is named once it is heard.
  conversationCreated(created.id, created.url, firstQuery === null ? "New conversation" : titleFrom(firstQuery));
  connect();
  return true;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  player.unlock(); // inside the gesture: required for sound on iOS/Safari
  const text = input.value.trim();
  if (!text) return;
  // Counted as the server counts (characters, not UTF-16 units). Refused here, it stays in the box
  // and nothing is sent: no conversation made for it, no frame too large for the socket.
  const length = text.length > MAX_QUERY_CHARS ? [...text].length : text.length;
  if (length > MAX_QUERY_CHARS) {
    showError(`Not sent: your message has ${length} characters; the limit is ${MAX_QUERY_CHARS}. It is still in the box.`);
    return;
  }
  showError("");
  const stopsBefore = stops; // a Stop from now on is a Stop for this query's reply too
  const query = { type: "query", text, client_id: clientId() };
  // Barge-in: the new query interrupts the reply being spoken; say how much of it was heard.
  const interrupted = interruptPlayback();
  if (interrupted) Object.assign(query, interrupted);
  sentAt = performance.now();
  try {
    await ensureConversation(text);
  } catch (error) {
    showError(`Not sent: ${error.message} Your message is still in the box.`);
    return;
  }
  const connected = socket && socket.readyState === WebSocket.OPEN && !inFlight && !outbox.length;
  // Connected: the box keeps the text until the server has stored it. Otherwise the
  // query waits, shown as pending, and the box is free for the next one.
  const pending = connected ? null : showPending(text);
  if (!connected) {
    input.value = "";
    autosize();
    saveDraft();
  }
  outbox.push({ payload: JSON.stringify(query), text, pending, stops: stopsBefore });
  flushOutbox(); // first: barge-in latency is measured from Enter to the other tabs' silence
  follower.following = true;
  list.startThinking();
});

function autosize() {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight + 2, 200)}px`;
}

input.addEventListener("input", () => {
  autosize();
  saveDraft();
});
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

// --- Talking -------------------------------------------------------------------
// Voice input (docs/protocol.md, "Voice input"): speech.start, binary frames of
// 16 kHz PCM16, then speech.end (or speech.cancel). An utterance is
// {clientId, stops, created, phase, sent, item, text, final}: phase "opening"
// (the browser is starting the microphone), "listening", "sending" (the last
// audio is on its way), "sent"; `item` is its provisional bubble, which shows
// what is heard until the server stores the query (its `message` event, with
// our client_id, replaces the bubble).
const microphone = new Microphone();
let utterance = null; // the one being recorded
const heardOut = []; // sent, waiting for the server's answer; oldest first
const voiceFrames = []; // {owner, data}: frames waiting for the socket
const KEEP_TRANSCRIPTS = 100;
// Errors about an utterance; nothing was stored (docs/protocol.md, "Errors").
const VOICE_ERRORS = new Set([
  "speech_not_started",
  "bad_audio_format",
  "utterance_too_long",
  "no_speech",
  "stt_failed",
  "stt_unavailable",
  "stt_timeout",
  "stt_busy",
  "speech_rate_limited",
]);
const RECORDING_ERRORS = new Set(["speech_not_started", "bad_audio_format", "utterance_too_long", "speech_rate_limited"]);

// Inspectable by tests.
window.voiceMic = { state: "idle", level: 0, bytesSent: 0, transcripts: [] };

function sendVoice(owner, data) {
  voiceFrames.push({ owner, data });
  flushVoice();
}

function flushVoice() {
  while (voiceFrames.length && socket && socket.readyState === WebSocket.OPEN) {
    const { owner, data } = voiceFrames.shift();
    owner.sent = true;
    if (data instanceof ArrayBuffer) window.voiceMic.bytesSent += data.byteLength;
    socket.send(data);
  }
}

function showMicState() {
  const state = utterance ? (utterance.phase === "opening" ? "opening" : "listening") : heardOut.length ? "heard" : "idle";
  chat.dataset.mic = state;
  window.voiceMic.state = state;
  micButton.setAttribute("aria-pressed", String(Boolean(utterance)));
  setIcon(micButton, utterance ? "mic-on" : "mic");
  micStatus.hidden = !utterance;
  if (!utterance) showLevel(0);
}

/** The meter follows the microphone's loudness: -60 dB (or less) is empty, 0 dB full. */
function showLevel(rms) {
  const level = rms > 0 ? Math.min(1, Math.max(0, (20 * Math.log10(rms) + 60) / 60)) : 0;
  window.voiceMic.level = level;
  const meter = document.getElementById("mic-level");
  meter.style.setProperty("--level", level.toFixed(3));
  meter.dataset.level = level.toFixed(2);
}

function showProvisional() {
  document.getElementById("messages-empty")?.remove();
  // Looks like the user's message it will become; its words arrive as they are heard.
  const item = document.createElement("li");
  item.className = "message message--user message--provisional";
  const bubble = document.createElement("div");
  bubble.className = "message__bubble";
  const body = document.createElement("p");
  body.className = "message__text";
  bubble.append(body);
  const note = document.createElement("div");
  note.className = "message__meta";
  note.textContent = "Listening…";
  item.append(bubble, note);
  list.list.insertBefore(item, document.getElementById("thinking"));
  follower.following = true;
  follower.grew();
  return item;
}

function noteProvisional(spoken, text) {
  spoken.item.querySelector(".message__meta").textContent = text;
}

/** Forget an utterance: its bubble, its frames not yet sent, the microphone if it is the one recording. */
function dropUtterance(spoken) {
  spoken.item.remove();
  const index = heardOut.indexOf(spoken);
  if (index >= 0) heardOut.splice(index, 1);
  for (let i = voiceFrames.length - 1; i >= 0; i--) if (voiceFrames[i].owner === spoken) voiceFrames.splice(i, 1);
  if (utterance === spoken) {
    utterance = null;
    pushToTalk.reset();
    microphone.release();
  }
  showMicState();
}

function disableMic(reason) {
  micButton.disabled = true;
  micButton.title = reason;
  micNote.textContent = reason;
  micNote.hidden = false;
}

function enableMic() {
  if (micUnavailable() || !micButton.disabled) return;
  micButton.disabled = false;
  micButton.title = "Hold to talk (or hold Space)";
  micNote.hidden = true;
}

/** Pressed: the microphone starts, and whatever this tab is saying stops, as for a typed query. */
function startTalking() {
  player.unlock(); // inside the gesture: the reply is to be heard
  showError("");
  const interrupted = interruptPlayback();
  const spoken = { clientId: clientId(), stops, created: false, phase: "opening", sent: false, text: "", final: false };
  spoken.item = showProvisional();
  utterance = spoken;
  showMicState();
  announce("Listening");
  microphone.onchunk = (pcm, rms) => {
    if (spoken.phase !== "listening" && spoken.phase !== "sending") return;
    sendVoice(spoken, pcm);
    if (utterance === spoken) showLevel(rms);
  };
  microphone.start().then(
    async () => {
      if (utterance !== spoken) return;
      spoken.phase = "listening";
      const start = { type: "speech.start", format: "pcm_s16le", sample_rate: SAMPLE_RATE, ...(interrupted || {}) };
      sendVoice(spoken, JSON.stringify(start)); // waits for the socket if there is none yet
      showMicState();
      try {
        spoken.created = await ensureConversation(null);
      } catch (error) {
        if (utterance === spoken || heardOut.includes(spoken)) dropUtterance(spoken);
        showError(`Not sent: ${error.message}`);
      }
    },
    (error) => {
      if (utterance !== spoken) return; // stopped while the browser was asking
      dropUtterance(spoken);
      const problem = micProblem(error);
      showError(problem.text);
      if (problem.lasting) disableMic(problem.text);
    },
  );
}

/** Released (or tapped again): the last audio goes, then speech.end; the server transcribes and answers. */
async function stopTalking() {
  const spoken = utterance;
  if (!spoken) return;
  if (spoken.phase === "opening") {
    dropUtterance(spoken); // let go before the microphone was even on: nothing was said
    return;
  }
  utterance = null;
  spoken.phase = "sending";
  spoken.stops = stops; // a Stop from now on is a Stop for its reply too
  heardOut.push(spoken);
  showMicState();
  noteProvisional(spoken, "Working out what you said…");
  await microphone.stop();
  if (!heardOut.includes(spoken)) return; // dropped meanwhile (the connection, an error)
  spoken.phase = "sent";
  sendVoice(spoken, JSON.stringify({ type: "speech.end", client_id: spoken.clientId }));
  sentAt = performance.now();
  list.startThinking();
}

/** Escape: the utterance is thrown away; nothing is stored. */
function cancelTalking() {
  const spoken = utterance;
  if (!spoken) return;
  const told = spoken.sent; // else its frames are still waiting here, and simply go
  dropUtterance(spoken);
  if (told) sendVoice(spoken, JSON.stringify({ type: "speech.cancel" }));
  announce("Cancelled");
}

function onTranscript(event) {
  window.voiceMic.transcripts.push({ text: event.text, final: event.final });
  keepLast(window.voiceMic.transcripts, KEEP_TRANSCRIPTS);
  const spoken = utterance?.phase === "listening" && !event.final ? utterance : heardOut.find((u) => !u.final);
  if (!spoken) return; // cancelled meanwhile
  spoken.final = event.final;
  spoken.text = event.text;
  spoken.item.querySelector(".message__text").textContent = event.text; // never as HTML
  if (event.final) noteProvisional(spoken, "Sending…");
  follower.grew();
}

/** The server stored a spoken query of this tab: it replaces its bubble. False if ``message`` is not one. */
function voiceStored(message) {
  const spoken = message.client_id ? heardOut.find((u) => u.clientId === message.client_id) : null;
  if (!spoken) return false;
  dropUtterance(spoken);
  replyWanted = spoken.stops;
  if (spoken.created) conversationNamed(titleFrom(message.text));
  return true;
}

/** An error about an utterance (nothing was stored): true if it was one. */
function voiceRefused(event) {
  let spoken;
  if (VOICE_ERRORS.has(event.code)) {
    spoken = RECORDING_ERRORS.has(event.code) && utterance?.sent ? utterance : heardOut[0] ?? utterance;
  } else if (!inFlight) {
    // Refused after it was heard (too many messages, too long): the words go to the box, to send again.
    spoken = heardOut[0];
    if (spoken?.final && !input.value.trim()) {
      input.value = spoken.text;
      autosize();
    }
  }
  if (!spoken) return false;
  dropUtterance(spoken);
  list.stopThinking();
  return true;
}

/** The server forgets an utterance when the socket drops: those it had begun to hear are gone. */
function voiceConnectionLost() {
  const lost = [utterance, ...heardOut].filter((spoken) => spoken?.sent);
  if (!lost.length) return;
  for (const spoken of lost) dropUtterance(spoken);
  list.stopThinking();
  showError("The connection dropped while you were talking. If your words do not appear once it is back, say them again.");
}

const pushToTalk = new PushToTalk(micButton, { start: startTalking, end: stopTalking, cancel: cancelTalking });

function initMic() {
  const unavailable = micUnavailable();
  if (unavailable) {
    disableMic(unavailable);
    return;
  }
  // Allowed again in the site settings, or a microphone plugged in: the button comes back.
  navigator.mediaDevices.addEventListener?.("devicechange", enableMic);
  navigator.permissions
    ?.query({ name: "microphone" })
    .then((status) => {
      status.addEventListener("change", () => status.state !== "denied" && enableMic());
    })
    .catch(() => {}); // not a permission this browser can be asked about
}

// --- Controls -------------------------------------------------------------------
stopButton.addEventListener("click", stopSpeech);
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || event.defaultPrevented || document.querySelector("dialog[open]")) return;
  if (drawerOpen()) closeDrawer();
  else stopSpeech();
});

muteButton.addEventListener("click", () => {
  const muted = !player.muted;
  player.setMuted(muted);
  // A toggle keeps its name; aria-pressed says which way it is.
  muteButton.setAttribute("aria-pressed", String(muted));
  setIcon(muteButton, muted ? "muted" : "volume");
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

function nameVoiceLanguages() {
  // "en-US" → "American English", in the reader's own language where the browser knows it.
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

// --- Message actions: copy, replay ---------------------------------------------------
/** One voice at a time: a replay stops a reply being spoken, as Stop does (the server hears of it). */
function silenceLiveSpeech() {
  if (player.playing) stopSpeech();
}

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

// --- Older messages -----------------------------------------------------------------
// The page shows the newest messages only; older ones load, a page at a time,
// when the reader scrolls up to the top (or presses "Show earlier messages").
const earlier = document.getElementById("messages-earlier");
let loadingEarlier = false;

async function loadEarlier() {
  if (loadingEarlier || !earlier?.isConnected || !conversationId) return;
  loadingEarlier = true;
  try {
    const page = await getJson(`/c/${conversationId}/messages/`, { before: list.firstId });
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

// --- Start ------------------------------------------------------------------------
initConversations({ id: conversationId, onError: showError });
nameVoiceLanguages();
restoreDraft();
autosize();
follower.toEnd("instant"); // a conversation opens at its newest message
showPlaying();
initMic();
connect();
