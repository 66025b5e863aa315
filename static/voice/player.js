// Gapless streaming playback on one AudioContext.
//
// Each chunk is scheduled at max(currentTime, cursor), where cursor is the end
// of the previous chunk: chaining on `onended` instead leaves gaps and clicks.
// The context is created and resumed inside a user gesture (iOS/Safari play
// nothing otherwise) and then reused for everything, stored replies included
// (their <audio> element is routed through the same output, so mute holds).

// Entries kept in `log`: enough for any test or benchmark, bounded for a day's use.
export const LOG_LIMIT = 500;

export class StreamPlayer {
  constructor() {
    this.context = null;
    this.output = null;
    this.duckedId = null; // the reply paused while someone talks over it (duck), or null
    this.cursor = 0;
    this.sources = new Set();
    this.pending = Promise.resolve(); // decodes finish in order
    this.generation = 0; // bumped by stop(): late decodes are dropped
    this.timers = new Set(); // pending chunk-start callbacks, cleared by stop()
    this.media = new WeakSet(); // <audio> elements already routed through the output
    this.muted = false;
    this.scheduled = []; // {messageId, start, duration} since the last stop
    this.lastStop = null; // {messageId, at: epoch ms, now: performance.now()}: when sound last stopped early
    // Inspectable by tests and benchmarks: one entry per scheduled chunk.
    this.log = [];
    this.onchunkstart = null; // (meta) => void, when a chunk starts sounding
    this.onidle = null; // () => void, when the last scheduled chunk ends
    this.onstatechange = null; // () => void, when `playing` may have changed
  }

  /** Call synchronously inside a click or key handler. */
  unlock() {
    if (!this.context) {
      this.context = new AudioContext();
      this.output = this.context.createGain();
      this.output.gain.value = this.muted ? 0 : 1;
      this.output.connect(this.context.destination);
    }
    if (this.context.state === "suspended" && this.duckedId === null) this.context.resume();
  }

  /** Play an <audio> element through this context's output (mute applies). Call after unlock(). */
  connectMedia(element) {
    if (this.media.has(element)) return;
    this.context.createMediaElementSource(element).connect(this.output);
    this.media.add(element);
  }

  /** Keep an entry in the inspectable log, dropping the oldest past LOG_LIMIT. */
  record(entry) {
    this.log.push(entry);
    if (this.log.length > LOG_LIMIT) this.log.splice(0, this.log.length - LOG_LIMIT);
  }

  setMuted(muted) {
    this.muted = muted;
    if (this.output) this.output.gain.value = muted ? 0 : 1;
  }

  get playing() {
    return this.sources.size > 0;
  }

  /** The id of the reply sounding now (or queued to), or null. */
  get playingMessageId() {
    if (!this.playing || !this.scheduled.length) return null;
    return this.scheduled.at(-1).messageId;
  }

  /** Milliseconds of a reply's audio played so far (since the last stop). */
  heardMs(messageId) {
    if (!this.context) return 0;
    const now = this.context.currentTime;
    let heard = 0;
    for (const chunk of this.scheduled) {
      if (chunk.messageId !== messageId) continue;
      heard += Math.min(Math.max(now - chunk.start, 0), chunk.duration);
    }
    return Math.round(heard * 1000);
  }

  /** Queue one chunk: {format, sample_rate, channels, ...meta} and its bytes. */
  enqueue(header, bytes) {
    this.unlock();
    const generation = this.generation;
    this.pending = this.pending
      .then(() => this.#toBuffer(header, bytes))
      .then((buffer) => {
        if (generation === this.generation) this.#schedule(buffer, header);
      })
      .catch((error) => console.error("voice: could not play a chunk", error));
    return this.pending;
  }

  /**
   * Someone talks over the reply sounding now (``on``): it pauses at once, the whole context with it, so
   * that if they only coughed or said "mm-hm" it goes on from the very word it stopped at (``on`` false).
   * Stopping it, or another reply's chunk, lets the context run again.
   */
  duck(on) {
    if (!this.context) return;
    if (on) {
      if (this.playingMessageId == null || this.duckedId !== null) return; // nothing sounds, or paused already
      this.duckedId = this.playingMessageId;
      this.context.suspend();
    } else if (this.duckedId !== null) {
      this.duckedId = null;
      this.context.resume();
    }
  }

  stop() {
    if (this.playing) {
      const now = performance.now();
      this.lastStop = { messageId: this.playingMessageId, at: performance.timeOrigin + now, now };
    }
    this.generation += 1;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const source of this.sources) {
      source.onended = null;
      source.stop();
    }
    this.sources.clear();
    this.scheduled = [];
    this.cursor = 0;
    if (this.duckedId !== null) {
      this.duckedId = null; // nothing is left to go on with: the context runs again for what comes next
      this.context.resume();
    }
    if (this.onidle) this.onidle();
    if (this.onstatechange) this.onstatechange();
  }

  /** Stop a reply if it is what sounds now; returns the ms heard of it, or null if it was not playing. */
  stopMessage(messageId) {
    if (this.playingMessageId !== messageId) return null;
    const heard = this.heardMs(messageId);
    this.stop();
    return heard;
  }

  async #toBuffer(header, bytes) {
    if (header.format === "pcm_s16le") return this.#pcmToBuffer(header, bytes);
    // MP3 and WAV carry their own headers: let the browser decode them.
    const copy = bytes.slice().buffer;
    return this.context.decodeAudioData(copy);
  }

  #pcmToBuffer(header, bytes) {
    const channels = header.channels || 1;
    const frames = Math.floor(bytes.byteLength / (2 * channels));
    const buffer = this.context.createBuffer(channels, frames, header.sample_rate);
    // DataView: the bytes may start at an odd offset inside the frame.
    const view = new DataView(bytes.buffer, bytes.byteOffset, frames * 2 * channels);
    for (let channel = 0; channel < channels; channel++) {
      const samples = buffer.getChannelData(channel);
      for (let i = 0; i < frames; i++) {
        samples[i] = view.getInt16((i * channels + channel) * 2, true) / 32768;
      }
    }
    return buffer;
  }

  #schedule(buffer, meta) {
    const context = this.context;
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.output);
    const messageId = meta.message_id ?? null;
    if (this.duckedId !== null && messageId !== this.duckedId) this.duck(false); // another reply: heard in full
    const start = Math.max(context.currentTime, this.cursor);
    source.start(start);
    this.cursor = start + buffer.duration;
    this.sources.add(source);
    // Only the reply sounding now counts for heardMs: older replies' chunks can go.
    this.scheduled = this.scheduled.filter((chunk) => chunk.messageId === messageId);
    this.scheduled.push({ messageId, start, duration: buffer.duration });
    const entry = {
      messageId,
      seq: meta.seq ?? null,
      format: meta.format,
      start,
      duration: buffer.duration,
      scheduledAt: performance.now(),
    };
    this.record(entry);
    const delay = Math.max(0, (start - context.currentTime) * 1000);
    // stop() clears these: a chunk that never sounds must not mark anything as speaking.
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.onchunkstart) this.onchunkstart(meta, entry);
    }, delay);
    this.timers.add(timer);
    source.onended = () => {
      this.sources.delete(source);
      if (this.sources.size === 0) {
        if (this.onidle) this.onidle();
        if (this.onstatechange) this.onstatechange();
      }
    };
    if (this.sources.size === 1 && this.onstatechange) this.onstatechange();
  }
}
