"""Crashes and stops of real processes: no reply stays "streaming", no produced text is lost."""

from __future__ import annotations

import signal
import time
from contextlib import contextmanager

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from voice.tests.helpers import events
from voice.tests.servers import (
    ChatClient,
    DaphneServer,
    RedisServer,
    Site,
    WorkerProcess,
    read_frame,
    read_reply,
    send_query,
    wait_until,
)

SLOW = {
    "VOICE_RESPONDER": "voice.tests.responders.SlowResponder",  # a sentence every 0.2 s
    "VOICE_TTS_ENGINE": "voice.tests.engines.ToneEngine",
    # Nobody speaks here: no Whisper to load at each start.
    "VOICE_STT_ENGINE": "voice.tests.transcribers.SecondsTranscriber",
    "VOICE_REPLY_HEARTBEAT": "0.5",
}


METRICS_TOKEN = "recovery-metrics-token"


def reply_row(site: Site, reply_id: int) -> tuple[str, str, str]:
    (row,) = site.fetch("SELECT status, text, error_code FROM voice_message WHERE id = %s", reply_id)
    return row


def streaming_replies(site: Site) -> int:
    return site.fetch("SELECT count(*) FROM voice_message WHERE status = 'streaming'")[0][0]


@contextmanager
def slow_reply(server: DaphneServer):
    """Ask on a new conversation of a new tab; yields the reply's id once its text flows, with the tab open."""
    client = ChatClient(server)
    with client.open(client.new_conversation()) as tab:
        send_query(tab, "Talk for a while.")
        while True:
            kind, *frame = read_frame(tab, timeout=10)
            if kind == "event" and frame[0]["type"] == "reply.delta":
                yield frame[0]["message_id"]
                return


def test_a_killed_server_leaves_no_reply_streaming_and_keeps_its_text(tmp_path):
    site = Site(tmp_path, **SLOW).setup()
    server = DaphneServer(site).start()
    try:
        with slow_reply(server) as reply_id:
            # Wait until two sentences are safely stored, then crash.
            wait_until(lambda: "Sentence number 2." in reply_row(site, reply_id)[1], 10, "no checkpoint")
            server.kill()
        status, kept, _code = reply_row(site, reply_id)
        assert status == "streaming" and kept.startswith("Sentence number 1. Sentence number 2.")
        # A new process on this machine sees at once that the producer is gone.
        server.start()
        wait_until(lambda: reply_row(site, reply_id)[0] != "streaming", 10, "reply still streaming")
        status, text, code = reply_row(site, reply_id)
        assert (status, code) == ("interrupted", "producer_gone")
        assert text.startswith(kept)  # nothing that was stored is lost
        assert streaming_replies(site) == 0
        assert "Traceback" not in server.log()
    finally:
        server.stop()
        site.destroy()


def assert_sigterm_stores_the_reply(site, server, producer) -> None:
    """SIGTERM ``producer`` (the server or worker producing a slow reply): it stores the reply and exits in time."""
    with slow_reply(server) as reply_id:
        wait_until(lambda: "Sentence number 2." in reply_row(site, reply_id)[1], 10, "no checkpoint")
        started = time.monotonic()
        producer.process.send_signal(signal.SIGTERM)
        producer.process.wait(15)
    assert time.monotonic() - started < 8
    status, text, _code = reply_row(site, reply_id)
    assert status == "interrupted" and text.startswith("Sentence number 1. Sentence number 2.")
    assert "Replies in production stopped and stored for shutdown" in producer.log()


def test_sigterm_stores_the_replies_in_production_and_exits_in_time(tmp_path):
    site = Site(tmp_path, VOICE_SHUTDOWN_TIMEOUT="5", **SLOW).setup()
    server = DaphneServer(site).start()
    try:
        assert_sigterm_stores_the_reply(site, server, server)
    finally:
        server.stop()
        site.destroy()


@pytest.mark.deployment
def test_a_dead_worker_is_noticed_with_no_tab_open(tmp_path):
    """The asking tab closed, then the worker producing the reply died: the server finalizes it anyway."""
    site = Site(tmp_path, database="postgres")
    redis = RedisServer(site).start()
    site.env.update(
        SLOW,
        REDIS_URL=redis.url,
        VOICE_REPLY_DISPATCH="worker",
        VOICE_TTS_PROCESSES="1",
        VOICE_REPLY_STALE_AFTER="2",
        VOICE_REPLY_SWEEP_INTERVAL="0.5",
    )
    processes = [redis]
    try:
        site.setup()
        server = DaphneServer(site).start()
        processes.append(server)
        worker = WorkerProcess(site).start()
        processes.append(worker)
        with slow_reply(server) as reply_id:
            (produced_by,) = site.fetch("SELECT produced_by FROM voice_message WHERE id = %s", reply_id)[0]
            assert produced_by.startswith("worker:")
        wait_until(lambda: "Sentence number 2." in reply_row(site, reply_id)[1], 10, "no checkpoint")
        worker.kill()
        wait_until(lambda: reply_row(site, reply_id)[0] != "streaming", 15, "reply still streaming")
        status, text, code = reply_row(site, reply_id)
        assert (status, code) == ("interrupted", "producer_gone")
        assert text.startswith("Sentence number 1. Sentence number 2.")
    finally:
        for process in processes:
            process.stop()
        site.destroy()


@pytest.mark.deployment
def test_a_worker_stopped_with_sigterm_stores_its_replies(tmp_path):
    site = Site(tmp_path, database="postgres")
    redis = RedisServer(site).start()
    site.env.update(SLOW, REDIS_URL=redis.url, VOICE_REPLY_DISPATCH="worker", VOICE_SHUTDOWN_TIMEOUT="5")
    processes = [redis]
    try:
        site.setup()
        server = DaphneServer(site).start()
        processes.append(server)
        worker = WorkerProcess(site).start()
        processes.append(worker)
        assert_sigterm_stores_the_reply(site, server, worker)
    finally:
        for process in processes:
            process.stop()
        site.destroy()


def test_a_hung_synthesis_neither_blocks_other_replies_nor_the_shutdown(tmp_path):
    site = Site(
        tmp_path,
        VOICE_TTS_ENGINE="voice.tests.engines.FaultyEngine",
        VOICE_TTS_PROCESSES="2",
        VOICE_TTS_JOB_TIMEOUT="60",  # longer than the test: only the shutdown can end this hang
        VOICE_SHUTDOWN_TIMEOUT="3",
    ).setup()
    server = DaphneServer(site).start()
    try:
        client = ChatClient(server)
        with client.open(client.new_conversation()) as hung, client.open(client.new_conversation()) as other:
            send_query(hung, "Please hang.")
            while read_frame(hung, timeout=10)[1].get("type") != "reply.delta":
                pass
            # The other process serves everyone else meanwhile.
            send_query(other, "Hello there.")
            frames = read_reply(other, timeout=20)
            assert [f for f in frames if f[0] == "audio"], "no audio while another synthesis hangs"
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            server.process.wait(20)
        assert time.monotonic() - started < 10
        assert streaming_replies(site) == 0
    finally:
        server.stop()
        site.destroy()


def prompts_by_memory(server: DaphneServer) -> dict[str, float]:
    """``voice_llm_prompts_total`` from the server's /metrics: local-model replies by where their memory was."""
    response = requests.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)
    response.raise_for_status()
    return {
        sample.labels["memory"]: sample.value
        for family in text_string_to_metric_families(response.text)
        if family.name == "voice_llm_prompts"
        for sample in family.samples
        if sample.name == "voice_llm_prompts_total"
    }


@pytest.mark.deployment
def test_a_restarted_server_resumes_conversations_from_the_memory_it_wrote_on_sigterm(tmp_path):
    site = Site(
        tmp_path,
        VOICE_RESPONDER="local",
        VOICE_LLM_MAX_TOKENS="24",
        VOICE_LLM_SEQUENCES="2",
        VOICE_TTS_ENGINE="voice.tests.engines.ToneEngine",
        VOICE_STT_ENGINE="voice.tests.transcribers.SecondsTranscriber",
        VOICE_METRICS_TOKEN=METRICS_TOKEN,
    ).setup()
    server = DaphneServer(site)
    try:
        server.start(timeout=90)
        client = ChatClient(server)
        conversation = client.new_conversation()
        with client.open(conversation) as tab:
            for question in ("What is the capital of France?", "Name a big animal.", "What colour is grass?"):
                send_query(tab, question)
                read_reply(tab, timeout=60)
        server.stop()  # SIGTERM
        assert list((site.data_dir / "llm-states").glob("*/*.state")), server.log()

        server.start(timeout=90)
        client = ChatClient(server)
        with client.open(conversation) as tab:
            send_query(tab, "And what did I ask first?")
            assert events(read_reply(tab, timeout=60), "reply.done")[0]["status"] == "complete"
        assert prompts_by_memory(server) == {"slot": 0, "restored": 1, "cold": 0}
        assert "Traceback" not in server.log()
    finally:
        server.stop()
        site.destroy()
