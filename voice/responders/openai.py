"""Any server that speaks OpenAI's streaming ``/v1/chat/completions``.

OpenAI itself, Ollama, vLLM, llama.cpp's server, LM Studio: set
VOICE_LLM_BASE_URL, VOICE_LLM_API_KEY and VOICE_LLM_MODEL. The official
``openai`` package parses the event stream; this module maps what it yields
(answer text, reasoning fields, errors) onto the responder interface.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

import openai
from django.conf import settings

from .base import (
    BaseResponder,
    Reasoning,
    ResponderBadResponse,
    ResponderError,
    ResponderRateLimited,
    ResponderTimeout,
    ResponderUnavailable,
    Turn,
    chat_messages,
)

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4o-mini"
# Where servers put a reasoning model's thinking: llama.cpp and older vLLM use
# the first, Ollama and newer vLLM the second.
REASONING_FIELDS = ("reasoning_content", "reasoning")


class OpenAIResponder(BaseResponder):
    name = "openai"

    def client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=settings.VOICE_LLM_BASE_URL or None,
            # Local servers want no key, but the client insists on one.
            api_key=settings.VOICE_LLM_API_KEY or "no-key",
            timeout=openai.Timeout(
                connect=settings.VOICE_LLM_CONNECT_TIMEOUT,
                # A backstop only: the pipeline times the first token and the
                # gaps between tokens itself, for every responder alike.
                read=max(settings.VOICE_LLM_FIRST_TOKEN_TIMEOUT, settings.VOICE_LLM_TOKEN_TIMEOUT) + 5,
                write=settings.VOICE_LLM_CONNECT_TIMEOUT,
                pool=settings.VOICE_LLM_CONNECT_TIMEOUT,
            ),
            # A voice reply cannot wait for retries with backoff.
            max_retries=0,
        )

    async def respond(self, query: str, history: Sequence[Turn]) -> AsyncIterator[str | Reasoning]:
        client = self.client()
        try:
            stream = await client.chat.completions.create(
                model=settings.VOICE_LLM_MODEL or DEFAULT_MODEL,
                messages=chat_messages(query, history),
                max_tokens=settings.VOICE_LLM_MAX_TOKENS,
                temperature=settings.VOICE_LLM_TEMPERATURE,
                stream=True,
            )
            # Leaving this block, however, closes the upstream request: an
            # interrupted reply stops the model's work on the server too.
            async with stream:
                async for chunk in stream:
                    for piece in pieces_of(chunk):
                        yield piece
        except openai.RateLimitError as exc:
            raise ResponderRateLimited(describe(exc)) from exc
        except openai.APIStatusError as exc:
            raise ResponderError(describe(exc), code="llm_failed") from exc
        except openai.APITimeoutError as exc:
            raise ResponderTimeout(describe(exc)) from exc
        except openai.APIConnectionError as exc:
            raise ResponderUnavailable(describe(exc)) from exc
        except openai.APIError as exc:  # an error object in the middle of the stream
            raise ResponderError(describe(exc), code="llm_failed") from exc
        except ValueError as exc:  # a line that is not JSON, or not a chunk
            raise ResponderBadResponse(f"Unreadable stream from {settings.VOICE_LLM_BASE_URL}: {exc}") from exc
        finally:
            await client.close()


def pieces_of(chunk) -> list[str | Reasoning]:
    """The reasoning and answer text one streamed chunk carries."""
    if getattr(chunk, "object", None) == "error":
        # vLLM reports errors mid-stream as a chunk of their own.
        extra = chunk.model_extra or {}
        raise ResponderError(f"Error chunk from the model server: {extra}", code="llm_failed")
    pieces: list[str | Reasoning] = []
    # A final usage chunk has no choices.
    for choice in getattr(chunk, "choices", None) or []:
        delta = choice.delta
        if delta is None:
            continue
        extra = delta.model_extra or {}
        for field in REASONING_FIELDS:
            if isinstance(extra.get(field), str) and extra[field]:
                pieces.append(Reasoning(extra[field]))
        if delta.content:
            pieces.append(delta.content)
    return pieces


def describe(exc: openai.APIError) -> str:
    """What went wrong, for the log and the admin (never for clients)."""
    status = getattr(exc, "status_code", None)
    where = settings.VOICE_LLM_BASE_URL or "api.openai.com"
    body = getattr(exc, "body", None)
    return f"{type(exc).__name__} from {where}" + (f" (HTTP {status})" if status else "") + f": {body or exc}"
