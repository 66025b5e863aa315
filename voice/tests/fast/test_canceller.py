"""The echo canceller (``voice.handsfree.canceller``) on synthetic speech: WebRTC's AEC3 for real, no browser."""

import logging

import numpy as np
import pytest

from voice.handsfree.canceller import LEAD, EchoCanceller
from voice.handsfree.playback import Playback
from voice.tests.fast.test_handsfree import Clock

RATE = 16000
PIECE = 1600  # the microphone's audio comes in 100 ms pieces


def speech_like(seconds: float, pitch: float, seed: int) -> np.ndarray:
    """Voiced syllables: harmonics of a wandering pitch under a 4 Hz envelope, about -20 dBFS."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = pitch * (1 + 0.15 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)), 0, None) ** 0.5
    return 0.1 * voice * envelope / 2.5


def room(reference: np.ndarray, delay: float, gain_db: float) -> np.ndarray:
    """What a speaker playing ``reference`` puts into the microphone: delayed, quieter, with reverberation."""
    rng = np.random.default_rng(3)
    tail = rng.normal(0, 1, int(0.15 * RATE)) * np.exp(-np.arange(int(0.15 * RATE)) / (0.03 * RATE))
    response = np.concatenate([np.zeros(int(delay * RATE)), [1.0], 0.3 * tail / np.abs(tail).max()])
    return np.convolve(reference, response)[: len(reference)] * 10 ** (gain_db / 20)


def pcm(samples: np.ndarray) -> bytes:
    return np.clip(samples * 32768, -32768, 32767).astype("<i2").tobytes()


def power(samples: np.ndarray) -> float:
    return float(np.mean(samples.astype(np.float64) ** 2)) + 1e-12


def run(mic: np.ndarray, reference: np.ndarray, clock: Clock) -> np.ndarray:
    """Feed ``mic`` as a socket would (in 100 ms pieces, in real time) with ``reference`` playing from 100 s."""
    playback = Playback(clock)
    canceller = EchoCanceller(playback)
    playback.audio(7, len(reference) / RATE, samples=np.frombuffer(pcm(reference), dtype="<i2"))
    out = []
    for at in range(0, len(mic), PIECE):
        clock.now = 100 + (at + PIECE) / RATE + 0.02  # arrives 20 ms after its last sample was captured
        piece = pcm(mic[at : at + PIECE])
        out.append(canceller.clean(piece, canceller.reference(piece, clock.now)))
    return np.frombuffer(b"".join(out), dtype="<i2").astype(np.float64) / 32768


def test_the_replys_echo_is_taken_out_of_the_microphone_and_the_persons_voice_kept():
    reply = speech_like(10, pitch=120, seed=1)
    person = np.zeros_like(reply)
    person[4 * RATE : 7 * RATE] = speech_like(3, pitch=220, seed=2)  # talks over the reply from 4 s to 7 s
    floor = np.random.default_rng(5).normal(0, 10 ** (-60 / 20), len(reply))
    echo = room(reply, delay=0.08, gain_db=-9)
    mic = echo + person + floor
    out = run(mic, reply, Clock())
    assert len(out) == len(mic)  # nothing is lost on the way (the last 10 ms wait for the next piece)

    def seconds(a: float, b: float) -> slice:
        return slice(int(a * RATE), int(b * RATE))

    # Echo alone, once the filter has converged: at least 15 dB of it gone (ERLE; about 20 here).
    for part in (seconds(2, 4), seconds(8, 10)):
        assert 10 * np.log10(power(mic[part]) / power(out[part])) >= 15
    # Double talk: the person's voice comes through (AEC3 lowers it a few dB), far above what is left of the echo.
    talk = seconds(4.5, 6.5)
    assert 10 * np.log10(power(out[talk]) / power(person[talk])) >= -8
    assert 10 * np.log10(power(out[talk]) / power(out[seconds(8, 10)])) >= 15


def test_a_microphone_that_paused_sending_is_still_aligned_with_the_reply():
    clock = Clock()
    playback = Playback(clock)
    canceller = EchoCanceller(playback)
    for n in range(10):  # one second of the microphone, in time
        clock.now = 100 + (n + 1) * 0.1
        canceller.reference(bytes(2 * PIECE), clock.now)
    clock.now = 105  # the page sent nothing for four seconds; then the reply starts, and so does the microphone
    playback.audio(7, 1.0, samples=np.full(RATE, 1000, dtype="<i2"))
    clock.now = 105.3
    far = canceller.reference(bytes(2 * PIECE), clock.now)
    assert far.any()  # what plays from 105 s: the microphone's samples are placed after the gap, not before it


def test_the_reference_is_silent_while_the_reply_is_paused_and_its_rest_plays_after():
    clock = Clock()
    playback = Playback(clock)
    ramp = np.arange(1, 2 * RATE + 1, dtype=np.int32).astype("<i2")  # two seconds, each sample its own value
    playback.audio(7, 2.0, samples=ramp)
    clock.now = 101  # one second in: paused for half a second
    playback.pause(7)
    assert not playback.sounding(101.1, 1600).any()
    clock.now = 101.5
    playback.resume(7)
    after = playback.sounding(101.5, 1600)
    assert after[0] == ramp[RATE] and (after == ramp[RATE : RATE + 1600]).all()  # from where it paused
    assert (playback.sounding(100.5, 1600) == ramp[RATE // 2 : RATE // 2 + 1600]).all()  # before: unchanged
    playback.stopped(7)
    assert not playback.sounding(101.6, 1600).any()


def late_microphone(clock: Clock, canceller: EchoCanceller, seconds: float) -> None:
    """``seconds`` of the microphone, each piece arriving 0.4 s after it was captured (a slow network)."""
    for n in range(round(seconds * 10)):
        clock.now = 100 + (n + 1) * 0.1 + 0.4
        canceller.reference(bytes(2 * PIECE), clock.now)


def test_the_pages_position_places_the_reply_on_the_microphones_samples():
    clock = Clock()
    playback = Playback(clock)
    canceller = EchoCanceller(playback)
    ramp = np.arange(1, 3 * RATE + 1, dtype=np.int32).astype("<i2")  # each sample its own value
    playback.audio(7, 3.0, samples=ramp)
    late_microphone(clock, canceller, 1.0)
    # By arrival, the microphone's sample 16000 (one second in) is placed at 1.4 s of the reply.
    assert not canceller.placed_by_page
    # The page: when its microphone had sent one second, the reply had played 1.2 s.
    assert canceller.anchor(RATE, playback.time_of(7, 1200))
    far = canceller.reference(bytes(2 * PIECE), clock.now + 0.1)
    at = round((1.2 - LEAD) * RATE)  # where the page says it was (less the margin, if any)
    assert canceller.placed_by_page and (far == ramp[at : at + PIECE]).all()
    # A count the microphone never sent is refused: it would put the reply after its echo.
    assert not canceller.anchor(10 * RATE, playback.time_of(7, 1200))
    assert (canceller.reference(bytes(2 * PIECE), clock.now + 0.2) == ramp[at + PIECE : at + 2 * PIECE]).all()


def test_a_position_is_found_in_a_reply_that_paused():
    clock = Clock()
    playback = Playback(clock)
    playback.audio(7, 2.0, samples=np.ones(2 * RATE, dtype="<i2"))
    clock.now = 100.5
    playback.pause(7)
    assert playback.time_of(7, 400) is None  # held still: the page's position says nothing of the time
    clock.now = 101.25
    playback.resume(7)
    assert playback.time_of(7, 400) == pytest.approx(100.4)
    assert playback.time_of(7, 1200) == pytest.approx(101.2 + 0.75)  # after the pause: later by its length
    assert playback.time_of(7, 2500) is None and playback.time_of(8, 0) is None  # never sent


def test_without_the_pages_position_the_fallback_is_logged_once(caplog):
    clock = Clock()
    playback = Playback(clock)
    canceller = EchoCanceller(playback)
    playback.audio(7, 5.0, samples=np.ones(5 * RATE, dtype="<i2"))
    with caplog.at_level(logging.INFO, logger="voice.handsfree.canceller"):
        late_microphone(clock, canceller, 4.0)
    assert [r.getMessage() for r in caplog.records].count(
        "This page sends no playback position: the echo canceller goes by arrival times"
    ) == 1
    caplog.clear()
    placed = EchoCanceller(playback)
    placed.anchor(0, 100.0)
    with caplog.at_level(logging.INFO, logger="voice.handsfree.canceller"):
        late_microphone(clock, placed, 4.0)
    assert not caplog.records


def cancelled(mic: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, list[bool]]:
    """``run``, and whether the echo path was heard after each 100 ms piece."""
    clock = Clock()
    playback = Playback(clock)
    canceller = EchoCanceller(playback)
    playback.audio(7, len(reference) / RATE, samples=np.frombuffer(pcm(reference), dtype="<i2"))
    out, heard = [], []
    for at in range(0, len(mic), PIECE):
        clock.now = 100 + (at + PIECE) / RATE + 0.02
        piece = pcm(mic[at : at + PIECE])
        out.append(canceller.clean(piece, canceller.reference(piece, clock.now)))
        heard.append(canceller.echo_path.heard)
    return np.frombuffer(b"".join(out), dtype="<i2").astype(np.float64) / 32768, heard


def test_with_a_headset_the_microphone_goes_to_the_turn_detector_as_it_came():
    reply = speech_like(10, pitch=120, seed=1)
    person = np.zeros_like(reply)
    person[5 * RATE : 8 * RATE] = speech_like(3, pitch=220, seed=2)  # talks over the reply: no echo of it
    mic = person + np.random.default_rng(5).normal(0, 1e-3, len(reply))
    out, heard = cancelled(mic, reply)
    # Not known at first; a second of the reply without an echo: a headset.
    assert heard[0] is None and heard[-1] is False
    assert heard.index(False) <= 15  # within 1.5 s of the reply
    after = slice(heard.index(False) * PIECE + PIECE, len(mic) - PIECE)
    assert np.array_equal(out[after], np.frombuffer(pcm(mic), dtype="<i2")[after] / 32768)
    # The person's words pass untouched (AEC3 took 9 dB off them when it ran on a headset).
    talk = slice(5 * RATE, 8 * RATE)
    assert abs(10 * np.log10(power(out[talk]) / power(person[talk]))) < 0.5


def test_a_speaker_keeps_the_canceller_on_and_one_plugged_in_later_turns_it_back_on():
    reply = speech_like(14, pitch=120, seed=1)
    floor = np.random.default_rng(5).normal(0, 1e-3, len(reply))
    person = np.zeros_like(reply)
    person[3 * RATE : 5 * RATE] = speech_like(2, pitch=220, seed=2)
    _, heard = cancelled(room(reply, delay=0.08, gain_db=-20) + person + floor, reply)
    assert all(heard[5:])  # a speaker from the first look on, double talk included
    # A headset for 7 s, then the speaker: the echo is cancelled again within a second of it.
    echo = room(reply, delay=0.08, gain_db=-9)
    echo[: 7 * RATE] = 0
    out, heard = cancelled(echo + floor, reply)
    assert not heard[65] and all(heard[80:])
    assert 10 * np.log10(power(echo[10 * RATE :]) / power(out[10 * RATE :])) >= 15


def test_a_person_over_the_first_second_of_a_reply_in_a_headset_passes_whole():
    # Before the first look at a reply, AEC3 alone had taken the person's first words (it starts cautious).
    reply = speech_like(4, pitch=120, seed=1)
    person = np.zeros_like(reply)
    person[int(0.3 * RATE) : 3 * RATE] = speech_like(2.7, pitch=220, seed=2)
    mic = person + np.random.default_rng(5).normal(0, 1e-3, len(reply))
    out, _ = cancelled(mic, reply)
    talk = slice(int(0.3 * RATE), 3 * RATE)
    assert abs(10 * np.log10(power(out[talk]) / power(person[talk]))) < 0.5


def test_a_speakers_first_echo_waits_for_the_first_look_and_is_cancelled():
    reply = speech_like(4, pitch=120, seed=1)
    echo = room(reply, delay=0.08, gain_db=-9)
    mic = echo + np.random.default_rng(5).normal(0, 1e-3, len(reply))
    clock = Clock()
    playback = Playback(clock)
    canceller = EchoCanceller(playback)
    playback.audio(7, len(reply) / RATE, samples=np.frombuffer(pcm(reply), dtype="<i2"))
    passed = []
    for at in range(0, len(mic), PIECE):
        clock.now = 100 + (at + PIECE) / RATE + 0.02
        piece = pcm(mic[at : at + PIECE])
        passed.append(len(canceller.clean(piece, canceller.reference(piece, clock.now))) // 2)
    # Held until the first look (half a second), then passed on as it comes.
    assert passed[:4] == [0, 0, 0, 0] and sum(passed[:5]) == 5 * PIECE and all(n >= PIECE - 160 for n in passed[5:])
    out, _ = cancelled(mic, reply)
    first = slice(0, RATE // 2)  # AEC3 had not converged yet: it still takes most of it out
    assert 10 * np.log10(power(mic[first]) / power(out[first])) >= 10


@pytest.mark.parametrize("seed", [4, 6])
def test_a_person_in_a_voice_like_the_replys_is_not_taken_for_its_echo(seed):
    # Half a second of a person in the reply's own voice may follow it by chance, never all along as an echo.
    reply = speech_like(3, pitch=120, seed=1)
    person = np.zeros_like(reply)
    person[int(0.3 * RATE) :] = speech_like(2.7, pitch=120, seed=seed)
    mic = person + np.random.default_rng(5).normal(0, 1e-3, len(reply))
    out, heard = cancelled(mic, reply)
    assert True not in heard
    talk = slice(RATE // 2, 3 * RATE - PIECE)
    assert abs(10 * np.log10(power(out[talk]) / power(person[talk]))) < 1
