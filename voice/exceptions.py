"""The errors of the voice app, with what clients may be told of them.

Every error has a stable ``code`` and a plain ``public_message``: that is all
a client ever sees. ``str(error)`` carries the details (provider bodies, file
paths, URLs) for the log and for staff in the admin.
"""

from __future__ import annotations


class VoiceError(Exception):
    code = "error"
    public_message = "Something went wrong."

    def __init__(self, detail: str = "", *, code: str | None = None, public_message: str | None = None) -> None:
        super().__init__(detail or public_message or self.public_message)
        if code:
            self.code = code
        if public_message:
            self.public_message = public_message


# --- Speech synthesis (voice/tts/) --------------------------------------------
class TTSError(VoiceError):
    """Synthesis failed. The reply continues as text."""

    code = "tts_failed"
    public_message = "Speech failed; the reply continues as text."


class UnknownVoice(TTSError):
    code = "unknown_voice"
    public_message = "That voice is not available."


class EngineUnavailable(TTSError):
    code = "tts_unavailable"
    public_message = "Speech is not available right now; the reply continues as text."


class BadSpeed(TTSError):
    code = "bad_speed"

    def __init__(self, low: float, high: float) -> None:
        message = f"Speed must be a number from {low:g} to {high:g}."
        super().__init__(message, public_message=message)


# --- Writing replies (voice/responders/) -----------------------------------------
class ResponderError(VoiceError):
    """The reply could not be written; the text so far is kept."""

    code = "reply_failed"
    public_message = "The reply could not be written."


class ResponderUnavailable(ResponderError):
    code = "llm_unavailable"
    public_message = "The language model is not available right now."


class ResponderTimeout(ResponderError):
    code = "llm_timeout"
    public_message = "The language model took too long to answer."


class ResponderRateLimited(ResponderError):
    code = "llm_rate_limited"
    public_message = "The language model is busy right now; try again in a moment."


class ResponderBusy(ResponderError):
    code = "llm_busy"
    public_message = "Too many people are talking with the assistant right now; please ask again in a moment."


class ResponderBadResponse(ResponderError):
    code = "llm_bad_response"
    public_message = "The language model sent something that could not be read."


# --- Speech recognition (voice/stt/) ----------------------------------------------
class STTError(VoiceError):
    """What was said could not be turned into text."""

    code = "stt_failed"
    public_message = "Your speech could not be turned into text."


class TranscriberUnavailable(STTError):
    """The engine or its model cannot be loaded (missing package, bad path, corrupted file)."""

    code = "stt_unavailable"
    public_message = "Voice input is not available right now; please type instead."


class TranscriberBusy(STTError):
    """Too many utterances already wait for transcription (VOICE_STT_QUEUE_LIMIT)."""

    code = "stt_busy"
    public_message = "Voice input is busy right now; try again in a moment, or type."


class NoSpeech(STTError):
    code = "no_speech"
    public_message = "I didn't catch that."


class BadAudio(STTError):
    code = "bad_audio"
    public_message = "That audio could not be used: send 16 kHz mono 16-bit PCM."


class UtteranceTooLong(STTError):
    code = "utterance_too_long"

    def __init__(self, max_seconds: float) -> None:
        message = f"That was too long: please speak for at most {max_seconds:g} seconds at a time."
        super().__init__(message, public_message=message)


class UnknownLanguage(STTError):
    code = "unknown_language"
    public_message = "That language is not available for voice input."
