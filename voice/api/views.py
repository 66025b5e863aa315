"""The speech API's HTTP endpoints (documented in docs/api.md).

Two shapes existing clients speak: Vivoka VSDK-style (voices, then a token for
the streaming WebSocket in ``consumers.py``) and OpenAI's ``/v1/audio/speech``.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from .. import audio
from ..models import SpeechRequest, SpeechToken
from ..pipeline import GivenText, ReplyPipeline, Speaker, SpeechChunk, SpeechFailed
from ..protocol import ProtocolError, storable_text
from ..tts import BaseEngine, EngineUnavailable, TTSError, get_engine
from ..tts.base import check_speed
from .auth import ApiError, Caller, check_cost, check_rate, identify

logger = logging.getLogger(__name__)

# OpenAI's voice names: existing clients send them; they get the default voice.
OPENAI_VOICES = {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"}
CONTENT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav", "pcm": "audio/pcm"}


def vivoka_error(error: ApiError) -> JsonResponse:
    return JsonResponse({"error": {"code": error.code, "message": error.message}}, status=error.status)


def openai_error(error: ApiError) -> JsonResponse:
    kind = {401: "authentication_error", 429: "rate_limit_error"}.get(
        error.status, "server_error" if error.status >= 500 else "invalid_request_error"
    )
    body = {"message": error.message, "type": kind, "param": error.param, "code": error.code}
    return JsonResponse({"error": body}, status=error.status)


async def authorize(request: HttpRequest) -> Caller:
    # request.user is lazy and synchronous: resolve it off the event loop.
    caller = await sync_to_async(identify)(request)
    await sync_to_async(check_rate)(caller)
    return caller


async def accept_post(request: HttpRequest) -> tuple[Caller, dict]:
    """The caller and JSON body of a POST, or ApiError."""
    if request.method != "POST":
        raise ApiError(405, "method_not_allowed", "POST a JSON body.")
    try:
        # The session CSRF check may read a form body too, so both are covered.
        caller = await authorize(request)
        return caller, parse_json(request)
    except RequestDataTooBig:
        # Django would answer a bare 400 and log a traceback: a client's mistake is neither.
        raise ApiError(413, "request_too_large", "The request body is too large.") from None


def parse_json(request: HttpRequest) -> dict:
    try:
        payload = json.loads(request.body or b"")
    except ValueError:
        raise ApiError(400, "bad_json", "The body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "bad_json", "The body must be a JSON object.")
    return payload


def resolve(text, voice, speed, *, text_param: str = "text", voice_param: str = "voice_id") -> tuple:
    """(engine, voice id, speed, sample rate) for a request, or ApiError 400. Blocking (voices load lazily)."""
    try:
        storable_text(text, limit=settings.VOICE_MAX_QUERY_CHARS)
    except ProtocolError as exc:
        raise ApiError(400, exc.code, str(exc).replace("query", "text"), text_param) from None
    if voice is not None and not isinstance(voice, str):
        raise ApiError(400, "invalid_type", f"{voice_param} must be a string.", voice_param)
    engine = get_engine()
    try:
        chosen = engine.get_voice(None if voice in OPENAI_VOICES else voice)
    except TTSError as exc:
        raise ApiError(400, exc.code, exc.public_message, voice_param) from exc
    try:
        speed = check_speed(1.0 if speed is None else speed)
    except TTSError as exc:
        raise ApiError(400, exc.code, exc.public_message, "speed") from exc
    return engine, chosen.id, speed, chosen.sample_rate


def synthesis_failed(error: TTSError) -> ApiError:
    """What a client is told when synthesis fails before any audio was sent."""
    status = 503 if isinstance(error, EngineUnavailable) else 500
    return ApiError(status, error.code, error.public_message)


async def record(caller: Caller, api: str, voice: str, text: str, response_format: str, stats: dict) -> None:
    await SpeechRequest.objects.acreate(
        api=api,
        user=caller.user,
        api_key=caller.api_key,
        voice=voice,
        characters=len(text),
        response_format=response_format,
        duration_ms=stats.get("duration_ms"),
        ttfa_ms=stats.get("ttfa_ms"),
        error=stats.get("error", ""),
    )


async def pcm_stream(engine: BaseEngine, text: str, voice: str, speed: float, stats: dict):
    """PCM16 chunks of ``text`` as the reply pipeline speaks them; fills ``stats`` on the way."""
    started = time.monotonic()
    seconds = 0.0
    speaker = Speaker(engine, voice, speed)
    try:
        async for event in ReplyPipeline(GivenText(), speaker).run(text):
            if isinstance(event, SpeechFailed):
                raise event.error
            if not isinstance(event, SpeechChunk):
                continue
            if event.chunk.format != audio.PCM_S16LE:
                raise TTSError(
                    f"The {engine.name} engine gives {event.chunk.format}, not PCM.",
                    code="unsupported_engine",
                    public_message="This speech engine cannot stream PCM; use the mp3 format of another API.",
                )
            stats.setdefault("ttfa_ms", round((time.monotonic() - started) * 1000))
            seconds += event.chunk.duration
            yield event.chunk
    except TTSError as exc:
        stats["error"] = str(exc)
        raise
    finally:
        stats["duration_ms"] = round(seconds * 1000)


# --- Vivoka VSDK style ----------------------------------------------------------
async def voices(request: HttpRequest) -> JsonResponse:
    try:
        await authorize(request)
        listed = await sync_to_async(get_engine().voices)()
    except ApiError as error:
        return vivoka_error(error)
    except TTSError as exc:
        return vivoka_error(ApiError(503, exc.code, exc.public_message))
    return JsonResponse({voice.id: {k: v for k, v in voice.as_dict().items() if k != "id"} for voice in listed})


@csrf_exempt  # API keys are not cookies; sessions are CSRF-checked in identify()
async def synthesize(request: HttpRequest) -> JsonResponse:
    try:
        caller, payload = await accept_post(request)
        _engine, voice, speed, sample_rate = await sync_to_async(resolve)(
            payload.get("text"), payload.get("voice_id"), payload.get("speed")
        )
        await sync_to_async(check_cost)(caller, payload["text"])
        token = await SpeechToken.objects.acreate(
            token=secrets.token_urlsafe(32),
            user=caller.user,
            api_key=caller.api_key,
            text=payload["text"],
            voice=voice,
            speed=speed,
            expires_at=timezone.now() + timedelta(seconds=settings.VOICE_API_TOKEN_TTL),
        )
    except ApiError as error:
        return vivoka_error(error)
    return JsonResponse({"token": token.token, "sample_rate": sample_rate})


# --- OpenAI compatible ------------------------------------------------------------
@csrf_exempt
async def speech(request: HttpRequest) -> HttpResponse:
    try:
        caller, payload = await accept_post(request)
        response_format = payload.get("response_format", "mp3")
        if not isinstance(response_format, str) or response_format not in CONTENT_TYPES:
            raise ApiError(
                400,
                "unsupported_response_format",
                f"response_format must be one of {', '.join(CONTENT_TYPES)}.",
                "response_format",
            )
        engine, voice, speed, sample_rate = await sync_to_async(resolve)(
            payload.get("input"), payload.get("voice"), payload.get("speed"), text_param="input", voice_param="voice"
        )
        await sync_to_async(check_cost)(caller, payload["input"])
    except ApiError as error:
        return openai_error(error)

    text = payload["input"]
    stats: dict = {}
    chunks = pcm_stream(engine, text, voice, speed, stats)
    # The status line says whether synthesis works: wait for the first audio before sending it.
    try:
        first = await anext(chunks, None)
    except TTSError as exc:
        logger.warning("Speech API synthesis failed before any audio: %s", exc)
        await record(caller, SpeechRequest.Api.OPENAI, voice, text, response_format, stats)
        return openai_error(synthesis_failed(exc))

    async def body():
        encoder = audio.Mp3Encoder(sample_rate) if response_format == "mp3" else None
        if response_format == "wav":
            yield audio.streaming_wav_header(sample_rate)
        try:
            if first is not None:
                yield encoder.encode(first.data) if encoder else first.data
                async for chunk in chunks:
                    yield encoder.encode(chunk.data) if encoder else chunk.data
            if encoder:
                yield encoder.flush()
        except TTSError:
            # The status line is gone already: end the stream short, and say why in the log.
            logger.exception("Speech API synthesis failed mid-stream")
        finally:
            await chunks.aclose()
            await record(caller, SpeechRequest.Api.OPENAI, voice, text, response_format, stats)

    response = StreamingHttpResponse(body(), content_type=CONTENT_TYPES[response_format])
    response["X-Sample-Rate"] = str(sample_rate)
    return response
