// Stored replies, played again: one <audio> element for the page, so that the
// browser fetches byte ranges and the listener can seek; routed through the
// stream player's output, so mute holds for it too.

export class ReplayPlayer {
  constructor(streamPlayer) {
    this.stream = streamPlayer;
    this.audio = new Audio();
    this.audio.preload = "none";
    this.messageId = null; // the reply loaded in the element
    this.onprogress = null; // (messageId, seconds, duration) => void
    this.onstatechange = null; // () => void: playing started or ended
    for (const name of ["timeupdate", "seeked", "durationchange", "loadedmetadata"]) {
      this.audio.addEventListener(name, () => this.#progress());
    }
    this.audio.addEventListener("playing", () => {
      // Inspectable like streamed chunks: one entry per replay.
      this.stream.record({
        messageId: this.messageId,
        seq: null,
        format: "file",
        start: this.audio.currentTime,
        duration: this.audio.duration,
        scheduledAt: performance.now(),
      });
      this.#changed();
    });
    for (const name of ["pause", "ended", "emptied"]) this.audio.addEventListener(name, () => this.#changed());
  }

  get playing() {
    return this.messageId !== null && !this.audio.paused && !this.audio.ended;
  }

  /** Call inside a click or key handler: the first play routes the element into the context. */
  #load(messageId, url) {
    this.stream.unlock();
    this.stream.connectMedia(this.audio);
    if (this.messageId === messageId) return;
    this.messageId = messageId;
    this.audio.src = url;
  }

  /** Play or pause reply ``messageId``; a different reply starts from the beginning. */
  toggle(messageId, url) {
    if (this.messageId === messageId && this.playing) {
      this.audio.pause();
      return Promise.resolve();
    }
    this.#load(messageId, url);
    return this.audio.play();
  }

  /** Move reply ``messageId`` to ``seconds``; a reply not loaded yet starts playing there. */
  seek(messageId, url, seconds) {
    const loaded = this.messageId === messageId;
    this.#load(messageId, url);
    this.audio.currentTime = seconds;
    return loaded ? Promise.resolve() : this.audio.play();
  }

  stop() {
    if (!this.playing) return;
    this.audio.pause();
  }

  #progress() {
    if (this.messageId !== null && this.onprogress) {
      this.onprogress(this.messageId, this.audio.currentTime, this.audio.duration);
    }
  }

  #changed() {
    this.#progress();
    if (this.onstatechange) this.onstatechange();
  }
}
