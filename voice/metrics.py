"""What the server measures about itself, for Prometheus (``GET /metrics``).

Each process keeps its own figures (Prometheus adds up the processes it
scrapes). The endpoint answers staff sessions, or a scraper presenting
VOICE_METRICS_TOKEN as a bearer token.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)

TTFA = Histogram("voice_ttfa_seconds", "Query received to first audio sent, per reply.", buckets=LATENCY_BUCKETS)
REPLIES = Counter("voice_replies_total", "Replies finished, by status.", ["status"])
ACTIVE_SOCKETS = Gauge("voice_active_sockets", "Chat sockets open on this process.")

QUEUE_DEPTH = Gauge("voice_synthesis_queue_depth", "Synthesis jobs waiting for a process.")
QUEUE_WAIT = Histogram(
    "voice_synthesis_queue_wait_seconds", "Time a synthesis job waited for a process.", buckets=LATENCY_BUCKETS
)
SYNTHESIS_TIMEOUTS = Counter("voice_synthesis_timeouts_total", "Synthesis jobs killed for running past their limit.")
SYNTHESIS_RESTARTS = Counter("voice_synthesis_restarts_total", "Synthesis processes replaced (timeouts and crashes).")
SYNTHESIS_CRASHES = Counter("voice_synthesis_crashes_total", "Synthesis processes that died on their own.")
CACHE_HITS = Counter("voice_tts_cache_hits_total", "Segments served from the speech cache.")
CACHE_MISSES = Counter("voice_tts_cache_misses_total", "Segments synthesized (not in the speech cache).")
CACHE_SAVED = Counter("voice_tts_cache_saved_seconds_total", "Synthesis time the speech cache saved.")

POOL_EVENTS = {
    "started": QUEUE_WAIT.observe,
    "timeout": SYNTHESIS_TIMEOUTS.inc,
    "restart": SYNTHESIS_RESTARTS.inc,
    "crash": SYNTHESIS_CRASHES.inc,
}


def pool_event(name: str, value: float) -> None:
    POOL_EVENTS[name](value)


def allowed(request: HttpRequest) -> bool:
    token = settings.VOICE_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        # As the admin does for outsiders: nothing to see here.
        return HttpResponse("Staff login or the metrics token required.\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
