// What the server says on the chat socket (docs/protocol.md, "Server → client"),
// dispatched: shown in the list, played, announced; and what happened while
// the socket was not joined, fetched.

import { settleQuery } from "./composer.js";
import {
  handsFreeRefused,
  handsFreeReplyDone,
  onDuck,
  onListenState,
  onListenTurn,
  onTurnTranscript,
  turnStored,
} from "./handsfree.js";
import { getJson } from "./http.js";
import { announce, chat, follower, list, showError } from "./page.js";
import { cancelEvent, decodeBase64Chunk, heardEvent } from "./protocol.js";
import { session } from "./session.js";
import { connection } from "./socket.js";
import { interruptPlayback, onAudio, playHere, player, record } from "./speaking.js";
import { onTranscript, voiceRefused, voiceStored } from "./voice-input.js";
import { ROLE, SERVER, STATUS, STOPPED } from "./wire.js";

const KEEP_ANNOUNCED = 100; // ids of replies already announced
const announced = new Set();

/** A finished reply is read out once, politely, whole (never token by token). */
function announceReply(message) {
  if (message.role !== ROLE.ASSISTANT || message.status === STATUS.STREAMING || announced.has(message.id)) return;
  if (message.status !== STATUS.COMPLETE && message.status !== STATUS.AUDIO_FAILED) return;
  announced.add(message.id);
  if (announced.size > KEEP_ANNOUNCED) announced.delete(announced.values().next().value);
  const item = list.item(message.id);
  const words = item?.querySelector(".message__text").textContent.trim() ?? "";
  if (words) announce(`Reply: ${words.length > 600 ? `${words.slice(0, 600)}…` : words}`);
}

/** What happened while the socket was not joined (finished replies, other tabs' queries). */
export async function catchUp() {
  const unfinished = list.unfinishedIds();
  let after = unfinished.length ? Math.min(...unfinished) - 1 : list.lastId;
  try {
    // A page at a time: a long absence is caught up in several requests, oldest first.
    for (let more = true; more; ) {
      const page = await getJson(`/c/${session.conversationId}/messages/`, { after });
      for (const message of page.messages) {
        list.upsert(message);
        if (message.status !== STATUS.STREAMING) {
          record(message.id).done ??= { message_id: message.id, status: message.status, caughtUp: true };
        }
        after = Math.max(after, message.id);
      }
      more = page.has_more && page.messages.length > 0;
    }
    chat.dataset.caughtUp = String(Date.now());
    follower.grew();
  } catch (error) {
    showError(`Could not catch up after reconnecting: ${error.message}`);
  }
}

/** A reply stopped from any tab (Stop, a new query, a voice talking over it): no more of it plays here. */
function stopReply(messageId, { tell = false } = {}) {
  playHere.delete(messageId);
  const heard = player.stopMessage(messageId);
  // It was playing here: the server hears how much of it this tab played (its own figure is a guess).
  if (tell && heard !== null) connection.send(heardEvent({ message_id: messageId, heard_ms: heard }));
}

export function onEvent(event) {
  switch (event.type) {
    case SERVER.MESSAGE:
      onMessage(event);
      break;
    case SERVER.REPLY_DELTA:
      list.appendDelta(event.message_id, event.text);
      break;
    case SERVER.QUEUED:
      list.showQueued(event.message_id, event.position, event.expected_wait_ms);
      break;
    case SERVER.AUDIO_CHUNK:
      onAudio(decodeBase64Chunk(event));
      break;
    case SERVER.AUDIO_END:
      record(event.message_id).audioEnd = event;
      list.setDuration(event.message_id, event.duration_ms);
      break;
    case SERVER.REPLY_DONE:
      record(event.message_id).done = event;
      chat.dataset.lastStatus = event.status;
      list.stopThinking();
      if (event.cut) list.showCut(event.message_id, event.cut);
      if (STOPPED.includes(event.status)) stopReply(event.message_id);
      handsFreeReplyDone(event.message_id);
      break;
    case SERVER.TRANSCRIPT:
      // With a turn_id, a hands-free turn's words; without, the push-to-talk utterance's.
      if (event.turn_id) onTurnTranscript(event);
      else onTranscript(event);
      break;
    case SERVER.LISTEN_STATE:
      onListenState(event);
      break;
    case SERVER.LISTEN_TURN:
      onListenTurn(event);
      break;
    case SERVER.PLAYBACK_DUCK:
      onDuck(event);
      break;
    case SERVER.ERROR:
      // About hands-free mode: said there (or not worth saying).
      if (!event.message_id && handsFreeRefused(event)) break;
      // Refused: nothing was stored (an utterance, or the typed query in flight).
      if (!event.message_id && !voiceRefused(event)) settleQuery(true);
      showError(event.message);
      break;
    default:
      break; // audio.start: nothing to show
  }
}

function onMessage(event) {
  const message = event.message;
  if (message.role === ROLE.USER) {
    if (event.requested_here) {
      if (!turnStored(message) && !voiceStored(message)) settleQuery();
      showError("");
    } else {
      // Another tab asked something: it interrupts what this tab is saying.
      const interrupted = interruptPlayback();
      if (interrupted) connection.send(heardEvent(interrupted));
    }
  }
  if (event.requested_here && message.role === ROLE.ASSISTANT && message.status === STATUS.STREAMING) {
    list.stopThinking();
    if (session.replyWanted === session.stops) {
      playHere.add(message.id);
    } else if (session.replyWanted !== null) {
      // Stop was pressed after its query went: the reply is not wanted at all.
      connection.send(cancelEvent());
    }
    session.replyWanted = null;
  }
  if (message.role === ROLE.ASSISTANT && message.status !== STATUS.STREAMING) {
    // Final. Its reply.done normally follows, but a full channel-layer queue can drop it: this is enough.
    record(message.id).done ??= { type: SERVER.REPLY_DONE, message_id: message.id, status: message.status, metrics: null };
    // Cut short while its audio still plays here (a voice talked over it, another tab asked): it stops.
    if (message.status === STATUS.INTERRUPTED) stopReply(message.id, { tell: true });
    else if (message.status === STATUS.CANCELLED) stopReply(message.id);
    handsFreeReplyDone(message.id);
  }
  list.upsert(message);
  announceReply(message);
  follower.grew();
}
