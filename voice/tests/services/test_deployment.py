"""The scale-out deployment, as real processes: Daphne x2, runworker x2, PostgreSQL, Redis."""

from __future__ import annotations

import io
import json
import threading
import time
import wave

import pytest
from websockets.exceptions import ConnectionClosed

from voice.tests.helpers import assert_is_speech, audio_frames, events
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

pytestmark = pytest.mark.deployment

THREE_SENTENCES = "The first worker speaks. The second one listens. Nobody waits for long."


def pcm(frames):
    return b"".join(data for _header, data in audio_frames(frames))


def outcome_of_query(tab, text: str, timeout: float = 15) -> str:
    """ "closed", an error code, or the reply's status; TimeoutError if nothing comes."""
    try:
        send_query(tab, text)
        while True:
            frame = read_frame(tab, timeout)
            if frame[0] == "event" and frame[1]["type"] == "error":
                return frame[1]["code"]
            if frame[0] == "event" and frame[1]["type"] == "reply.done":
                return frame[1]["status"]
    except ConnectionClosed:
        return "closed"


def scale_out_env(redis_url: str) -> dict:
    return {
        "REDIS_URL": redis_url,
        "VOICE_TTS_DISPATCH": "worker",
        "VOICE_TTS_WORKER_TIMEOUT": "10",
        # A dead worker's replies are finalized within a few seconds.
        "VOICE_REPLY_STALE_AFTER": "3",
        "VOICE_REPLY_SWEEP_INTERVAL": "0.5",
        # Two workers (and two servers) on two cores: one synthesis process each.
        "VOICE_TTS_PROCESSES": "1",
    }


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    data = tmp_path_factory.mktemp("scale-out")
    shared_audio = data / "shared-audio"
    site = Site(
        data,
        database="postgres",
        DJANGO_STORAGE_OPTIONS=json.dumps({"location": str(shared_audio)}),
        **scale_out_env("redis://127.0.0.1:6379/0"),
    )
    processes = []
    try:
        site.setup()
        for process in (DaphneServer(site), DaphneServer(site), WorkerProcess(site), WorkerProcess(site)):
            processes.append(process.start())  # one that fails to start stops those before it too
        yield site, processes[:2], processes[2:]
    finally:
        for process in processes:
            process.stop()
        site.destroy()


def test_two_servers_two_workers_one_conversation(deployment):
    site, (server_a, server_b), _workers = deployment
    alice_on_a = ChatClient(server_a)
    alice_on_b = ChatClient(server_b)
    conversation = alice_on_a.new_conversation()
    with alice_on_a.open(conversation) as tab_a, alice_on_b.open(conversation) as tab_b:
        send_query(tab_a, THREE_SENTENCES)
        frames_a = read_reply(tab_a)
        frames_b = read_reply(tab_b)
    for frames in (frames_a, frames_b):
        assert events(frames, "reply.done")[0]["status"] == "complete"
        assert "".join(e["text"] for e in events(frames, "reply.delta")) == THREE_SENTENCES
        assert len(audio_frames(frames)) >= 3
    assert pcm(frames_a) == pcm(frames_b)
    assert_is_speech(pcm(frames_a), 22050, 3, 12)
    assert [e["requested_here"] for e in events(frames_a, "message")] == [True, True, True]
    assert [e["requested_here"] for e in events(frames_b, "message")] == [False, False, False]
    reply_id = events(frames_a, "reply.done")[0]["message_id"]
    produced_by, status, audio_name = site.shell(
        "from voice.models import Message;"
        f"m = Message.objects.get(pk={reply_id}); print(m.produced_by, m.status, m.audio.name)"
    ).split()
    assert produced_by.startswith("worker:") and status == "complete"
    # Stored by a worker in the configured storage, served by either server.
    assert (site.data_dir / "shared-audio" / audio_name).exists()
    url = events(frames_a, "audio.end")[0]["url"]
    response = alice_on_b.http.get(f"{server_b.url}{url}")
    assert response.status_code == 200 and response.headers["Content-Type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as wav:
        assert wav.readframes(wav.getnframes()) == pcm(frames_a)


LISTEN = {"type": "listen.start", "format": "pcm_s16le", "sample_rate": 16000}
OVER = "Wait, tell me about the weekend in London instead."


def read_until(tab, wanted, timeout: float = 60) -> list[tuple]:
    """Frames up to and including the first event for which ``wanted(event)`` holds."""
    frames = []
    deadline = time.monotonic() + timeout
    while not (frames and frames[-1][0] == "event" and wanted(frames[-1][1])):
        frames.append(read_frame(tab, max(0.01, deadline - time.monotonic())))
    return frames


@pytest.mark.realtime
def test_a_voice_over_a_workers_reply_stops_it_on_every_server(deployment):
    """Hands-free on server A; the reply made by a worker; another tab on server B; Redis between them all."""
    from bench.stt import spoken, word_error_rate

    site, (server_a, server_b), _workers = deployment
    alice_on_a, alice_on_b = ChatClient(server_a), ChatClient(server_b)
    conversation = alice_on_a.new_conversation()
    over = spoken(OVER)
    with alice_on_a.open(conversation) as tab_a, alice_on_b.open(conversation) as tab_b:
        tab_a.send(json.dumps(LISTEN))
        read_until(tab_a, lambda e: e["type"] == "listen.state" and e["state"] == "listening")
        send_query(tab_a, THREE_SENTENCES)
        while (frame := read_frame(tab_a, 60))[0] != "audio":
            pass
        reply_id = frame[1]["message_id"]
        # The person talks over it, as the page's microphone sends it: 100 ms frames, in real time.
        voice = bytes(9600) + over + bytes(48000)
        began = time.monotonic()
        for n, offset in enumerate(range(0, len(voice), 3200)):
            time.sleep(max(0.0, began + n * 0.1 - time.monotonic()))
            tab_a.send(voice[offset : offset + 3200])
        heard = read_until(tab_a, lambda e: e["type"] == "reply.done" and e["message_id"] != reply_id)
        on_b = read_until(
            tab_b,
            lambda e: (
                e["type"] == "message" and e["message"]["id"] == reply_id and e["message"]["status"] == "interrupted"
            ),
        )
    assert {"type": "playback.duck", "message_id": reply_id, "on": True} in events(on_b)
    assert events(heard, "reply.done")[-1]["status"] == "complete"
    turn = [e["turn_id"] for e in events(heard, "listen.turn") if e["phase"] == "speaking"][-1]
    query, produced_by, status = site.shell(
        "from voice.models import Message;"
        f"q = Message.objects.get(client_id={turn!r}); r = Message.objects.get(pk={reply_id});"
        "print(q.text.replace(' ', '_'), r.produced_by, r.status)"
    ).split()
    assert produced_by.startswith("worker:") and status == "interrupted"
    assert word_error_rate([OVER], [query.replace("_", " ")]) <= 0.2


def test_listening_sockets_are_counted_across_servers(deployment):
    _site, (server_a, server_b), _workers = deployment
    alice_on_a, alice_on_b = ChatClient(server_a), ChatClient(server_b)
    conversation = alice_on_a.new_conversation()
    with (
        alice_on_a.open(conversation) as one,
        alice_on_b.open(conversation) as two,
        alice_on_a.open(conversation) as three,
    ):
        for tab in (one, two):
            tab.send(json.dumps(LISTEN))
            read_until(tab, lambda e: e["type"] == "listen.state" and e["state"] == "listening")
        three.send(json.dumps(LISTEN))
        assert events(read_until(three, lambda e: e["type"] == "error"), "error")[-1]["code"] == "listen_limit"
        one.send(json.dumps({"type": "listen.stop"}))
        read_until(one, lambda e: e["type"] == "listen.state" and e["state"] == "off")
        three.send(json.dumps(LISTEN))  # a place is free again
        read_until(three, lambda e: e["type"] == "listen.state" and e["state"] == "listening")


def test_killing_a_worker_mid_flow_loses_no_query(deployment):
    site, servers, workers = deployment
    results: dict[int, list] = {}
    sent: list[str] = []
    errors: list[BaseException] = []

    def user(n: int) -> None:
        try:
            client = ChatClient(servers[n % 2])
            conversation = client.new_conversation()
            with client.open(conversation) as tab:
                for turn in range(4):
                    text = f"User {n} turn {turn}. " + THREE_SENTENCES
                    sent.append(text)
                    send_query(tab, text)
                    frames = read_reply(tab, timeout=40)
                    results.setdefault(n, []).append(events(frames, "reply.done")[0]["status"])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=user, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    doomed = f"worker:%:{workers[0].process.pid}"
    # Kill it while it is producing a reply, not at some moment that may fall between them.
    wait_until(
        lambda: site.fetch(
            "SELECT count(*) FROM voice_message WHERE status = 'streaming' AND produced_by LIKE %s", doomed
        )[0][0],
        30,
        "the first worker never got a reply",
    )
    workers[0].kill()
    for thread in threads:
        thread.join(90)
    assert errors == []
    # Every query got an answer: complete, or interrupted where the dead worker had it.
    assert sorted(len(statuses) for statuses in results.values()) == [4, 4, 4, 4]
    statuses = [status for statuses in results.values() for status in statuses]
    assert set(statuses) <= {"complete", "interrupted"} and "interrupted" in statuses
    # After the kill the survivor serves: the last turn of every user is complete.
    assert [statuses[-1] for statuses in results.values()] == ["complete"] * 4
    stored = site.shell(
        "from voice.models import Message; print(Message.objects.filter(role='user', text__startswith='User ').count())"
    )
    assert int(stored) == len(sent) == 16
    workers[0].start()  # leave the deployment as we found it


def test_redis_outage_is_a_clear_error_and_recovery_needs_no_restart(tmp_path):
    site = Site(tmp_path, database="postgres")
    redis = RedisServer(site).start()
    site.env.update(scale_out_env(redis.url))
    processes = [redis]
    try:
        site.setup()
        server = DaphneServer(site).start()
        processes.append(server)
        worker = WorkerProcess(site).start()
        processes.append(worker)
        client = ChatClient(server)
        conversation = client.new_conversation()
        with client.open(conversation) as tab:
            send_query(tab, "Before the outage.")
            assert events(read_reply(tab), "reply.done")[0]["status"] == "complete"
            redis.stop()
            # The open socket learns at once, closed or told; a hang fails here.
            assert outcome_of_query(tab, "During the outage.") in {"closed", "unavailable"}
        # New connections are refused with a reason while Redis is away.
        with client.open(conversation) as tab:
            kind, event = read_frame(tab, timeout=10)
            assert (kind, event["type"], event["code"]) == ("event", "error", "unavailable")
            with pytest.raises(ConnectionClosed) as closed:
                read_frame(tab, timeout=10)
            assert closed.value.rcvd.code == 4503
        redis.start()
        # Same server and worker processes: reconnect and talk.
        deadline = time.monotonic() + 30
        while True:
            with client.open(conversation) as tab:
                send_query(tab, "After the outage. All is well.")
                try:
                    frames = read_reply(tab, timeout=30)
                    break
                except ConnectionClosed:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(1)
        assert events(frames, "reply.done")[0]["status"] == "complete", events(frames, "error")
        assert_is_speech(pcm(frames), 22050, 1, 8)
        assert server.running() and worker.running()
    finally:
        for process in processes:
            process.stop()
        site.destroy()


def test_two_workers_share_the_local_models_replies(tmp_path):
    """Each worker batches the replies it takes on its own model; several users at once reach both."""
    site = Site(
        tmp_path,
        database="postgres",
        VOICE_RESPONDER="local",
        VOICE_LLM_MAX_TOKENS="40",
        # Two replies a worker at most: four at once must use both. A fourth reply may wait for a
        # worker until one of its replies ends: not "abandoned" after the 3 s of scale_out_env.
        VOICE_WORKER_CONCURRENCY="2",
        **{
            **scale_out_env("redis://127.0.0.1:6379/0"),
            "VOICE_REPLY_STALE_AFTER": "30",
            "VOICE_TTS_WORKER_TIMEOUT": "30",
        },
    )
    processes = []
    try:
        site.setup()
        # Each loads the model besides the voice: on 2 busy cores that can take a while.
        for process in (DaphneServer(site), WorkerProcess(site), WorkerProcess(site)):
            processes.append(process)
            process.start(timeout=90)
        client = ChatClient(processes[0])
        statuses: list[str] = []

        def user(question: str) -> None:
            with client.open(client.new_conversation()) as tab:
                send_query(tab, question)
                frames = read_reply(tab, timeout=60)
                statuses.append(events(frames, "reply.done")[0]["status"])
                assert "".join(e["text"] for e in events(frames, "reply.delta")).strip()
                assert audio_frames(frames)

        questions = ["Why is the sea salty?", "What do bees eat?", "How do birds fly?", "Why do we sleep?"]
        threads = [threading.Thread(target=user, args=(question,)) for question in questions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        assert statuses == ["complete"] * 4
        producers = site.fetch("SELECT DISTINCT produced_by FROM voice_message WHERE role = 'assistant'")
        assert len(producers) == 2 and all(name.startswith("worker:") for (name,) in producers)
    finally:
        for process in processes:
            process.stop()
        site.destroy()
