// The chat socket: one per conversation, joined again (with backoff) when it
// drops, and its outbox: the typed queries not yet stored, sent one at a time.

import { chat, showError } from "./page.js";
import { cancelEvent, decodeAudioFrame, socketUrl } from "./protocol.js";
import { session } from "./session.js";
import { CLOSE } from "./wire.js";

const statusLine = document.getElementById("connection-status");

class ChatSocket {
  #socket = null;
  #reconnectDelay = 500;
  #reconnectTimer = null;
  // Queries not yet stored, oldest first: {payload, text, pending (element or null), stops}.
  // One is in flight at a time; the next goes once the server has stored it.
  #outbox = [];
  #inFlight = null;

  constructor() {
    // What the page does with it (chat.js sets them):
    this.oncatchup = null; // () => void: joined; what happened meanwhile is to be fetched
    this.onopen = null; // () => void: joined, and the outbox flushed
    this.onevent = null; // (event) => void: a JSON event
    this.onaudio = null; // ({header, data}) => void: a binary audio frame
    this.onlost = null; // () => void: the connection dropped; it is being joined again
  }

  get open() {
    return Boolean(this.#socket) && this.#socket.readyState === WebSocket.OPEN;
  }

  /** Send ``data`` now, if the socket is open (true if it was sent). */
  send(data) {
    if (!this.open) return false;
    this.#socket.send(data);
    return true;
  }

  connect() {
    if (!session.conversationId) return;
    clearTimeout(this.#reconnectTimer);
    const socket = new WebSocket(socketUrl(session.conversationId));
    this.#socket = socket;
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      this.#reconnectDelay = 500;
      statusLine.textContent = "";
      chat.dataset.connection = "open";
      if (this.#inFlight) {
        // Sent on a connection that then dropped: it may or may not have been stored. Its
        // client_id makes sending it again safe: the server stores it at most once.
        this.#outbox.unshift(this.#inFlight);
        this.#inFlight = null;
      }
      // Also on the first connection: what happened between rendering the page and joining.
      this.oncatchup?.();
      this.flushOutbox();
      this.onopen?.();
    };
    socket.onmessage = (frame) => {
      if (frame.data instanceof ArrayBuffer) this.onaudio?.(decodeAudioFrame(frame.data));
      else this.onevent?.(JSON.parse(frame.data));
    };
    socket.onclose = (event) => {
      if (event.code === CLOSE.UNAUTHENTICATED) {
        location.assign(`/accounts/login/?next=${encodeURIComponent(location.pathname)}`);
        return;
      }
      if (event.code === CLOSE.FORBIDDEN || event.code === CLOSE.NOT_FOUND) {
        chat.dataset.connection = "closed";
        showError("You do not have access to this conversation.");
        return;
      }
      chat.dataset.connection = "reconnecting";
      this.onlost?.();
      const retry = `${(this.#reconnectDelay / 1000).toFixed(1)} s`;
      statusLine.textContent =
        event.code === CLOSE.TOO_MANY_SOCKETS
          ? `Too many tabs of your account are open. Close some; this one tries again in ${retry}…`
          : `Connection lost. Reconnecting in ${retry}…`;
      this.#reconnectTimer = setTimeout(() => this.connect(), this.#reconnectDelay);
      // Exponential backoff with jitter, so many tabs do not reconnect in step.
      this.#reconnectDelay = Math.min(this.#reconnectDelay * 2, 15000) * (0.8 + Math.random() * 0.4);
    };
  }

  // --- Outbox ---------------------------------------------------------------------
  /** The typed query sent and not yet stored (or refused), or null. */
  get inFlight() {
    return this.#inFlight;
  }

  /** Typed queries waiting to be sent. */
  get waiting() {
    return this.#outbox.length;
  }

  /** Queue a typed query: {payload, text, pending, stops (`session.stops` when it was asked)}. */
  ask(entry) {
    this.#outbox.push(entry);
    this.flushOutbox();
  }

  /** Send the oldest unsent query, if the socket is open and none is awaiting its confirmation. */
  flushOutbox() {
    if (this.#inFlight || !this.#outbox.length || !this.open) return;
    const entry = this.#outbox.shift();
    this.#inFlight = entry;
    this.#socket.send(entry.payload);
    // Stop was pressed after it was asked, while it waited here (the conversation being created,
    // the socket opening or down): its reply is not wanted. Right behind it, the cancel reaches the
    // server before that reply can be finished and stored complete.
    if (entry.stops !== session.stops) this.#socket.send(cancelEvent());
  }

  /** The server stored the query in flight, or refused it: it is returned, and no longer in flight. */
  settle() {
    const entry = this.#inFlight;
    this.#inFlight = null;
    return entry;
  }
}

export const connection = new ChatSocket();
