"""Engines, transcribers and responders named by settings: short names, dotted paths, clear errors."""

import pytest

from voice.responders import ResponderUnavailable, get_responder
from voice.responders.readaloud import ReadAloudResponder
from voice.stt import TranscriberUnavailable, get_transcriber
from voice.tts import EngineUnavailable, get_engine
from voice.tts.piper import PiperEngine


@pytest.mark.parametrize(
    ("load", "unavailable", "kind"),
    [
        (get_engine, EngineUnavailable, "speech engine"),
        (get_transcriber, TranscriberUnavailable, "speech-to-text engine"),
        (get_responder, ResponderUnavailable, "responder"),
    ],
)
def test_a_bad_name_says_what_would_do(load, unavailable, kind):
    with pytest.raises(unavailable, match=f"Unknown {kind} 'nope': use one of .* or a dotted path"):
        load("nope")
    with pytest.raises(unavailable, match=r"voice\.models\.Message is not a \w+ subclass"):
        load("voice.models.Message")


def test_short_names_and_dotted_paths_give_one_shared_instance():
    assert isinstance(get_responder("readaloud"), ReadAloudResponder)
    assert get_responder("readaloud") is get_responder("readaloud")
    dotted = get_responder("voice.responders.readaloud.ReadAloudResponder")
    assert isinstance(dotted, ReadAloudResponder)
    engine = get_engine("voice.tts.piper.PiperEngine")
    assert isinstance(engine, PiperEngine) and engine.key == "voice.tts.piper.PiperEngine"
