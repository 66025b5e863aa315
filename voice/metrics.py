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

LLM_PROMPTS = Counter(
    "voice_llm_prompts_total",
    "Local-model replies, by where their conversation's memory was: in a slot, restored from a saved state, or cold.",
    ["memory"],
)
LLM_PROMPT_TOKENS = Counter(
    "voice_llm_prompt_tokens_total", "Prompt tokens of local-model replies: read, or found in memory.", ["source"]
)
LLM_FIRST_TOKEN = Histogram(
    "voice_llm_first_token_seconds", "Local-model reply submitted to its first token.", buckets=LATENCY_BUCKETS
)
LLM_STATES_SAVED = Counter("voice_llm_states_saved_total", "Conversation memories saved when their slot was taken.")
LLM_STATES_EVICTED = Counter("voice_llm_states_evicted_total", "Saved conversation memories evicted (store full).")
LLM_STATE_FAILURES = Counter(
    "voice_llm_state_failures_total", "Conversation memories that failed to save or restore (the history is read)."
)
LLM_STATE_RESTORE_SECONDS = Counter(
    "voice_llm_state_restore_seconds_total", "Time spent restoring saved conversation memories."
)
LLM_KEY_SHIFTS = Counter(
    "voice_llm_key_shifts_total",
    "Sequences whose keys were moved back over dropped turns' gaps (a K-shift: every reply waits for it).",
)
LLM_STATE_BYTES = Gauge("voice_llm_state_bytes", "Bytes of saved conversation memory held (VOICE_LLM_STATE_MB).")
TURN_VERDICTS = Counter(
    "voice_handsfree_turn_verdicts_total",
    "Hands-free pauses whose words were judged: complete (ends sooner), unsure, unfinished (waits longer).",
    ["verdict"],
)
DRAFTS = Counter(
    "voice_handsfree_drafts_total",
    "Replies begun from a hands-free turn's early transcript: used (the turn ended with those words), discarded"
    " (the person went on, or the words differed), unusable (a reply was still being stored, or it failed).",
    ["outcome"],
)
ECHO_CANCELLER_FAILURES = Counter(
    "voice_echo_canceller_failures_total",
    "Open microphones whose echo canceller could not run (bypassed: the word judge still guards).",
)
LLM_STATE_FILE_BYTES = Gauge(
    "voice_llm_state_file_bytes", "Bytes of saved conversation memory on disk (VOICE_LLM_STATE_DISK_MB)."
)

LLM_EVENTS = {
    "key_shifts": LLM_KEY_SHIFTS.inc,
    "memory_slot": LLM_PROMPTS.labels(memory="slot").inc,
    "memory_restored": LLM_PROMPTS.labels(memory="restored").inc,
    "memory_cold": LLM_PROMPTS.labels(memory="cold").inc,
    "prompt_tokens_read": LLM_PROMPT_TOKENS.labels(source="read").inc,
    "prompt_tokens_reused": LLM_PROMPT_TOKENS.labels(source="memory").inc,
    "first_token_seconds": LLM_FIRST_TOKEN.observe,
    "states_saved": LLM_STATES_SAVED.inc,
    "states_evicted": LLM_STATES_EVICTED.inc,
    "state_failures": LLM_STATE_FAILURES.inc,
    "state_restore_seconds": LLM_STATE_RESTORE_SECONDS.inc,
    "state_bytes": LLM_STATE_BYTES.set,
    "state_file_bytes": LLM_STATE_FILE_BYTES.set,
}

POOL_EVENTS = {
    "started": QUEUE_WAIT.observe,
    "timeout": SYNTHESIS_TIMEOUTS.inc,
    "restart": SYNTHESIS_RESTARTS.inc,
    "crash": SYNTHESIS_CRASHES.inc,
}


def pool_event(name: str, value: float) -> None:
    POOL_EVENTS[name](value)


def llm_event(name: str, value: float) -> None:
    """What the local model's engine did (``voice.responders.batching``)."""
    LLM_EVENTS[name](value)


def allowed(request: HttpRequest) -> bool:
    token = settings.VOICE_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    # Compared as bytes: compare_digest refuses str with non-ASCII characters, which a client may send.
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        # As the admin does for outsiders: nothing to see here.
        return HttpResponse("Staff login or the metrics token required.\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
