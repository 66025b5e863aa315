"""The barge-in policy (``voice.handsfree.bargein``): what a voice does to the playing reply, moment by moment."""

import pytest

from voice.handsfree.bargein import Ask, BargeIn, Discard, Pause, Resume, Stop
from voice.handsfree.playback import Playback
from voice.protocol import DiscardReason
from voice.tests.fast.test_handsfree import Clock

SAID = "The tide comes in twice a day because the moon pulls the sea."


def speaking(seconds: float = 10.0) -> tuple[BargeIn, Playback, Clock]:
    """A policy over a reply (id 7) that started playing at 100 s and says ``SAID``."""
    clock = Clock()
    playback = Playback(clock)
    playback.final_text(7, SAID)
    playback.audio(7, seconds, 0, len(SAID))
    clock.now = 101
    return BargeIn(playback), playback, clock


def test_an_onset_pauses_the_reply_and_a_fade_lets_it_go_on():
    policy, playback, clock = speaking()
    assert policy.speech_onset() == [Pause(7)]
    assert policy.speech_onset() == []  # one onset holds once
    clock.now = 102
    assert policy.onset_faded() == [Resume(7)]
    assert playback.speaking().ends == 111  # paused for a second: it ends a second later
    assert policy.onset_faded() == []


def test_nothing_is_paused_when_nothing_plays():
    policy = BargeIn(Playback(Clock()))
    assert policy.speech_onset() == []
    hold, actions = policy.turn_started()
    assert actions == [] and policy.final(hold, "What time is it?") == [Ask()]


def test_a_turn_takes_over_its_onsets_pause_and_the_reply_goes_on_only_when_it_lets_go():
    policy, _playback, _clock = speaking()
    policy.speech_onset()
    hold, actions = policy.turn_started()
    assert actions == [] and hold.paused.message_id == 7
    assert policy.onset_faded() == []  # the onset's pause is the turn's now
    assert policy.final(hold, "twice a day because the moon") == [Resume(7), Discard(DiscardReason.ECHO)]


def test_a_turn_that_started_loud_pauses_at_its_start():
    policy, _playback, _clock = speaking()
    hold, actions = policy.turn_started()
    assert actions == [Pause(7)] and hold.paused is not None


@pytest.mark.parametrize(
    ("partial", "expected"),
    [
        ("the moon pulls", []),  # the reply's own words: wait for the end of the turn
        ("mm-hm", []),  # an acknowledgement
        ("The garden", []),  # too few words of the person's own to tell yet
        ("Stop", [Stop(7, 1000)]),
        ("What about the wind and rain?", [Stop(7, 1000)]),
    ],
)
def test_partial_words_stop_the_reply_only_for_a_command_or_words_of_the_persons_own(partial, expected):
    policy, _playback, _clock = speaking()
    hold, _actions = policy.turn_started()
    assert policy.partial(hold, partial) == expected


def test_a_reply_is_stopped_once_and_never_resumed_after():
    policy, playback, clock = speaking()
    hold, _actions = policy.turn_started()
    clock.now = 103
    assert policy.partial(hold, "What about the wind and rain?") == [Stop(7, 1000)]  # heard up to the pause
    assert policy.partial(hold, "What about the wind and rain today?") == []
    assert policy.final(hold, "What about the wind and rain today?") == [Ask()]
    assert policy.let_go(hold) == [] and playback.speaking() is None


@pytest.mark.parametrize(
    ("final", "expected"),
    [
        ("", [Resume(7), Discard(DiscardReason.NOISE)]),
        ("the moon pulls the sea", [Resume(7), Discard(DiscardReason.ECHO)]),
        ("mm-hm", [Resume(7), Discard(DiscardReason.BACKCHANNEL)]),
        ("Stop.", [Stop(7, 1000), Discard(DiscardReason.COMMAND)]),  # done by stopping: not answered
        ("The garden", [Stop(7, 1000), Ask()]),  # unsure at the end: asked
        ("What about the wind?", [Stop(7, 1000), Ask()]),
    ],
)
def test_at_the_end_of_a_turn(final, expected):
    policy, _playback, _clock = speaking()
    hold, _actions = policy.turn_started()
    assert policy.final(hold, final) == expected


def test_a_bare_stop_with_nothing_paused_is_asked():
    policy = BargeIn(Playback(Clock()))
    hold, _actions = policy.turn_started()
    assert policy.final(hold, "Stop.") == [Ask()]


def test_a_refused_or_failed_turn_lets_the_reply_go_on():
    policy, _playback, _clock = speaking()
    policy.speech_onset()
    assert policy.turn_refused() == [Resume(7)]
    hold, actions = policy.turn_started()
    assert actions == [Pause(7)]
    assert policy.give_up(hold, DiscardReason.TOO_LONG) == [Resume(7), Discard(DiscardReason.TOO_LONG)]
    assert policy.let_go(hold) == []  # given up already: nothing more to let go
