"""Hands-free mode's pure parts: the end-of-turn rule, the echo judge, the playback estimate, the wire."""

import re
from dataclasses import replace

import numpy as np
import pytest

from voice import audio, protocol
from voice.handsfree.bargein import only_commands
from voice.handsfree.completeness import Judgement, Verdict, judge
from voice.handsfree.detector import (
    OnsetFaded,
    SpeechGoesOn,
    SpeechOnset,
    SpeechQuiet,
    SpeechResumed,
    SpeechStarted,
    TurnDetector,
    TurnEnded,
    TurnOptions,
)
from voice.handsfree.echo import Meaning, classify, words
from voice.handsfree.playback import Playback, chunk_seconds

WINDOW_BYTES = 1024  # 32 ms


def loud(windows: int) -> bytes:
    return (np.full(512 * windows, 8000, dtype="<i2")).tobytes()


def quiet(windows: int) -> bytes:
    return bytes(WINDOW_BYTES * windows)


class Script:
    """A voice-activity model that answers from a list, one probability per window it is asked about."""

    def __init__(self, *probabilities: float) -> None:
        self.probabilities = list(probabilities)

    def __call__(self, window: np.ndarray) -> float:
        return self.probabilities.pop(0)


OPTIONS = TurnOptions(
    start_ms=96, end_silence_ms=160, eager_ms=64, preroll_ms=64, tail_ms=64, max_seconds=2, partial_ms=0
)


def feed(detector: TurnDetector, pcm: bytes, piece: int = 3200) -> list:
    found = []
    for offset in range(0, len(pcm), piece):
        found += detector.feed(pcm[offset : offset + piece])
    return found


def test_a_turn_starts_after_enough_speech_and_ends_after_enough_silence():
    # 2 speech windows (too few), a dip, 4 speech windows (starts at the 3rd), then silence.
    script = Script(0.9, 0.9, 0.1, *[0.9] * 4, *[0.1] * 8)
    detector = TurnDetector(script, OPTIONS)
    found = feed(detector, loud(15), piece=700)  # pieces that split windows: leftovers are kept
    # 64 ms of speech is an onset (the reply may be paused); the dip makes it fade, the next run starts a turn.
    assert [type(e) for e in found] == [SpeechOnset, OnsetFaded, SpeechOnset, SpeechStarted, SpeechQuiet, TurnEnded]
    assert [e.at for e in found[:3]] == pytest.approx([2 * 0.032, 3 * 0.032, 5 * 0.032])
    started, quiet_at, ended = found[3:]
    assert started.at == pytest.approx(6 * 0.032)  # the third window of the second run
    assert quiet_at.at - started.at == pytest.approx(0.032 * 3)  # 64 ms of silence after the 4th voiced window
    assert ended.at - started.at == pytest.approx(0.032 * 6)  # 160 ms of silence
    # The turn: 64 ms of pre-roll, the 3 windows that started it, one more, and 64 ms after the last voiced one.
    assert len(ended.audio) == WINDOW_BYTES * (2 + 3 + 1 + 2) and ended.voiced == WINDOW_BYTES * 6
    assert not ended.too_long and not detector.speaking


def test_speech_in_a_pause_resumes_the_turn_and_the_quiet_says_so():
    script = Script(*[0.9] * 3, 0.1, 0.1, 0.1, 0.9, 0.9, *[0.1] * 5)
    found = feed(TurnDetector(script, OPTIONS), loud(13))
    assert [type(e) for e in found] == [SpeechOnset, SpeechStarted, SpeechQuiet, SpeechResumed, SpeechQuiet, TurnEnded]


def test_in_between_probabilities_keep_the_silence_counting_once_it_started():
    # 0.4 is neither speech (> 0.5) nor silence (< 0.35): it does not start the count, nor stop it.
    script = Script(*[0.9] * 3, 0.4, 0.4, 0.1, 0.4, 0.4, 0.4, 0.4)
    found = feed(TurnDetector(script, OPTIONS), loud(10))
    assert [type(e) for e in found] == [SpeechOnset, SpeechStarted, SpeechQuiet, TurnEnded]


def test_quiet_windows_never_reach_the_model_and_reset_it():
    resets = []
    detector = TurnDetector(Script(), OPTIONS, on_gate=lambda: resets.append(1))
    assert feed(detector, quiet(100)) == []
    assert detector.windows == 0 and resets == [1] and detector.seconds == pytest.approx(3.2)


JUDGED = replace(OPTIONS, end_silence_ms=320, complete_silence_ms=128, unfinished_silence_ms=640)


def judged_turn(verdict: Verdict | None, silence_before: int, *, resume: bool = False) -> list:
    """A turn, ``silence_before`` windows of silence, the words judged ``verdict``, then more silence."""
    tail = [0.9, 0.9, 0.1, 0.1] if resume else []  # speech again, and silence long enough to be a new quiet
    script = Script(*[0.9] * 3, *[0.1] * silence_before, *tail, *[0.1] * 40)
    detector = TurnDetector(script, JUDGED)
    found = feed(detector, loud(3 + silence_before + len(tail)), piece=WINDOW_BYTES)
    quiet_at = next(e for e in found if isinstance(e, SpeechQuiet))
    if verdict is not None:
        found += detector.judged(quiet_at, verdict)
    for _ in range(40):
        if isinstance(found[-1], TurnEnded):
            break
        found += detector.feed(loud(1))
    return found


def silence_ms(found: list) -> float:
    """The silence after the last voiced window when the turn ended."""
    ended = found[-1]
    assert isinstance(ended, TurnEnded)
    last_speech = [e for e in found if isinstance(e, SpeechStarted | SpeechResumed)][-1]
    return round((ended.at - last_speech.at) * 1000)


def test_finished_words_end_the_turn_sooner_and_broken_ones_later():
    assert silence_ms(judged_turn(None, 2)) == 320  # unjudged: the default silence
    assert silence_ms(judged_turn(Verdict.UNSURE, 2)) == 320
    assert silence_ms(judged_turn(Verdict.COMPLETE, 2)) == 128  # judged early: waits for the shorter silence
    assert silence_ms(judged_turn(Verdict.UNFINISHED, 2)) == 640
    # Judged after the shorter silence already passed: the turn ends at once, with the judgement.
    found = judged_turn(Verdict.COMPLETE, 6)
    assert silence_ms(found) == 6 * 32 and len([e for e in found if isinstance(e, TurnEnded)]) == 1


def test_a_judgement_of_words_that_went_on_changes_nothing():
    # The person spoke again after the quiet that was judged: that silence is over, and so is its judgement.
    found = judged_turn(Verdict.COMPLETE, 3, resume=True)
    assert [type(e) for e in found][-4:] == [SpeechQuiet, SpeechResumed, SpeechQuiet, TurnEnded]
    ended, resumed = found[-1], found[-3]
    assert round((ended.at - resumed.at) * 1000) == 320 + 32


def test_without_judging_every_turn_waits_the_default_silence():
    script = Script(*[0.9] * 3, *[0.1] * 40)
    detector = TurnDetector(script, replace(JUDGED, complete_silence_ms=0))
    found = feed(detector, loud(5), piece=WINDOW_BYTES)
    assert detector.judged(found[-1], Verdict.COMPLETE) == []
    found += feed(detector, loud(20), piece=WINDOW_BYTES)
    assert silence_ms(found) == 320


class SentenceModel:
    """A language model's two probabilities, from a table; remembers what it was asked."""

    def __init__(self, **table: tuple[float, float]) -> None:
        self.table = table
        self.asked: list[tuple[str, str]] = []

    def __call__(self, words: str, closing: str) -> tuple[float, float]:
        self.asked.append((words, closing))
        return self.table.get(re.sub(r"\W", "_", words), (0.0, 0.0))


@pytest.mark.parametrize(
    "text, verdict",
    [
        ("What's the capital of France?", Verdict.COMPLETE),  # the model: a sentence ends there (0.88)
        ("Tell me about the history of.", Verdict.UNFINISHED),  # the model: it goes on (0.002)
        ("How are you?", Verdict.UNSURE),  # the model would go on, but the question mark ends the message
        ("Remind me to call.", Verdict.UNSURE),  # in between: the default silence
        ("Book a table for it.", Verdict.UNSURE),  # a statement needs more than a question (0.47 < 0.5)
        ("Tell me more about it.", Verdict.COMPLETE),
        ("Should I take an umbrella?", Verdict.UNSURE),  # a question below 0.2
        ("So I was wondering if...", Verdict.UNFINISHED),  # Whisper heard it trail off: no model needed
        ("I need to buy some,", Verdict.UNFINISHED),
        ("and then", Verdict.UNFINISHED),  # no closing mark at all
        ("", Verdict.UNSURE),
    ],
)
def test_how_finished_words_sound(text, verdict):
    model = SentenceModel(
        What_s_the_capital_of_France=(0.88, 0.48),
        Tell_me_about_the_history_of=(0.002, 0.0),
        How_are_you=(0.003, 0.27),
        Remind_me_to_call=(0.08, 0.12),
        Book_a_table_for_it=(0.47, 0.16),
        Tell_me_more_about_it=(0.7, 0.57),
        Should_I_take_an_umbrella=(0.11, 0.18),
    )
    assert judge(text, model).verdict is verdict


def test_the_model_reads_the_words_without_their_last_marks():
    model = SentenceModel(What_s_the_capital_of_France=(0.88, 0.48))
    assert judge(" What's the capital of France?\" ", model) == Judgement(Verdict.COMPLETE, 0.88, 0.48)
    assert judge("Remind me to call.", model).verdict is Verdict.UNFINISHED
    assert model.asked == [("What's the capital of France", "?"), ("Remind me to call", "")]


def test_without_a_model_punctuation_alone_never_ends_a_turn_sooner():
    assert judge("What's the capital of France?", None) == Judgement(Verdict.UNSURE)
    assert judge("So I was wondering if...", None) == Judgement(Verdict.UNFINISHED)


def test_a_turn_past_the_longest_utterance_ends_as_too_long():
    script = Script(*[0.9] * 100)
    found = feed(TurnDetector(script, OPTIONS), loud(70))
    # Cut at the longest utterance; the speech going on starts the next turn.
    assert [type(e) for e in found] == [SpeechOnset, SpeechStarted, TurnEnded, SpeechOnset, SpeechStarted]
    assert found[2].too_long and len(found[2].audio) >= 2 * 16000 * 2


@pytest.mark.parametrize(
    "heard, said, expected",
    [
        ("", "Anything.", Meaning.NOTHING),
        ("Tomorrow will be sunny and warm.", "", Meaning.SPEECH),
        ("Yes.", "", Meaning.SPEECH),  # nobody talking: a yes answers something
        # Echo garbled by the room and the recogniser: most words are the reply's.
        (
            "will be sunny and worm in the afternoon",
            "Tomorrow will be sunny and warm in the afternoon.",
            Meaning.ECHO,
        ),
        ("the weather in pairs is mild", "The weather in Paris is mild and dry.", Meaning.ECHO),
        ("Mm-hm.", "The weather in Paris is mild and dry.", Meaning.BACKCHANNEL),
        ("Okay, got it.", "The weather in Paris is mild and dry.", Meaning.BACKCHANNEL),
        ("Stop.", "The weather in Paris is mild and dry.", Meaning.COMMAND),
        ("Wait", "The weather in Paris is mild and dry.", Meaning.COMMAND),
        ("What about the weekend in London?", "The weather in Paris is mild and dry.", Meaning.SPEECH),
        ("What about", "The weather in Paris is mild and dry.", Meaning.UNSURE),
        ("It is 14 degrees", "It is fourteen degrees in Paris.", Meaning.ECHO),  # digits and words match
    ],
)
def test_what_words_heard_over_the_reply_are(heard, said, expected):
    assert classify(heard, said) is expected


def test_stop_said_by_the_reply_itself_is_echo_not_a_command():
    assert classify("stop at the bakery", "On your way, stop at the bakery for bread.") is Meaning.ECHO


def test_words_are_normalised():
    assert words("It's 14 o'clock -- well-known!") == ["it's", "fourteen", "o'clock", "well", "known"]


@pytest.mark.parametrize(
    "text, expected", [("Stop.", True), ("No, wait!", True), ("Stop, what about London?", False), ("", False)]
)
def test_a_bare_stop_is_not_a_question(text, expected):
    assert only_commands(text) is expected


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_playback_is_estimated_from_the_audio_sent():
    clock = Clock()
    playback = Playback(clock)
    playback.text(7, "Hello there. ")
    playback.text(7, "How are you?")
    playback.audio(7, 1.0, 0, 12)
    playback.audio(7, 2.0, 13, 25)  # queued behind the first: plays from 101 until 103
    clock.now = 100.5
    assert playback.speaking().message_id == 7 and playback.said_since(100) == "Hello there."
    clock.now = 102.5
    assert playback.speaking().heard_ms(clock.now) == 2500
    assert playback.said_since(101.9) == "How are you?"  # the first sentence ended long before
    assert playback.said_since(100) == "Hello there. How are you?"
    clock.now = 103.1
    assert playback.speaking() is None and playback.said_since(103) == "How are you?"  # its echo may still come
    clock.now = 110
    assert playback.said_since(105) == ""  # a turn that began after it: nothing of it can be echo


def test_a_stopped_reply_is_no_longer_speaking_and_said_only_what_played():
    clock = Clock()
    playback = Playback(clock)
    playback.text(7, "One. Two.")
    playback.audio(7, 5.0, 0, 4)
    playback.audio(7, 5.0, 5, 9)
    clock.now = 101
    playback.stopped(7)
    assert playback.speaking() is None and playback.said_since(90) == "One."
    playback.audio(7, 5.0, 5, 9)  # chunks still in flight change nothing
    assert playback.speaking() is None


def test_a_paused_reply_plays_its_rest_later():
    clock = Clock()
    playback = Playback(clock)
    playback.text(7, "One. Two.")
    playback.audio(7, 2.0, 0, 4)  # 100-102
    playback.audio(7, 2.0, 5, 9)  # 102-104
    clock.now = 101
    playback.pause(7)
    clock.now = 103  # still paused: nothing more heard, and not over although its time is past
    reply = playback.speaking()
    assert reply.message_id == 7 and reply.heard_ms(clock.now) == 1000
    clock.now = 103.5
    playback.resume(7)  # paused for 2.5 s: the rest plays that much later (the first chunk's rest too)
    assert [(c.start, c.end) for c in reply.chunks] == [(100, 101), (103.5, 104.5), (104.5, 106.5)]
    assert playback.said_since(100) == "One."  # a chunk cut in two by the pause says its words once


def test_a_reply_stopped_while_paused_was_heard_up_to_the_pause():
    clock = Clock()
    playback = Playback(clock)
    playback.audio(7, 4.0, 0, 4)
    clock.now = 101
    playback.pause(7)
    clock.now = 105  # transcription took a while
    reply = playback.speaking()
    playback.stopped(7)
    assert reply.heard_ms(clock.now) == 1000 and playback.speaking() is None


def test_chunk_durations_by_format():
    assert chunk_seconds({"format": "pcm_s16le", "sample_rate": 16000, "channels": 1}, bytes(32000)) == 1.0
    assert chunk_seconds({"format": "nonsense", "sample_rate": 16000}, b"abc") == 0.0
    wav = audio.wav_bytes(bytes(16000), 16000)  # half a second
    assert chunk_seconds({"format": "wav", "sample_rate": 16000, "channels": 1}, wav) == 0.5


def test_listen_start_is_read_strictly():
    assert isinstance(
        protocol.parse_client_event('{"type": "listen.start", "format": "pcm_s16le", "sample_rate": 16000}'),
        protocol.ListenStart,
    )
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.parse_client_event('{"type": "listen.start", "format": "opus", "sample_rate": 48000}')
    assert refused.value.code == "bad_audio_format"
    assert protocol.Transcribed("hi", final=False).to_event() == {"type": "transcript", "text": "hi", "final": False}
    assert protocol.Transcribed("hi", final=True, turn_id="h-1").to_event()["turn_id"] == "h-1"


def test_while_the_person_speaks_the_turn_so_far_is_handed_out_for_partial_transcripts():
    options = replace(OPTIONS, partial_ms=320, end_silence_ms=800, max_seconds=10)
    # 3 windows start the turn, 20 more voiced (640 ms), 10 quiet (a pause), 10 voiced, then silence.
    script = Script(*[0.9] * 23, *[0.1] * 10, *[0.9] * 10, *[0.1] * 30)
    found = feed(TurnDetector(script, options), loud(73), piece=1024)  # a window at a time
    going_on = [e for e in found if isinstance(e, SpeechGoesOn)]
    # Every 320 ms (10 windows) of turn while voiced; none in the pause; again as soon as speech comes back.
    assert [round((e.at - found[1].at) / 0.032) for e in going_on] == [10, 20, 31]
    assert all(len(e.audio) >= e.voiced for e in going_on)
    assert [e.voiced for e in going_on] == sorted({e.voiced for e in going_on})  # grows with the words
    quiet = next(e for e in found if isinstance(e, SpeechQuiet))
    assert quiet.voiced == going_on[1].voiced  # nothing voiced since: the same words, and the tail after them
    assert quiet.audio.startswith(going_on[1].audio) and len(quiet.audio) == quiet.voiced + 2 * WINDOW_BYTES
    never = feed(TurnDetector(Script(*[0.9] * 40), replace(options, partial_ms=0)), loud(40))
    assert not any(isinstance(e, SpeechGoesOn) for e in never)
