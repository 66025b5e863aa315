"""Speech-ready text, heard: how long the real voice (Piper) takes to say it."""

import pytest

from voice.tests.helpers import said
from voice.tts import get_engine


@pytest.fixture(scope="module")
def seconds():
    engine = get_engine("piper")

    def measure(text: str) -> float:
        return sum(chunk.duration for chunk in engine.synthesize(text))

    return measure


def test_the_voice_says_a_site_name_several_times_faster_than_its_url(seconds):
    url = "https://www.example.com/path?x"
    spoken = said(url)
    assert spoken == "example dot com."
    assert 0.6 < seconds(spoken) < 2.5
    assert seconds(url) > 3 * seconds(spoken)


def test_markup_and_emoji_add_no_sound(seconds):
    bold = seconds(said("**bold**"))
    assert bold <= seconds("bold.") + 0.15
    assert seconds(said("Done 👍🎉")) <= seconds("Done.") + 0.15 < seconds("Done 👍🎉")


def test_a_title_does_not_make_the_voice_stop_mid_sentence():
    chunks = list(get_engine("piper").synthesize(said("Dr. Smith arrived.")))
    assert len(chunks) == 1  # Piper cut "Dr. Smith arrived." in two
    assert 0.8 < sum(chunk.duration for chunk in chunks) < 2.5
