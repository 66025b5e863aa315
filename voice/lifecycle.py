"""What a server or worker process does when it starts, and when it is told to stop.

At start, in the background, it finalizes replies left streaming by a process
that died (``voice.recovery``) and loads the speech engine, the language model
and (in servers) the transcription model, so that the first query after a
start is as fast as the ones after it.
Failures are logged, never fatal: the process serves anyway and replies report
what is missing.

At SIGTERM it stops every reply it produces, as ``interrupted``, and gives
them VOICE_SHUTDOWN_TIMEOUT seconds to store what they have.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading

from django.conf import settings

logger = logging.getLogger(__name__)


def _recover() -> None:
    from .recovery import finalize_abandoned

    finalized = finalize_abandoned()
    if finalized:
        logger.info("Finalized %d reply(s) left streaming by a process that stopped", len(finalized))


def _speech() -> None:
    from .tts import get_engine
    from .tts.service import synthesis

    voice = get_engine().get_voice(settings.VOICE_TTS_VOICE or None)
    # The synthesis processes load the voice and say one phrase each, so that
    # the first query after a start is as fast as the next ones.
    if not synthesis().pool.wait_ready(120):
        raise TimeoutError("The synthesis processes did not start within 120 s.")
    logger.info("Speech engine %s ready with voice %s", settings.VOICE_TTS_ENGINE, voice.id)


def _listening() -> None:
    if not served_by_daphne():
        return  # reply workers never hear anyone
    from .stt.service import transcription

    if not transcription().pool.wait_ready(120):
        raise TimeoutError("The transcription process did not start within 120 s.")
    logger.info("Transcription (%s) ready", settings.VOICE_STT_ENGINE)


def _replies() -> None:
    from .responders import get_responder

    get_responder().prepare()
    logger.info("Responder %s ready", settings.VOICE_RESPONDER)


# What start-up has done so far, for GET /health: step name -> "ok" or "failed".
status: dict[str, str] = {}
warmed = threading.Event()


def start() -> threading.Thread | None:
    """Run the start-up steps in a background thread (unless VOICE_WARM_UP is off); returns it."""
    if not settings.VOICE_WARM_UP:
        warmed.set()
        return None

    def run() -> None:
        for step in (_recover, _speech, _replies, _listening):
            name = step.__name__.strip("_")
            try:
                step()
                status[name] = "ok"
            except Exception:
                status[name] = "failed"
                logger.exception("Start-up step %s failed", name)
        warmed.set()

    thread = threading.Thread(target=run, name="voice-start-up", daemon=True)
    thread.start()
    return thread


async def shutdown() -> None:
    """Stop the replies this event loop produces and wait, within the limit, for them to be stored."""
    from .models import Message
    from .producers import producers_of_this_loop

    waiting = [
        registry.stop_all(Message.Status.INTERRUPTED, within=settings.VOICE_SHUTDOWN_TIMEOUT)
        for registry in producers_of_this_loop()
    ]
    if waiting:
        await asyncio.gather(*waiting)
        logger.info("Replies in production stopped and stored for shutdown")


def served_by_daphne() -> bool:
    """Whether this process is a Daphne server (which installs its reactor before loading the application)."""
    return "twisted.internet.reactor" in sys.modules


def stop_with_daphne() -> None:
    """Under Daphne, run ``shutdown`` when the server stops (SIGTERM, SIGINT), before it exits."""
    if not served_by_daphne():
        return  # not served by Daphne (tests, workers): importing the reactor here would install one
    from twisted.internet import defer, reactor

    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: defer.Deferred.fromFuture(asyncio.ensure_future(shutdown()))
    )
