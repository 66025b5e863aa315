// Talking (docs/protocol.md, "Voice input"): speech.start, binary frames of
// 16 kHz PCM16, then speech.end (or speech.cancel). mic.js holds the
// microphone and the push-to-talk gestures; this is the utterance's life.
//
// An utterance is {clientId, stops, created, phase, sent, item, text, final}:
// phase "opening" (the browser is starting the microphone), "listening",
// "sending" (the last audio is on its way), "sent"; `item` is its provisional
// bubble, which shows what is heard until the server stores the query (its
// `message` event, with our client_id, replaces the bubble).

import { ensureConversation, offerAgain, titleFrom } from "./composer.js";
import { conversationNamed } from "./conversations.js";
import { setIcon } from "./icons.js";
import { Microphone, PushToTalk, micProblem, micUnavailable, showLevel } from "./mic.js";
import { announce, chat, follower, keepLast, list, showError } from "./page.js";
import { newClientId, speechCancelEvent, speechEndEvent, speechStartEvent } from "./protocol.js";
import { session } from "./session.js";
import { connection } from "./socket.js";
import { interruptPlayback, player } from "./speaking.js";
import { RECORDING_ERRORS, SPEECH_ERRORS } from "./wire.js";

const micButton = document.getElementById("mic");
const micStatus = document.getElementById("mic-status");
const micNote = document.getElementById("mic-note");
const micLevel = document.getElementById("mic-level");

const microphone = new Microphone();
let utterance = null; // the one being recorded
const heardOut = []; // sent, waiting for the server's answer; oldest first
const voiceFrames = []; // {owner, data}: frames waiting for the socket
let micBlocked = null; // why this page cannot record (a lasting problem, said in the note), or null
let handsFree = false; // hands-free mode (handsfree.js) has the microphone: one microphone, one mode
const KEEP_TRANSCRIPTS = 100;
// Errors about an utterance; nothing was stored (docs/protocol.md, "Errors").
const VOICE_ERRORS = new Set(SPEECH_ERRORS);
const ENDS_RECORDING = new Set(RECORDING_ERRORS);

// Inspectable by tests.
window.voiceMic = { state: "idle", level: 0, bytesSent: 0, transcripts: [] };

function sendVoice(owner, data) {
  voiceFrames.push({ owner, data });
  flushVoice();
}

/** Send the frames waiting for the socket, if it is open. */
export function flushVoice() {
  while (voiceFrames.length && connection.open) {
    const { owner, data } = voiceFrames.shift();
    owner.sent = true;
    if (data instanceof ArrayBuffer) window.voiceMic.bytesSent += data.byteLength;
    connection.send(data);
  }
}

function showMicState() {
  const state = utterance ? (utterance.phase === "opening" ? "opening" : "listening") : heardOut.length ? "heard" : "idle";
  chat.dataset.mic = state;
  window.voiceMic.state = state;
  micButton.setAttribute("aria-pressed", String(Boolean(utterance)));
  setIcon(micButton, utterance ? "mic-on" : "mic");
  micStatus.hidden = !utterance;
  if (!utterance) showMicLevel(0);
}

function showMicLevel(rms) {
  window.voiceMic.level = showLevel(micLevel, rms);
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

function showMicButton() {
  micButton.disabled = Boolean(micBlocked) || handsFree;
  micButton.title = micBlocked ?? (handsFree ? "Hands-free is on: just talk" : "Hold to talk (or hold Space)");
  micNote.textContent = micBlocked ?? "";
  micNote.hidden = !micBlocked;
}

function disableMic(reason) {
  micBlocked = reason;
  showMicButton();
}

function enableMic() {
  if (micUnavailable() || !micBlocked) return;
  micBlocked = null;
  showMicButton();
}

/** Hands-free mode takes the microphone (``taken``) or gives it back: the mic button is off meanwhile. */
export function micTaken(taken) {
  handsFree = taken;
  showMicButton();
}

/** Whether push-to-talk is recording (or opening the microphone to). */
export function talking() {
  return Boolean(utterance);
}

/** Whether push-to-talk is recording, or waiting for the server to answer what was said. */
export function talkPending() {
  return Boolean(utterance) || heardOut.length > 0;
}

/** Pressed: the microphone starts, and whatever this tab is saying stops, as for a typed query. */
function startTalking() {
  player.unlock(); // inside the gesture: the reply is to be heard
  showError("");
  const interrupted = interruptPlayback();
  const spoken = {
    clientId: newClientId(),
    stops: session.stops,
    created: false,
    phase: "opening",
    sent: false,
    text: "",
    final: false,
  };
  // Looks like the user's message it will become; its words arrive as they are heard.
  spoken.item = list.addUnstored("provisional", "", "Listening…", { beforeThinking: true });
  follower.following = true;
  follower.grew();
  utterance = spoken;
  showMicState();
  announce("Listening");
  microphone.onchunk = (pcm, rms) => {
    if (spoken.phase !== "listening" && spoken.phase !== "sending") return;
    sendVoice(spoken, pcm);
    if (utterance === spoken) showMicLevel(rms);
  };
  microphone.start().then(
    async () => {
      if (utterance !== spoken) return;
      spoken.phase = "listening";
      sendVoice(spoken, speechStartEvent(interrupted)); // waits for the socket if there is none yet
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
  spoken.stops = session.stops; // a Stop from now on is a Stop for its reply too
  heardOut.push(spoken);
  showMicState();
  noteProvisional(spoken, "Working out what you said…");
  await microphone.stop();
  if (!heardOut.includes(spoken)) return; // dropped meanwhile (the connection, an error)
  spoken.phase = "sent";
  sendVoice(spoken, speechEndEvent(spoken.clientId));
  session.sentAt = performance.now();
  list.startThinking();
}

/** Escape: the utterance is thrown away; nothing is stored. */
function cancelTalking() {
  const spoken = utterance;
  if (!spoken) return;
  const told = spoken.sent; // else its frames are still waiting here, and simply go
  dropUtterance(spoken);
  if (told) sendVoice(spoken, speechCancelEvent());
  announce("Cancelled");
}

/** What the server heard so far (or, ``final``, in all) of the utterance it is hearing. */
export function onTranscript(event) {
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
export function voiceStored(message) {
  const spoken = message.client_id ? heardOut.find((u) => u.clientId === message.client_id) : null;
  if (!spoken) return false;
  dropUtterance(spoken);
  session.replyWanted = spoken.stops;
  if (spoken.created) conversationNamed(titleFrom(message.text));
  return true;
}

/** An error about an utterance (nothing was stored): true if it was one. */
export function voiceRefused(event) {
  let spoken;
  if (VOICE_ERRORS.has(event.code)) {
    spoken = ENDS_RECORDING.has(event.code) && utterance?.sent ? utterance : heardOut[0] ?? utterance;
    if (!spoken) return true; // about audio, never about a typed query (hands-free audio, say)
  } else if (!connection.inFlight) {
    // Refused after it was heard (too many messages, too long): the words go to the box, to send again.
    spoken = heardOut[0];
    if (spoken?.final) offerAgain(spoken.text);
  }
  if (!spoken) return false;
  dropUtterance(spoken);
  list.stopThinking();
  return true;
}

/** The server forgets an utterance when the socket drops: those it had begun to hear are gone. */
export function voiceConnectionLost() {
  const lost = [utterance, ...heardOut].filter((spoken) => spoken?.sent);
  if (!lost.length) return;
  for (const spoken of lost) dropUtterance(spoken);
  list.stopThinking();
  showError("The connection dropped while you were talking. If your words do not appear once it is back, say them again.");
}

const pushToTalk = new PushToTalk(micButton, { start: startTalking, end: stopTalking, cancel: cancelTalking });

export function initMic() {
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
