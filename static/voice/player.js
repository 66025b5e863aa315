// Gapless streaming playback on one AudioContext.
//
// Each chunk is scheduled at max(currentTime, cursor), where cursor is the end
// of the previous chunk: chaining on `onended` instead leaves gaps and clicks.
// The context is created and resumed inside a user gesture (iOS/Safari play
// nothing otherwise) and then reused for everything.

export class StreamPlayer {
  constructor() {
    this.context = null;
    this.output = null;
    this.cursor = 0;
    this.sources = new Set();
    this.pending = Promise.resolve(); // decodes finish in order
    this.generation = 0; // bumped by stop(): late decodes are dropped
    this.muted = false;
    // Inspectable by tests and benchmarks: one entry per scheduled chunk.
    this.log = [];
    this.onchunkstart = null; // (meta) => void, when a chunk starts sounding
    this.onidle = null; // () => void, when the last scheduled chunk ends
  }

  /** Call synchronously inside a click or key handler. */
  unlock() {
    if (!this.context) {
      this.context = new AudioContext();
      this.output = this.context.createGain();
      this.output.gain.value = this.muted ? 0 : 1;
      this.output.connect(this.context.destination);
    }
    if (this.context.state === "suspended") this.context.resume();
  }

  setMuted(muted) {
    this.muted = muted;
    if (this.output) this.output.gain.value = muted ? 0 : 1;
  }

  get playing() {
    return this.sources.size > 0;
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

  /** Play a whole stored file (WAV or MP3) from its URL. */
  async playUrl(url, meta = {}) {
    this.stop();
    this.unlock();
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`Audio request failed: ${response.status}`);
    const buffer = await this.context.decodeAudioData(await response.arrayBuffer());
    this.#schedule(buffer, { ...meta, format: "file" });
  }

  stop() {
    this.generation += 1;
    for (const source of this.sources) {
      source.onended = null;
      source.stop();
    }
    this.sources.clear();
    this.cursor = 0;
    if (this.onidle) this.onidle();
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
    const start = Math.max(context.currentTime, this.cursor);
    source.start(start);
    this.cursor = start + buffer.duration;
    this.sources.add(source);
    const entry = {
      messageId: meta.message_id ?? null,
      seq: meta.seq ?? null,
      format: meta.format,
      start,
      duration: buffer.duration,
      scheduledAt: performance.now(),
    };
    this.log.push(entry);
    const delay = Math.max(0, (start - context.currentTime) * 1000);
    setTimeout(() => this.onchunkstart && this.onchunkstart(meta, entry), delay);
    source.onended = () => {
      this.sources.delete(source);
      if (this.sources.size === 0 && this.onidle) this.onidle();
    };
  }
}
