// The microphone's audio thread (an AudioWorklet processor; mic.js loads it).
//
// Takes the first input channel at the context's rate (`sampleRate`, a global
// here: 44,100 or 48,000 Hz mostly), resamples it to 16 kHz mono, converts it
// to signed 16-bit little-endian PCM and posts it to the main thread in chunks
// of about 100 ms, with the chunk's loudness (RMS, 0 to 1) for the level meter.
//
// Resampling: a windowed-sinc low-pass (cut off below 8 kHz, so that nothing
// above it folds back into the speech band) filters every input sample, and
// each output sample is interpolated between the two filtered input samples
// around its time. A plain average of neighbours aliases enough to turn
// "France" into "friends" for the transcriber.
//
// Messages to the main thread: {pcm: ArrayBuffer, rms}. From it: "flush"
// (post what is buffered now, then {flushed: true}).

import { SPEECH_RATE } from "./wire.js";

const TARGET_RATE = SPEECH_RATE; // 16 kHz: the one rate voice input takes
const CHUNK_SAMPLES = TARGET_RATE / 10; // 100 ms
const TAPS = 64;

/** A low-pass FIR cutting off at ``cutoff`` (cycles per input sample), Blackman-windowed, unity gain. */
function lowPass(cutoff) {
  const taps = new Float32Array(TAPS);
  const middle = (TAPS - 1) / 2;
  let sum = 0;
  for (let k = 0; k < TAPS; k++) {
    const x = k - middle;
    const sinc = x === 0 ? 1 : Math.sin(2 * Math.PI * cutoff * x) / (2 * Math.PI * cutoff * x);
    const window = 0.42 - 0.5 * Math.cos((2 * Math.PI * k) / (TAPS - 1)) + 0.08 * Math.cos((4 * Math.PI * k) / (TAPS - 1));
    taps[k] = sinc * window;
    sum += taps[k];
  }
  for (let k = 0; k < TAPS; k++) taps[k] /= sum;
  return taps;
}

class Pcm16Downsampler extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / TARGET_RATE; // input samples per output sample
    this.taps = lowPass(Math.min(0.45, (0.45 * TARGET_RATE) / sampleRate));
    // The last TAPS input samples, written twice (at i and i + TAPS) so that they are always contiguous.
    this.history = new Float32Array(2 * TAPS);
    this.head = 0;
    this.seen = 0; // input samples so far
    this.next = 0; // input time of the next output sample
    this.previous = 0; // the filtered input sample before the latest
    this.chunk = new Int16Array(CHUNK_SAMPLES);
    this.filled = 0;
    this.squares = 0; // of the chunk's samples, for its RMS
    this.port.onmessage = (event) => {
      if (event.data === "flush") {
        this.post();
        this.port.postMessage({ flushed: true });
      }
    };
  }

  process(inputs) {
    const channel = inputs[0]?.[0];
    if (!channel) return true; // no input yet (or any more): keep running until disconnected
    const { history, taps } = this;
    for (let i = 0; i < channel.length; i++) {
      this.head = (this.head + 1) % TAPS;
      history[this.head] = history[this.head + TAPS] = channel[i];
      let filtered = 0;
      for (let k = 0; k < TAPS; k++) filtered += taps[k] * history[this.head + 1 + k];
      const now = this.seen;
      this.seen += 1;
      // Output samples due between the previous input sample and this one.
      while (this.next <= now) {
        const fraction = this.next - (now - 1);
        this.push(this.previous + (filtered - this.previous) * fraction);
        this.next += this.step;
      }
      this.previous = filtered;
    }
    return true;
  }

  push(sample) {
    const clipped = Math.max(-1, Math.min(1, sample));
    this.squares += clipped * clipped;
    this.chunk[this.filled++] = clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff;
    if (this.filled === CHUNK_SAMPLES) this.post();
  }

  post() {
    if (!this.filled) return;
    // Little-endian whatever the platform: the wire format says so.
    const bytes = new ArrayBuffer(this.filled * 2);
    const view = new DataView(bytes);
    for (let i = 0; i < this.filled; i++) view.setInt16(i * 2, this.chunk[i], true);
    this.port.postMessage({ pcm: bytes, rms: Math.sqrt(this.squares / this.filled) }, [bytes]);
    this.filled = 0;
    this.squares = 0;
  }
}

registerProcessor("pcm16-downsampler", Pcm16Downsampler);
