// Voice input: the microphone, captured and cut into 16 kHz PCM16 chunks
// (mic-worklet.js does that on the audio thread), and the push-to-talk
// gestures of the mic button. voice-input.js streams the chunks on the chat
// socket (docs/protocol.md, "Voice input") and shows what is heard.
//
// Gestures: hold the button (or Space, when the focus is not in a text field
// or on another control) to talk, release to send; a quick tap (under
// TAP_MS) starts instead, and a second tap sends; Enter on the focused button
// toggles; Escape throws the utterance away.

export const TAP_MS = 300;
const WORKLET = new URL("./mic-worklet.js", import.meta.url);
const FLUSH_WAIT_MS = 500; // at most, for the last partial chunk when recording stops

/** Why this page cannot record at all (a plain sentence), or null if it may. */
export function micUnavailable() {
  if (!window.isSecureContext) {
    return "Talking needs a secure (HTTPS) connection to this site; you can still type.";
  }
  if (!navigator.mediaDevices?.getUserMedia || !window.AudioWorkletNode) {
    return "This browser cannot record from a microphone here; you can still type.";
  }
  return null;
}

/** A plain sentence for a failed getUserMedia (or audio set-up), and whether trying again is pointless. */
export function micProblem(error) {
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return {
        text: "The microphone is blocked for this page. Allow it in the browser's site settings to talk; you can still type.",
        lasting: true,
      };
    case "NotFoundError":
    case "OverconstrainedError":
      return { text: "No microphone was found. Connect one to talk; you can still type.", lasting: true };
    case "NotReadableError":
    case "AbortError":
      return { text: "The microphone is in use by another program, or could not start. Try again.", lasting: false };
    default:
      return { text: "The microphone could not start. Try again, or type instead.", lasting: false };
  }
}

/** A level meter (``.mic-level``) follows the microphone's loudness: -60 dB (or less) is empty, 0 dB full.
 * Returns the level shown, 0 to 1. */
export function showLevel(meter, rms) {
  const level = rms > 0 ? Math.min(1, Math.max(0, (20 * Math.log10(rms) + 60) / 60)) : 0;
  meter.style.setProperty("--level", level.toFixed(3));
  meter.dataset.level = level.toFixed(2);
  return level;
}

/** The microphone as chunks of 16 kHz mono PCM16: onchunk(ArrayBuffer, rms) about every 100 ms. */
export class Microphone {
  constructor() {
    this.context = null;
    this.stream = null;
    this.source = null;
    this.node = null;
    this.onchunk = null;
  }

  get open() {
    return this.node !== null;
  }

  /** Start recording. Call inside the gesture (the audio context is made at once); rejects as getUserMedia does. */
  async start() {
    this.release();
    const context = new AudioContext();
    this.context = context;
    try {
      // Echo cancellation keeps a reply played through speakers out of the recording (barge-in);
      // the browser's noise suppression and gain control are off: they smear words for the
      // transcriber (Whisper hears "friends" for "France" through them), which copes with noise itself.
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: false },
      });
      if (this.context !== context) {
        // Stopped while the browser was asking: nobody wants this stream.
        for (const track of stream.getTracks()) track.stop();
        throw new DOMException("Recording was stopped before it started.", "AbortError");
      }
      this.stream = stream;
      await context.audioWorklet.addModule(WORKLET);
      if (this.context !== context) throw new DOMException("Recording was stopped before it started.", "AbortError");
      this.source = context.createMediaStreamSource(stream);
      // One input channel (stereo microphones are mixed down); the output is silence, but
      // being connected to the destination keeps the node processing in every browser.
      this.node = new AudioWorkletNode(context, "pcm16-downsampler", {
        numberOfInputs: 1,
        numberOfOutputs: 1,
        channelCount: 1,
        channelCountMode: "explicit",
        channelInterpretation: "speakers",
      });
      this.node.port.onmessage = ({ data }) => {
        if (data.pcm && this.onchunk) this.onchunk(data.pcm, data.rms);
      };
      this.source.connect(this.node);
      this.node.connect(context.destination);
      if (context.state === "suspended") await context.resume();
    } catch (error) {
      if (this.context === context) this.release();
      throw error;
    }
  }

  /** Stop recording; with ``flush``, what the worklet still holds is delivered first. */
  async stop({ flush = true } = {}) {
    const node = this.node;
    if (node && flush) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, FLUSH_WAIT_MS);
        node.port.addEventListener("message", ({ data }) => {
          if (data.flushed) {
            clearTimeout(timer);
            resolve();
          }
        });
        node.port.postMessage("flush");
      });
    }
    if (this.node === node) this.release();
  }

  /** Let go of everything at once: the browser's recording indicator goes off. */
  release() {
    if (this.node) {
      this.node.port.onmessage = null;
      this.node.disconnect();
    }
    this.source?.disconnect();
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    if (this.context && this.context.state !== "closed") this.context.close().catch(() => {});
    this.context = this.stream = this.source = this.node = null;
  }
}

// Where Space still does its usual job (typing, pressing another button, moving a slider).
const USES_SPACE =
  "input, textarea, select, button, a[href], summary, [contenteditable]:not([contenteditable='false']), [role='button'], [role='slider'], [role='checkbox']";

/**
 * The mic button's gestures, reported as start(), end() and cancel().
 * The page ends an utterance itself (an error, a dropped connection) with reset().
 */
export class PushToTalk {
  constructor(button, { start, end, cancel }) {
    this.button = button;
    this.callbacks = { start, end, cancel };
    this.active = false; // an utterance is being recorded (or about to be)
    this.latched = false; // started by a tap: goes on until the next tap
    this.holding = null; // what is held down now: "pointer" or "space"
    this.swallowRelease = false; // the press that ended a latched utterance: its release does nothing
    this.pressedAt = 0;

    button.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      this.press("pointer");
    });
    for (const type of ["pointerup", "pointercancel"]) button.addEventListener(type, () => this.release("pointer"));
    // Sliding off the button while holding it sends, like letting go.
    button.addEventListener("pointerleave", () => this.release("pointer", { tapCounts: false }));
    button.addEventListener("contextmenu", (event) => event.preventDefault()); // a long press on a phone
    button.addEventListener("click", (event) => {
      // Pointer clicks were handled as presses; this is Enter on the focused button, or assistive technology.
      if (event.detail !== 0) return;
      if (this.active) this.finish();
      else {
        this.begin();
        this.latched = true;
      }
    });
    document.addEventListener(
      "keydown",
      (event) => {
        if (event.key === "Escape" && this.active) {
          event.preventDefault(); // the page's own Escape (stop speech) stays out of it
          this.abort();
        } else if (event.key === " " && !event.ctrlKey && !event.metaKey && !event.altKey && this.takesSpace(event)) {
          event.preventDefault();
          if (!event.repeat) this.press("space");
        }
      },
      { capture: true },
    );
    document.addEventListener(
      "keyup",
      (event) => {
        if (event.key === " " && this.holding === "space") {
          event.preventDefault();
          this.release("space");
        }
      },
      { capture: true },
    );
    // Letting go outside the window (or switching away) must not leave the microphone on.
    window.addEventListener("blur", () => this.release(this.holding, { tapCounts: false }));
  }

  takesSpace(event) {
    if (this.holding === "space") return true;
    if (this.button.disabled || document.querySelector("dialog[open]")) return false;
    const target = event.target;
    return target === this.button || !(target instanceof Element) || !target.closest(USES_SPACE);
  }

  press(source) {
    if (this.button.disabled) return;
    if (this.active) {
      if (this.latched && !this.holding) {
        // The second tap: send now, and ignore the release of this press.
        this.holding = source;
        this.swallowRelease = true;
        this.finish();
      }
      return;
    }
    this.holding = source;
    this.begin();
  }

  release(source, { tapCounts = true } = {}) {
    if (!source || this.holding !== source) return;
    this.holding = null;
    if (this.swallowRelease) {
      this.swallowRelease = false;
      return;
    }
    if (!this.active || this.latched) return;
    if (tapCounts && performance.now() - this.pressedAt < TAP_MS) {
      this.latched = true; // a tap: keep listening until the next one
      return;
    }
    this.finish();
  }

  begin() {
    this.active = true;
    this.latched = false;
    this.pressedAt = performance.now();
    this.callbacks.start();
  }

  finish() {
    this.reset();
    this.callbacks.end();
  }

  abort() {
    this.reset();
    this.callbacks.cancel();
  }

  /** Forget the utterance without reporting anything. */
  reset() {
    this.active = false;
    this.latched = false;
    if (!this.swallowRelease) this.holding = null;
  }
}
