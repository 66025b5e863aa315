// The conversation as a list of messages: built, updated as replies stream,
// rendered as markdown (replies) or plain text (the user's), with the sentence
// being spoken marked. The structure matches templates/voice/_message.html,
// which renders the history on the server.

import { clearMarks, markSpan } from "./highlight.js";
import { icon, iconButton, setIcon } from "./icons.js";
import { renderMarkdown } from "./markdown.js";
import { CUT, ROLE, STATUS, STOPPED } from "./wire.js";

const STATUS_TEXT = {
  [STATUS.STREAMING]: "",
  [STATUS.COMPLETE]: "",
  [STATUS.AUDIO_FAILED]: "Audio failed",
  [STATUS.CANCELLED]: "Cancelled",
  [STATUS.INTERRUPTED]: "Interrupted",
  [STATUS.FAILED]: "Reply failed",
};
// A reply the server ended early (its "cut"): a quiet note beside its status, as templates/voice/_message.html has it.
const CUT_TEXT = {
  [CUT.LENGTH]: "Reply shortened",
  [CUT.REPETITION]: "Reply stopped: it was repeating itself",
};
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function formatClock(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "0:00";
  const whole = Math.floor(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

function setTime(element, iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return;
  element.dateTime = iso;
  element.textContent = timeFormat.format(date);
  element.title = dateTimeFormat.format(date);
}

/** A message's <li>: its bubble holding its text element (a <p> by default), then whatever ``rest`` is. */
function messageItem(className, { textTag = "p", textClass = "message__text", extra = [], rest = [] } = {}) {
  const item = document.createElement("li");
  item.className = className;
  const bubble = document.createElement("div");
  bubble.className = "message__bubble";
  const text = document.createElement(textTag);
  text.className = textClass;
  bubble.append(text, ...extra);
  item.append(bubble, ...rest);
  return { item, text };
}

/**
 * A query of this tab's that the server has not stored yet, shown as the user's message it will
 * become: ``modifier`` "pending" (typed, waiting for the connection) or "provisional" (being said;
 * its words arrive as they are heard), with ``note`` below it.
 */
function unstoredBubble(modifier, text, note) {
  const meta = document.createElement("div");
  meta.className = "message__meta";
  meta.textContent = note;
  const { item, text: body } = messageItem(`message message--user message--${modifier}`, { rest: [meta] });
  body.textContent = text;
  return item;
}

/** An icon with its name for screen readers (and as a tooltip): "Speaking", "Spoken". */
function labelledIcon(name, className, label) {
  const span = document.createElement("span");
  span.className = className;
  span.title = label;
  const hidden = document.createElement("span");
  hidden.className = "visually-hidden";
  hidden.textContent = label;
  span.append(icon(name), hidden);
  return span;
}

/** What a message's player plays, in its controls' names: a reply, or the user's own recording. */
function replayOf(item) {
  return item.classList.contains("message--assistant") ? "reply" : "your message";
}

export class MessageList {
  constructor(list) {
    this.list = list;
    // A reply's markdown, kept with its element: gone when the element is.
    this.sources = new WeakMap();
    this.dirty = new Set(); // replies whose text changed since the last frame
    this.frame = null;
    this.spoken = null; // {messageId, start, end}: the sentence marked now
    this.onrender = null; // () => void, after text was added or changed
    const sources = JSON.parse(document.getElementById("reply-sources")?.textContent || "{}");
    for (const item of list.querySelectorAll(".message")) {
      const id = item.dataset.messageId;
      if (id in sources) this.sources.set(item, sources[id]);
      const time = item.querySelector("time");
      if (time) setTime(time, time.dateTime);
      this.#decorateCode(item);
    }
  }

  item(messageId) {
    return this.list.querySelector(`.message[data-message-id="${Number(messageId)}"]`);
  }

  /** The id of the oldest message shown (0: none). */
  get firstId() {
    const item = this.list.querySelector(".message[data-message-id]");
    return item ? Number(item.dataset.messageId) : 0;
  }

  /** The id of the newest message shown (0: none). */
  get lastId() {
    const items = this.list.querySelectorAll(".message[data-message-id]");
    return items.length ? Number(items[items.length - 1].dataset.messageId) : 0;
  }

  /** Ids of the replies shown as not finished. */
  unfinishedIds() {
    const unfinished = this.list.querySelectorAll(`.message[data-status="${STATUS.STREAMING}"]`);
    return [...unfinished].map((item) => Number(item.dataset.messageId));
  }

  source(messageId) {
    const item = this.item(messageId);
    return item ? this.sources.get(item) ?? "" : "";
  }

  // --- Building ---------------------------------------------------------------
  #create(message) {
    const assistant = message.role === ROLE.ASSISTANT;
    const meta = document.createElement("div");
    meta.className = "message__meta";
    const { item } = messageItem(`message message--${message.role}`, {
      textTag: assistant ? "div" : "p",
      textClass: assistant ? "message__text markdown" : "message__text",
      rest: [meta],
    });
    item.dataset.messageId = String(message.id);
    item.dataset.number = String(message.number ?? this.#nextNumber(message));
    meta.append(document.createElement("time"));
    if (assistant) {
      const status = document.createElement("span");
      status.className = "message__status";
      const cut = document.createElement("span");
      cut.className = "message__cut";
      meta.append(labelledIcon("volume", "message__speaking", "Speaking"), status, cut);
    } else if (message.is_voice) {
      meta.append(labelledIcon("mic", "message__voice", "Spoken"));
    }
    const actions = document.createElement("span");
    actions.className = "message__actions";
    const whose = assistant ? "reply" : "your message";
    actions.append(iconButton("copy", `Copy ${whose} ${item.dataset.number}`, "message__copy", "Copy"));
    meta.append(actions);
    this.#insert(item, message.id);
    return item;
  }

  /** "Reply 3": counted over the whole conversation, from the one of its role shown before it (the page may
   * show only the newest messages; older pages come numbered by the server). */
  #nextNumber(message) {
    const earlier = [...this.list.querySelectorAll(`.message--${message.role}[data-message-id]`)].filter(
      (other) => Number(other.dataset.messageId) < message.id,
    );
    return earlier.length ? Number(earlier.at(-1).dataset.number) + 1 : 1;
  }

  #insert(item, id) {
    document.getElementById("messages-empty")?.remove();
    // In id order: a catch-up after a reconnect may bring older ones.
    const later = [...this.list.querySelectorAll(".message[data-message-id]")].find(
      (other) => Number(other.dataset.messageId) > id,
    );
    this.list.insertBefore(item, later ?? this.#thinking() ?? null);
  }

  /** Show older messages (a page of them, each with its ``number``) above those shown. */
  addEarlier(messages) {
    for (const message of messages) this.upsert(message, { quiet: true });
  }

  /** Show ``message`` (a `message` event's payload): new, or its final state. ``quiet``: no onrender. */
  upsert(message, { quiet = false } = {}) {
    const existing = this.item(message.id);
    // A reply never becomes streaming again once it has ended: a catch-up read before its end
    // (and answered after the live events) is old news, not a change.
    const ended = existing?.dataset.status && existing.dataset.status !== STATUS.STREAMING;
    if (ended && message.status === STATUS.STREAMING) return existing;
    const item = existing ?? this.#create(message);
    item.dataset.status = message.status;
    setTime(item.querySelector("time"), message.created_at);
    if (message.duration_ms) item.dataset.durationMs = String(message.duration_ms);
    if (message.role === ROLE.ASSISTANT) {
      // A streaming reply's text grows by deltas; a longer text (a catch-up) or a final one replaces it.
      if (message.status !== STATUS.STREAMING || !existing || message.text.length > this.source(message.id).length) {
        this.#setSource(item, message.text);
      }
      this.#setStatus(item, message);
      this.showCut(message.id, message.cut);
      if (message.audio_url) this.#addReplay(item, message.audio_url);
    } else {
      item.querySelector(".message__text").textContent = message.text;
      // A spoken query: its recording plays like a reply.
      if (message.audio_url) this.#addReplay(item, message.audio_url);
    }
    if (!quiet) this.onrender?.();
    return item;
  }

  #setStatus(item, message) {
    if (message.status === STATUS.STREAMING && item.dataset.queued !== undefined) return; // still waiting in line
    delete item.dataset.queued;
    let text = STATUS_TEXT[message.status] ?? message.status;
    if (message.heard_ms != null && STOPPED.includes(message.status)) {
      text += ` after ${(message.heard_ms / 1000).toFixed(1)} s`;
    }
    item.querySelector(".message__status").textContent = text;
  }

  /** Reply ``messageId`` was ended early, for ``cut`` ("length", "repetition"; "" or none: it was not). */
  showCut(messageId, cut) {
    const note = this.item(messageId)?.querySelector(".message__cut");
    if (note) note.textContent = CUT_TEXT[cut] ?? "";
  }

  #addReplay(item, url) {
    item.dataset.audioUrl = url;
    if (item.querySelector(".replay")) return;
    const number = item.dataset.number;
    const whose = replayOf(item);
    const replay = document.createElement("span");
    replay.className = "replay";
    const seek = document.createElement("input");
    seek.type = "range";
    seek.className = "replay__seek";
    Object.assign(seek, { min: "0", max: item.dataset.durationMs || "0", step: "100", value: "0" });
    seek.setAttribute("aria-label", `Position in ${whose} ${number}`);
    seek.setAttribute("aria-valuetext", "0:00");
    const time = document.createElement("span");
    time.className = "replay__time";
    time.textContent = item.dataset.durationMs ? formatClock(item.dataset.durationMs / 1000) : "0:00";
    replay.append(iconButton("play", `Play ${whose} ${number}`, "replay__toggle", "Play"), seek, time);
    item.querySelector(".message__actions").append(replay);
  }

  /** The reply's full length is known (audio.end). */
  setDuration(messageId, durationMs) {
    const item = this.item(messageId);
    if (!item || !durationMs) return;
    item.dataset.durationMs = String(durationMs);
    const seek = item.querySelector(".replay__seek");
    if (seek) seek.max = String(durationMs);
  }

  /** A replay moved on: its slider and clock follow. */
  showProgress(messageId, seconds, duration, playing) {
    for (const other of this.list.querySelectorAll(".replay--active")) {
      if (Number(other.closest(".message").dataset.messageId) !== messageId) this.#resetReplay(other);
    }
    const item = this.item(messageId);
    const replay = item?.querySelector(".replay");
    if (!replay) return;
    replay.classList.toggle("replay--active", true);
    const seek = replay.querySelector(".replay__seek");
    if (Number.isFinite(duration) && duration > 0) seek.max = String(Math.round(duration * 1000));
    if (document.activeElement !== seek || !playing) seek.value = String(Math.round(seconds * 1000));
    const clock = `${formatClock(seconds)} / ${formatClock(duration)}`;
    seek.setAttribute("aria-valuetext", clock);
    replay.querySelector(".replay__time").textContent = clock;
    const toggle = replay.querySelector(".replay__toggle");
    setIcon(toggle, playing ? "pause" : "play");
    toggle.setAttribute("aria-label", `${playing ? "Pause" : "Play"} ${replayOf(item)} ${item.dataset.number}`);
    toggle.title = playing ? "Pause" : "Play";
  }

  #resetReplay(replay) {
    replay.classList.remove("replay--active");
    const toggle = replay.querySelector(".replay__toggle");
    setIcon(toggle, "play");
    const item = replay.closest(".message");
    toggle.setAttribute("aria-label", `Play ${replayOf(item)} ${item.dataset.number}`);
  }

  // --- Reply text --------------------------------------------------------------
  #setSource(item, source) {
    this.sources.set(item, source);
    this.#render(item);
  }

  /** The reply waits for the model: its place in line, and the likely wait when the server knows it. */
  showQueued(messageId, position, expectedWaitMs) {
    const item = this.item(messageId);
    if (!item || item.dataset.status !== STATUS.STREAMING) return;
    item.dataset.queued = String(position);
    const ahead =
      position === 0 ? "reading the conversation" : position === 1 ? "you are next" : `${position - 1} ahead of you`;
    const wait = expectedWaitMs == null ? "" : `, about ${Math.max(1, Math.round(expectedWaitMs / 1000))} s`;
    item.querySelector(".message__status").textContent = `Waiting for the model: ${ahead}${wait}`;
  }

  #clearQueued(item) {
    if (item.dataset.queued === undefined) return;
    delete item.dataset.queued;
    item.querySelector(".message__status").textContent = "";
  }

  appendDelta(messageId, text) {
    const item = this.item(messageId);
    if (!item) return;
    this.#clearQueued(item);
    this.sources.set(item, (this.sources.get(item) ?? "") + text);
    // Many deltas a frame: render once per frame.
    this.dirty.add(item);
    this.frame ??= requestAnimationFrame(() => {
      this.frame = null;
      for (const dirty of this.dirty) this.#render(dirty);
      this.dirty.clear();
      this.onrender?.();
    });
  }

  #render(item) {
    const container = item.querySelector(".message__text");
    const source = this.sources.get(item) ?? "";
    container.replaceChildren(renderMarkdown(source));
    this.#decorateCode(item);
    const spoken = this.spoken;
    if (spoken && Number(item.dataset.messageId) === spoken.messageId) {
      markSpan(container, source, spoken.start, spoken.end);
    }
  }

  #decorateCode(item) {
    // A copy button for each code block; it carries no text, so highlighting ignores it.
    for (const pre of item.querySelectorAll(".markdown pre")) {
      if (pre.querySelector(".code-copy")) continue;
      const index = [...item.querySelectorAll(".markdown pre")].indexOf(pre) + 1;
      pre.append(iconButton("copy", `Copy code block ${index} of reply ${item.dataset.number}`, "code-copy", "Copy code"));
    }
  }

  // --- Speaking ----------------------------------------------------------------
  /** Mark reply ``messageId`` as speaking, with source[start, end) highlighted; null clears. */
  highlight(messageId, start, end) {
    const current = this.spoken;
    if (current && (current.messageId !== messageId || current.start !== start)) {
      const item = this.item(current.messageId);
      if (item) {
        item.classList.remove("message--speaking");
        clearMarks(item.querySelector(".message__text"));
      }
    }
    this.spoken = messageId == null ? null : { messageId, start, end };
    if (messageId == null) return;
    const item = this.item(messageId);
    if (!item) return;
    item.classList.add("message--speaking");
    const container = item.querySelector(".message__text");
    if (start != null && !container.querySelector("mark")) markSpan(container, this.sources.get(item) ?? "", start, end);
  }

  // --- Thinking: from Enter to the reply's first text -------------------------
  #thinking() {
    return document.getElementById("thinking");
  }

  startThinking() {
    if (this.#thinking()) return;
    document.getElementById("messages-empty")?.remove();
    // Looks like a reply that has no text yet: the same dots (chat.css).
    const label = document.createElement("span");
    label.className = "visually-hidden";
    label.textContent = "Thinking…";
    const { item } = messageItem("message message--assistant message--thinking", { textTag: "div", extra: [label] });
    item.id = "thinking";
    this.list.append(item);
    this.onrender?.();
  }

  /** Show a query not stored yet (unstoredBubble); ``beforeThinking``: above the thinking dots, else last. */
  addUnstored(modifier, text, note, { beforeThinking = false } = {}) {
    document.getElementById("messages-empty")?.remove();
    const item = unstoredBubble(modifier, text, note);
    this.list.insertBefore(item, beforeThinking ? this.#thinking() : null);
    return item;
  }

  /** The reply exists (it shows the dots itself until its first text), or none will come. */
  stopThinking() {
    this.#thinking()?.remove();
  }
}
