"""The load benchmark's new text, and its command line (services/ runs the benchmark's smoke run)."""

import re

from bench.__main__ import main
from bench.talk import Talk, segments


def test_load_text_is_new_ordinary_and_never_repeated():
    talk = Talk("a-fixed-nonce")
    replies = [talk.read_aloud() for _ in range(300)]  # more than a full run asks
    said = [segment for reply in replies for segment in segments(reply)]
    assert len(said) == len(set(said))  # cut as the pipeline cuts: no segment the cache could answer
    for reply in replies:
        sentences = re.findall(r"[^.?]+[.?]", reply)  # Talk's sentences hold no stop inside them
        assert len(sentences) == 3 and all(40 <= len(s.strip()) <= 90 for s in sentences)
        assert "," not in sentences[0][:30]  # no early clause cuts the first segment short
    questions = [talk.ask() for _ in range(300)]
    assert len(set(questions)) == len(questions) and all(q.endswith("?") and q.count("?") == 1 for q in questions)
    # The same nonce says the same again; another run says other things.
    assert Talk("a-fixed-nonce").read_aloud() == replies[0]
    assert Talk("another-nonce").read_aloud() not in replies


def test_only_a_section_never_writes_the_docs(monkeypatch):
    called = {}
    monkeypatch.setattr("bench.__main__.run", lambda **kwargs: called.update(kwargs) or {})
    assert main(["--only", "conversations", "--levels", "1,20"]) == 0
    assert called == {"quick": False, "out": None, "only": {"conversations"}, "levels": (1, 20)}
