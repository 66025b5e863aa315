// Speaking: replies played as they stream (player.js) or from storage
// (replay.js), the Stop that silences them for good, and the time from Enter
// to the first sound.

import { setIcon } from "./icons.js";
import { chat, input, keepLast, list, showError } from "./page.js";
import { StreamPlayer } from "./player.js";
import { cancelEvent } from "./protocol.js";
import { ReplayPlayer } from "./replay.js";
import { session } from "./session.js";
import { connection } from "./socket.js";

const stopButton = document.getElementById("stop");
const muteButton = document.getElementById("mute");
const latencyBadge = document.getElementById("latency-badge");

// Bounds on what the page keeps, so that a tab open all day stays small.
const KEEP_REPLIES = 100; // window.voiceReplies entries
const KEEP_LATENCIES = 100; // window.voiceLatency entries

export const player = new StreamPlayer();
export const replay = new ReplayPlayer(player);
export const playHere = new Set(); // ids of replies this tab asked for and still wants to hear

// Inspectable by tests and benchmarks.
window.voicePlayer = player;
window.voiceReplay = replay;
window.voiceLatency = []; // {messageId, ms}: Enter to first sound
window.voiceReplies = {}; // message id -> {audioEnd, done, bytes}

/** What this tab received of reply ``messageId`` (window.voiceReplies). */
export function record(messageId) {
  if (!(messageId in window.voiceReplies)) {
    window.voiceReplies[messageId] = {};
    const ids = Object.keys(window.voiceReplies); // integer keys: ascending, oldest first
    for (const old of ids.slice(0, Math.max(0, ids.length - KEEP_REPLIES))) delete window.voiceReplies[old];
  }
  return window.voiceReplies[messageId];
}

player.onchunkstart = (meta) => {
  list.highlight(meta.message_id, meta.text_start, meta.text_end);
  if (session.sentAt !== null && meta.message_id != null && playHere.has(meta.message_id)) {
    const ms = Math.round(performance.now() - session.sentAt);
    window.voiceLatency.push({ messageId: meta.message_id, ms });
    keepLast(window.voiceLatency, KEEP_LATENCIES);
    latencyBadge.textContent = `first sound ${ms} ms`;
    latencyBadge.hidden = false;
    console.info(`voice: first sound ${ms} ms after Enter`);
    session.sentAt = null;
  }
};
player.onidle = () => list.highlight(null);

export function showPlaying() {
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
export function interruptPlayback() {
  replay.stop();
  const messageId = player.playingMessageId;
  if (messageId == null) return null;
  const heard = player.stopMessage(messageId);
  playHere.delete(messageId); // its remaining chunks are not wanted
  return { message_id: messageId, heard_ms: heard };
}

/** Stop (the button, Escape): silence now, and no reply asked so far plays here after it. */
export function stopSpeech() {
  const cancel = cancelEvent(interruptPlayback());
  player.stop();
  // Stop sticks: no chunk of any reply asked so far plays after this, whenever it arrives.
  playHere.clear();
  session.stops += 1;
  list.highlight(null);
  showError("");
  showPlaying();
  // A cancel only means something now: never queue it for a later connection. (A query still
  // waiting to be sent takes its own cancel along: see ChatSocket.flushOutbox.)
  connection.send(cancel);
}

/** One voice at a time: a replay stops a reply being spoken, as Stop does (the server hears of it). */
export function silenceLiveSpeech() {
  if (player.playing) stopSpeech();
}

/** A chunk of a reply's speech arrived: played if this tab still wants to hear that reply. */
export function onAudio({ header, data }) {
  const received = record(header.message_id);
  received.bytes = (received.bytes || 0) + data.byteLength;
  if (playHere.has(header.message_id)) player.enqueue(header, data);
}

stopButton.addEventListener("click", stopSpeech);

muteButton.addEventListener("click", () => {
  const muted = !player.muted;
  player.setMuted(muted);
  // A toggle keeps its name; aria-pressed says which way it is.
  muteButton.setAttribute("aria-pressed", String(muted));
  setIcon(muteButton, muted ? "muted" : "volume");
});
