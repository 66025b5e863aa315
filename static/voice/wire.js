// The chat socket's vocabulary, generated from voice/protocol.py by
// `manage.py wire_js`: do not edit; a test fails when it is out of date.

/** Client → server event types. */
export const CLIENT = Object.freeze({
  QUERY: "query",
  CANCEL: "cancel",
  HEARD: "heard",
  PLAYBACK_POSITION: "playback.position",
  SPEECH_START: "speech.start",
  SPEECH_END: "speech.end",
  SPEECH_CANCEL: "speech.cancel",
  LISTEN_START: "listen.start",
  LISTEN_STOP: "listen.stop",
});

/** Server → client event types. */
export const SERVER = Object.freeze({
  MESSAGE: "message",
  REPLY_DELTA: "reply.delta",
  QUEUED: "queued",
  AUDIO_START: "audio.start",
  AUDIO_CHUNK: "audio.chunk",
  AUDIO_END: "audio.end",
  REPLY_DONE: "reply.done",
  TRANSCRIPT: "transcript",
  LISTEN_STATE: "listen.state",
  LISTEN_TURN: "listen.turn",
  PLAYBACK_DUCK: "playback.duck",
  ERROR: "error",
});

/** WebSocket close codes. */
export const CLOSE = Object.freeze({
  UNAUTHENTICATED: 4401,
  FORBIDDEN: 4403,
  NOT_FOUND: 4404,
  TOO_MANY_SOCKETS: 4429,
  UNAVAILABLE: 4503,
});

/** A message's status. */
export const STATUS = Object.freeze({
  STREAMING: "streaming",
  COMPLETE: "complete",
  AUDIO_FAILED: "audio_failed",
  CANCELLED: "cancelled",
  INTERRUPTED: "interrupted",
  FAILED: "failed",
});

/** The statuses of a reply that was stopped before its end. */
export const STOPPED = Object.freeze([
  "interrupted",
  "cancelled",
]);

/** Who wrote a message. */
export const ROLE = Object.freeze({
  USER: "user",
  ASSISTANT: "assistant",
});

/** Hands-free mode's states (listen.state). */
export const LISTENING = Object.freeze({
  LISTENING: "listening",
  OFF: "off",
});

/** Why hands-free mode went off. */
export const LISTEN_OFF = Object.freeze({
  STOPPED: "stopped",
  IDLE: "idle",
  LIMIT: "limit",
  FAILED: "failed",
});

/** What a listening socket works without. */
export const LISTEN_NOTE = Object.freeze({
  NO_ECHO_CANCELLER: "no_echo_canceller",
});

/** A hands-free turn's phases (listen.turn). */
export const TURN_PHASE = Object.freeze({
  SPEAKING: "speaking",
  ENDED: "ended",
  DISCARDED: "discarded",
});

/** Why a hands-free turn stored nothing. */
export const DISCARD_REASON = Object.freeze({
  NOISE: "noise",
  ECHO: "echo",
  BACKCHANNEL: "backchannel",
  COMMAND: "command",
  TOO_LONG: "too_long",
  FAILED: "failed",
});

/** Why a reply was ended early: its "cut" ("" if it was not). */
export const CUT = Object.freeze({
  LENGTH: "length",
  REPETITION: "repetition",
});

/** Errors about an utterance: nothing was stored. */
export const SPEECH_ERRORS = Object.freeze([
  "speech_not_started",
  "bad_audio_format",
  "utterance_too_long",
  "speech_rate_limited",
  "no_speech",
  "bad_audio",
  "unknown_language",
  "stt_failed",
  "stt_unavailable",
  "stt_busy",
  "stt_timeout",
]);

/** Of those, the ones that end the recording itself. */
export const RECORDING_ERRORS = Object.freeze([
  "speech_not_started",
  "bad_audio_format",
  "utterance_too_long",
  "speech_rate_limited",
]);

/** Errors about hands-free mode. */
export const LISTEN_ERRORS = Object.freeze([
  "hands_free_on",
  "listen_limit",
  "listen_failed",
  "audio_too_fast",
]);

/** The one audio format voice input takes. */
export const SPEECH_FORMAT = "pcm_s16le";
export const SPEECH_RATE = 16000;

/** A conversation's title: its first query, on one line, at most this many characters. */
export const TITLE_CHARS = 80;
