// Hands-free (docs/protocol.md, "Hands-free"): the microphone stays open and
// the server finds the turns. The toggle button next to the mic button turns
// it on (listen.start, then every chunk as a binary frame) and off
// (listen.stop); a status line says what happens (Listening, Hearing you,
// Thinking, Speaking) with the level meter; each turn shows as a provisional
// bubble, as push-to-talk makes, until its query is stored. Per tab; it
// survives a reconnect (listen.start again); while it is on, push-to-talk
// waits (one microphone, one mode).

import { ensureConversation, offerAgain, titleFrom } from "./composer.js";
import { conversationNamed } from "./conversations.js";
import { Microphone, micProblem, micUnavailable, showLevel } from "./mic.js";
import { announce, chat, follower, keepLast, list, showError } from "./page.js";
import { heardEvent, listenStartEvent, listenStopEvent, playbackPositionEvent } from "./protocol.js";
import { session } from "./session.js";
import { connection } from "./socket.js";
import { interruptPlayback, player } from "./speaking.js";
import { micTaken, talkPending, talking } from "./voice-input.js";
import { LISTEN_ERRORS, LISTEN_NOTE, LISTEN_OFF, LISTENING, SPEECH_ERRORS, TURN_PHASE } from "./wire.js";

const button = document.getElementById("hands-free");
const statusLine = document.getElementById("handsfree-status");
const stateText = document.getElementById("handsfree-state");
const noteText = document.getElementById("handsfree-note");
const meter = document.getElementById("handsfree-level");

// The words of listen.state and listen.turn (docs/protocol.md).
// What the status line says in each state (window.voiceHandsFree.state, chat.dataset.handsfree).
const LABELS = {
  off: "",
  opening: "Starting the microphone…",
  listening: "Listening",
  hearing: "Hearing you",
  thinking: "Thinking",
  speaking: "Speaking",
};
const KEEP = 100; // events kept in window.voiceHandsFree, turn ids remembered
const STRAY_MS = 3000; // audio sent this recently may still be refused after the mode ended
const IDLE_TEXT = "Hands-free turned off after a few quiet minutes.";
const LIMIT_TEXT = "Hands-free is on in too many of your tabs or windows: turn it off in one of them first.";
// What the status line adds when the server listens without something (listen.state's reason).
const NOTES = {
  [LISTEN_NOTE.NO_ECHO_CANCELLER]: "Echo cancelling is off: if it hears its own voice, use headphones.",
};

const microphone = new Microphone();
const listenErrors = new Set(LISTEN_ERRORS);
const speechErrors = new Set(SPEECH_ERRORS);
let wanted = false; // the button is on
let attempt = 0; // bumped by every start and stop: a late answer of the browser is for nobody
let micOpen = false; // the microphone records
let startSent = false; // listen.start went on this socket: the microphone's frames follow it
let serverListening = false; // the server said it listens (listen.state listening)
let stopsUnanswered = 0; // listen.stop sent on this socket whose "off" has not come back
let lastFrameAt = -Infinity;
let samplesSent = 0; // since listen.start: the server places its echo canceller's reference by it
let created = false; // the conversation was made for this mode: its first stored turn names it
let listenErrorShown = false; // the server's own words about a refused listen.start are on the error line
const turns = new Map(); // turn_id -> {id, phase, item, text, final}: shown, not stored yet
const seen = []; // ids of recent turns, stored or not: their queries are this tab's
let replyAfter = null; // the id of a stored turn's query: Thinking until its reply sounds (or ends)

// Inspectable by tests.
// turns: the listen.turn events; ducked: the playback.duck events, each with whether it paused a reply here;
// listening: the server said it listens on this socket.
window.voiceHandsFree = {
  on: false,
  state: "off",
  listening: false,
  turns: [],
  ducked: [],
  transcripts: [],
  bytesSent: 0,
  positionsSent: 0,
  level: 0,
};

/** Listening, or hearing a turn, or waiting for its reply, or speaking it: derived, never stored. */
function currentState() {
  if (!wanted) return "off";
  if (!micOpen) return "opening";
  const phases = [...turns.values()].map((turn) => turn.phase);
  if (phases.includes(TURN_PHASE.SPEAKING)) return "hearing";
  if (phases.includes(TURN_PHASE.ENDED) || replyAfter !== null) return "thinking";
  return player.playing ? "speaking" : "listening";
}

/** Show the mode as it is now; also whenever playback starts or stops (chat.js). */
export function showHandsFree() {
  // Its reply sounds: no longer thinking.
  if (replyAfter !== null && player.playing && player.playingMessageId > replyAfter) replyAfter = null;
  const state = currentState();
  button.setAttribute("aria-pressed", String(wanted));
  statusLine.hidden = !wanted;
  statusLine.dataset.state = state;
  stateText.textContent = LABELS[state];
  chat.dataset.handsfree = state;
  Object.assign(window.voiceHandsFree, { on: wanted, state });
  if (!micOpen) level(0);
}

function note(text) {
  noteText.textContent = text;
  noteText.hidden = !text;
}

function level(rms) {
  window.voiceHandsFree.level = showLevel(meter, rms);
}

function sendStart() {
  if (startSent || !wanted || !micOpen) return;
  startSent = connection.send(listenStartEvent()); // if the socket is down, on its return (resumeHandsFree)
  samplesSent = 0;
}

/**
 * Live audio: sent while the socket is open and listening, dropped (never queued) while it is not. While a
 * reply sounds, each frame is followed by where its playback is: the frame has just left the microphone, so
 * the two are read at one moment, and the server's echo canceller lines the reply up with the microphone.
 */
function sendFrame(pcm) {
  if (!startSent || !connection.send(pcm)) return;
  lastFrameAt = performance.now();
  window.voiceHandsFree.bytesSent += pcm.byteLength;
  samplesSent += pcm.byteLength / 2;
  const playing = player.playingMessageId;
  if (playing != null && player.duckedId === null) {
    connection.send(playbackPositionEvent(playing, player.heardMs(playing), samplesSent));
    window.voiceHandsFree.positionsSent += 1;
  }
}

/** The button: the microphone opens (inside the gesture), the conversation is made if need be, listen.start. */
async function turnOn() {
  if (talking()) {
    showError("Send or cancel what you are saying first: push-to-talk has the microphone.");
    return;
  }
  player.unlock(); // inside the gesture: the replies are to be heard
  showError("");
  const mine = ++attempt;
  wanted = true;
  created = false;
  listenErrorShown = false;
  micTaken(true);
  showHandsFree();
  microphone.onchunk = (pcm, rms) => {
    sendFrame(pcm);
    level(rms);
  };
  try {
    await microphone.start();
  } catch (error) {
    if (mine !== attempt) return; // turned off while the browser was asking
    turnOff({ tell: false });
    showError(micProblem(error).text);
    return;
  }
  if (mine !== attempt) return;
  micOpen = true;
  showHandsFree();
  announce("Hands-free on. Listening");
  try {
    created = await ensureConversation(null);
  } catch (error) {
    if (mine !== attempt) return;
    turnOff({ tell: false });
    showError(`Hands-free could not start: ${error.message}`);
    return;
  }
  if (mine === attempt) sendStart();
}

/** Off: listen.stop (``tell``, unless the server ended it itself) and the microphone let go at once. */
function turnOff({ tell }) {
  const was = wanted;
  wanted = false;
  attempt += 1;
  if (tell && startSent && connection.send(listenStopEvent())) stopsUnanswered += 1;
  startSent = serverListening = micOpen = window.voiceHandsFree.listening = false;
  microphone.onchunk = null;
  microphone.release();
  micTaken(false);
  // The server drops a turn not yet ended; one that has ended is still stored and answered.
  for (const turn of [...turns.values()]) if (turn.phase === TURN_PHASE.SPEAKING) dropTurn(turn);
  if (was) announce("Hands-free off");
  showHandsFree();
}

/** The socket is back: the mode, if on, starts again on it (chat.js composes this into connection.onopen). */
export function resumeHandsFree() {
  sendStart();
}

/** The socket dropped: the server forgot the mode and every turn it was hearing or transcribing. */
export function handsFreeConnectionLost() {
  startSent = serverListening = window.voiceHandsFree.listening = false;
  stopsUnanswered = 0;
  const ended = [...turns.values()].some((turn) => turn.phase === TURN_PHASE.ENDED);
  for (const turn of [...turns.values()]) dropTurn(turn);
  replyAfter = null; // a reply comes with the catch-up, if at all
  if (ended) list.stopThinking();
  showHandsFree();
}

// --- Turns --------------------------------------------------------------------------
function remember(turnId) {
  if (seen.includes(turnId)) return;
  seen.push(turnId);
  keepLast(seen, KEEP);
}

function showTurn(turnId, note) {
  let turn = turns.get(turnId);
  if (!turn) {
    turn = { id: turnId, phase: TURN_PHASE.SPEAKING, text: "", final: false };
    // Looks like the user's message it will become; its words arrive as they are heard.
    turn.item = list.addUnstored("provisional", "", note, { beforeThinking: true });
    turns.set(turnId, turn);
    follower.grew();
  } else {
    turn.item.querySelector(".message__meta").textContent = note;
  }
  return turn;
}

function dropTurn(turn) {
  turn.item.remove();
  turns.delete(turn.id);
}

/** No turn, reply or query is waiting any more: the thinking dots go. */
function settleThinking() {
  const waiting = [...turns.values()].some((turn) => turn.phase === TURN_PHASE.ENDED);
  if (!waiting && replyAfter === null && !connection.inFlight && !talkPending()) list.stopThinking();
}

/** listen.turn: a turn began (speaking), ended (its words are being worked out), or stored nothing. */
export function onListenTurn(event) {
  window.voiceHandsFree.turns.push(event);
  keepLast(window.voiceHandsFree.turns, KEEP);
  remember(event.turn_id);
  if (event.phase === TURN_PHASE.SPEAKING) {
    if (wanted) showTurn(event.turn_id, "Hearing you…");
  } else if (event.phase === TURN_PHASE.ENDED) {
    showTurn(event.turn_id, "Working out what you said…").phase = TURN_PHASE.ENDED;
    session.sentAt = performance.now(); // the time to the first sound of its reply counts from here
    list.startThinking();
    follower.grew();
  } else if (event.phase === TURN_PHASE.DISCARDED) {
    const turn = turns.get(event.turn_id);
    if (turn) dropTurn(turn);
    settleThinking();
  }
  showHandsFree();
}

/** A transcript with a turn_id: what the server heard so far (or, ``final``, in all) of that turn. */
export function onTurnTranscript(event) {
  window.voiceHandsFree.transcripts.push({ turn_id: event.turn_id, text: event.text, final: event.final });
  keepLast(window.voiceHandsFree.transcripts, KEEP);
  const turn = turns.get(event.turn_id);
  if (!turn) return; // dropped meanwhile
  turn.text = event.text;
  turn.final = event.final;
  turn.item.querySelector(".message__text").textContent = event.text; // never as HTML
  if (event.final) turn.item.querySelector(".message__meta").textContent = "Sending…";
  follower.grew();
}

/** The server stored a turn of this tab as a query: it replaces the bubble, and its reply plays here. */
export function turnStored(message) {
  if (!message.client_id || !seen.includes(message.client_id)) return false;
  const turn = turns.get(message.client_id);
  if (turn) dropTurn(turn);
  // Answered like a typed query: what this tab still says stops, and its reply is this tab's to play.
  const interrupted = interruptPlayback();
  if (interrupted) connection.send(heardEvent(interrupted));
  session.replyWanted = session.stops;
  replyAfter = message.id;
  if (created) {
    created = false;
    conversationNamed(titleFrom(message.text));
  }
  showHandsFree();
  return true;
}

/** A reply ended (or was stored final): if it answers a turn and never sounded (no audio, Stop), no longer thinking. */
export function handsFreeReplyDone(messageId) {
  if (replyAfter === null || !(messageId > replyAfter)) return;
  replyAfter = null;
  showHandsFree();
}

/** listen.state: the mode went on, or off (stopped, idle, limit). */
export function onListenState(event) {
  if (event.state === LISTENING.LISTENING) {
    serverListening = wanted && startSent;
    window.voiceHandsFree.listening = serverListening;
    note(NOTES[event.reason] ?? "");
    return;
  }
  serverListening = window.voiceHandsFree.listening = false;
  note("");
  if (event.reason === LISTEN_OFF.STOPPED && stopsUnanswered > 0) {
    stopsUnanswered -= 1; // the answer to our own listen.stop: nothing new
    return;
  }
  if (!wanted) return;
  turnOff({ tell: false }); // the server ended it: no listen.stop

  if (event.reason === LISTEN_OFF.IDLE) showError(IDLE_TEXT);
  else if (event.reason === LISTEN_OFF.LIMIT && !listenErrorShown) showError(LIMIT_TEXT);
}

/**
 * An error without a message_id that concerns hands-free mode: said (or, for audio refused just
 * after the mode ended, not worth saying) and handled here. False: it is someone else's.
 */
export function handsFreeRefused(event) {
  if (listenErrors.has(event.code)) {
    // listen.start refused (too many tabs listen), or push-to-talk met the mode: off, with the server's words.
    listenErrorShown = true;
    if (wanted) turnOff({ tell: serverListening });
    showError(event.message);
    return true;
  }
  if (talkPending()) return false; // push-to-talk's
  if (speechErrors.has(event.code)) {
    if (wanted) {
      // The audio was refused: if the server is not listening at all, the mode is off.
      if (!serverListening) turnOff({ tell: true });
      showError(event.message);
      return true;
    }
    return performance.now() - lastFrameAt < STRAY_MS; // frames that crossed the mode's end: nothing to say
  }
  const turn = [...turns.values()].find((candidate) => candidate.phase === TURN_PHASE.ENDED);
  if (!turn || connection.inFlight) return false;
  // Refused after it was heard (too many messages, say): the words go to the box, to send again.
  if (turn.final) offerAgain(turn.text);
  dropTurn(turn);
  settleThinking();
  showHandsFree();
  showError(event.message);
  return true;
}

// --- Ducking --------------------------------------------------------------------------
/** playback.duck: someone talks over reply ``message_id`` (in any tab): pause it here at once, or let it go on. */
export function onDuck(event) {
  const applied = event.on ? player.playingMessageId === event.message_id : player.duckedId === event.message_id;
  if (applied) player.duck(event.on);
  window.voiceHandsFree.ducked.push({ message_id: event.message_id, on: event.on, applied });
  keepLast(window.voiceHandsFree.ducked, KEEP);
}

export function initHandsFree() {
  const unavailable = micUnavailable();
  if (unavailable) {
    button.disabled = true;
    button.title = unavailable;
  }
  button.addEventListener("click", () => (wanted ? turnOff({ tell: true }) : turnOn()));
  showHandsFree();
}
