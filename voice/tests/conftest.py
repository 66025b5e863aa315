"""Fixtures and rules for the whole suite, in four tiers (one folder each):

- ``fast/``: pure units, and the reply pipeline and sockets with fakes (test engines, responders and
  transcribers, the in-memory channel layer, the test database). No Redis, no PostgreSQL of its own, no
  browser, no model, no server process; ``make test-fast`` runs it, and fast/conftest.py fails a test
  that reaches for one of them.
- ``models/``: the real engines in this process or its pools: Piper, Whisper, llama.cpp.
- ``services/``: real processes and services: Daphne, workers, Redis, a PostgreSQL database of its own,
  llama.cpp's server, the benchmark.
- ``browser/``: the page in headless Chromium, against a Daphne of its own.

``make test`` runs them all, twice: on SQLite, then on PostgreSQL with ``--database-tests-only``, which
keeps only the tests whose outcome can depend on the database (see ``touches_the_database``).
"""

import ipaddress
import socket
from pathlib import Path

import pytest
from django.conf import settings

from voice import responders, tts
from voice.models import Conversation

from .engines import GatedEngine
from .responders import RecordingResponder

# No start-up work in the test process: it would load models no test asked
# for, and look for stale replies in a database that is not the test's.
settings.VOICE_WARM_UP = False
# Synthesis in threads of the test process: test engines share state with the
# test (a gate it opens). The process pool has tests of its own.
settings.VOICE_TTS_PROCESSES = 0
# The test process's model keeps no memories on disk: one pass of the suite would hand the next (the same
# conversations, in the same data directory) memories it must read itself. The tests of the disk store pass
# it a folder of their own; the deployments of services/ have their own data directory.
settings.VOICE_LLM_STATE_DISK_MB = 0
# Test users' passwords are hashed in microseconds, not Django's deliberate ~0.3 s (PBKDF2, a million
# rounds): the suite creates and logs in users by the hundred. The deployments of services/ and browser/
# (servers.Site) keep the real hasher.
settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
import voiceproject.asgi  # noqa: E402, F401  (the application, imported once the settings above are made)

TESTS = Path(__file__).resolve().parent
TIERS = ("fast", "models", "services", "browser")
# Fixtures that give a test the database (pytest-django's, and those that need them, as ``user`` does).
DATABASE_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback"}


def pytest_addoption(parser):
    parser.addoption(
        "--database-tests-only",
        action="store_true",
        help="Run only the tests whose outcome can depend on the database (make test's PostgreSQL pass).",
    )


def touches_the_database(item) -> bool:
    """Whether a test can give another outcome on another database, so that the PostgreSQL pass runs it.

    Yes if it uses the test database (the django_db marker, or a fixture that needs it), or its module
    starts a deployment of its own (servers.Site: its database is of the pass's kind, unless the test is
    marked ``deployment`` and picks one itself). No for the browser tests: they test the page, against a
    Daphne whose database work the tests of the other tiers cover on both. A test that uses no database
    cannot reach one: pytest-django fails it.
    """
    if item.get_closest_marker("browser"):
        return False
    if item.get_closest_marker("django_db") or DATABASE_FIXTURES & set(item.fixturenames):
        return True
    from .servers import Site

    return getattr(item.module, "Site", None) is Site


# The order tests start in. In one process: the fast tier first (its failures show in seconds), then
# the slower ones. Under pytest-xdist (make test: --dist loadfile hands whole modules to two workers in
# this order): longest first, so that the workers finish together: the benchmark's smoke run (minutes),
# the other services, the browser, the models, and the fast tier last, to fill the gaps.
ORDER = ("fast/", "models/", "services/", "browser/")
ORDER_IN_PARALLEL = ("services/test_bench.py", "services/", "browser/", "models/", "fast/")


def start_order(item, order) -> int:
    path = item.path.relative_to(TESTS).as_posix()
    return next((n for n, prefix in enumerate(order) if path.startswith(prefix)), len(order))


def pytest_collection_modifyitems(config, items):
    if config.getoption("--database-tests-only"):
        deselected = [item for item in items if not touches_the_database(item)]
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if touches_the_database(item)]
    order = ORDER_IN_PARALLEL if hasattr(config, "workerinput") else ORDER
    items.sort(key=lambda item: start_order(item, order))  # stable: within a tier, the modules' own order


class MisplacedModule(pytest.File):
    def collect(self):
        raise self.CollectError(
            f"{self.path.name} is not in a tier folder: test modules live in one of voice/tests/"
            f"{{{','.join(TIERS)}}}/ (see voice/tests/conftest.py); helpers stay in voice/tests/."
        )


def pytest_collect_file(file_path, parent):
    """A test module sits in the folder of its tier, never beside the helpers."""
    if file_path.parent == TESTS and file_path.name.startswith("test_") and file_path.suffix == ".py":
        return MisplacedModule.from_parent(parent, path=file_path)
    return None


def pytest_sessionfinish(session):
    """Leave no files behind: a file SQLite test database in WAL mode leaves -wal and -shm beside it."""
    name = settings.DATABASES["default"].get("TEST", {}).get("NAME")
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") and name:
        for suffix in ("-wal", "-shm"):
            Path(f"{name}{suffix}").unlink(missing_ok=True)


@pytest.fixture(scope="session", autouse=True)
def drop_stray_connections(django_db_setup, django_db_blocker):
    """Let the test database be dropped on PostgreSQL.

    Async tests reach the database from executor threads, whose connections
    outlive the tests; PostgreSQL refuses to drop a database still in use.
    """
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Fail any test that tries to leave this machine (gTTS must be faked)."""
    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                raise OSError(f"Test tried to reach {host}: tests must not need the internet.")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


@pytest.fixture(autouse=True)
def audio_in_memory(settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Rate limits count in the cache, which outlives a test; users of one test start afresh."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def read_aloud(settings):
    """Replies read the query back unless a test asks for a model: fast, and exact to assert."""
    settings.VOICE_RESPONDER = "readaloud"


@pytest.fixture(autouse=True)
def fresh_engines():
    """Engines and responders are per-process singletons; tests that swap them must not leak."""
    kept = {name: engine for name, engine in tts._instances.items() if name in tts.ENGINES}
    kept_responders = {name: r for name, r in responders._instances.items() if name in responders.RESPONDERS}
    yield
    tts._instances.clear()
    tts._instances.update(kept)
    responders._instances.clear()
    responders._instances.update(kept_responders)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("mallory", password="pw-mallory-123")


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("staff", password="pw-staff-123", is_staff=True)


@pytest.fixture
def conversation(user):
    return Conversation.objects.create(owner=user)


@pytest.fixture
def tone_engine(settings):
    settings.VOICE_TTS_ENGINE = "voice.tests.engines.ToneEngine"


@pytest.fixture
def recording_responder(settings):
    settings.VOICE_RESPONDER = "voice.tests.responders.RecordingResponder"
    RecordingResponder.queries, RecordingResponder.histories = [], []
    return RecordingResponder


@pytest.fixture
def gated_engine(settings):
    settings.VOICE_TTS_ENGINE = "voice.tests.engines.GatedEngine"
    GatedEngine.calls = 0
    GatedEngine.gate.clear()
    yield GatedEngine.gate
    GatedEngine.gate.set()


@pytest.fixture
def short_answers(settings):
    # No assertion depends on the words: llama.cpp is built for each CPU, so even
    # greedy output differs between machines. Greedy only makes a failure repeat
    # on the machine that saw it; the cap keeps a reply to a few seconds.
    settings.VOICE_LLM_TEMPERATURE = 0.0
    settings.VOICE_LLM_MAX_TOKENS = 60
