// The chat socket's wire format; see docs/protocol.md. Its vocabulary (event
// types, close codes, statuses, error codes) is wire.js, generated from the
// server's; the client events the page sends are built here, and only here.

import { CLIENT, SPEECH_FORMAT, SPEECH_RATE } from "./wire.js";

const decoder = new TextDecoder();

/** Split a binary audio frame into its JSON header and its audio bytes. */
export function decodeAudioFrame(arrayBuffer) {
  const view = new DataView(arrayBuffer);
  const headerLength = view.getUint32(0, false);
  const header = JSON.parse(decoder.decode(new Uint8Array(arrayBuffer, 4, headerLength)));
  return { header, data: new Uint8Array(arrayBuffer, 4 + headerLength) };
}

/** The audio bytes of a base64 audio chunk (a SERVER.AUDIO_CHUNK JSON event). */
export function decodeBase64Chunk(event) {
  const binary = atob(event.data);
  const data = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) data[i] = binary.charCodeAt(i);
  const { data: _ignored, type: _type, ...header } = event;
  return { header, data };
}

export function socketUrl(conversationId) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/chat/${conversationId}/`;
}

// --- Client events: each a JSON text frame, ready to send --------------------------
// `interrupted` is {message_id, heard_ms}: the reply this tab was playing and how much of it
// was heard (or null: it was playing none).

/** The page's own id for a query (`client_id`): sending it again after a dropped connection is safe. */
export function newClientId() {
  // crypto.randomUUID needs a secure context; a plain-HTTP deployment has getRandomValues only.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function frame(type, fields) {
  return JSON.stringify({ type, ...fields });
}

/** A typed query; it interrupts the reply being spoken (barge-in). */
export function queryEvent(text, clientId, interrupted = null) {
  return frame(CLIENT.QUERY, { text, client_id: clientId, ...interrupted });
}

/** Stop: the reply in production is cancelled (with how much of it was heard, if it was playing). */
export function cancelEvent(interrupted = null) {
  return frame(CLIENT.CANCEL, interrupted);
}

/** Another tab asked something, and this tab stopped playing a reply: how much of it was heard. */
export function heardEvent(interrupted) {
  return frame(CLIENT.HEARD, interrupted);
}

/** Hands-free: reply ``messageId`` had played ``playedMs`` when the microphone had sent ``micSamples`` (echo canceller). */
export function playbackPositionEvent(messageId, playedMs, micSamples) {
  return frame(CLIENT.PLAYBACK_POSITION, { message_id: messageId, played_ms: playedMs, mic_samples: micSamples });
}

/** An utterance starts (audio frames follow); like a query, it interrupts the reply being spoken. */
export function speechStartEvent(interrupted = null) {
  return frame(CLIENT.SPEECH_START, { format: SPEECH_FORMAT, sample_rate: SPEECH_RATE, ...interrupted });
}

/** The utterance is over: the server transcribes it, stores it under ``clientId`` and answers it. */
export function speechEndEvent(clientId) {
  return frame(CLIENT.SPEECH_END, { client_id: clientId });
}

/** The utterance is thrown away: nothing is stored. */
export function speechCancelEvent() {
  return frame(CLIENT.SPEECH_CANCEL, {});
}

/** Hands-free mode starts: the open microphone's frames follow for as long as it is on; the server finds the turns. */
export function listenStartEvent() {
  return frame(CLIENT.LISTEN_START, { format: SPEECH_FORMAT, sample_rate: SPEECH_RATE });
}

/** Hands-free mode ends: a turn not yet ended is dropped. */
export function listenStopEvent() {
  return frame(CLIENT.LISTEN_STOP, {});
}
