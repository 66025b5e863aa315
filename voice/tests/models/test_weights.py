"""The local model's weights converted once to a form llama.cpp reads in batches (``voice.responders.weights``)."""

import logging
from pathlib import Path

from voice.responders import weights
from voice.responders.local import bundled_model_path
from voice.tests.generations import Reply, started_engine

SYSTEM = "You are a helpful voice assistant. Answer in one short sentence."


def file_type(path) -> int:
    import llama_cpp

    model = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    return int(model.metadata["general.file_type"])


def test_the_bundled_model_is_converted_to_q8_0_once_and_answers(tmp_path):
    import llama_cpp

    source = bundled_model_path()
    converted = weights.prepared(source, "q8_0", tmp_path)
    assert converted != str(source) and file_type(converted) == llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    written = Path(converted).stat().st_mtime_ns
    assert weights.prepared(source, "q8_0", tmp_path) == converted  # kept, not made again
    assert Path(converted).stat().st_mtime_ns == written
    assert list(tmp_path.iterdir()) == [Path(converted)]  # no partial file left
    with started_engine(weights="q8_0", converted_dir=str(tmp_path)) as engine:
        reply = Reply("What is the capital of France?", system=SYSTEM, max_tokens=16).submit(engine).wait()
    assert reply.error is None and reply.text.strip()


def test_a_conversion_that_fails_loads_the_model_as_it_is(tmp_path, caplog):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    with caplog.at_level(logging.WARNING, logger="voice.responders.weights"):
        path = weights.prepared(bundled_model_path(), "q8_0", blocked)
    assert path == str(bundled_model_path())
    assert "loads as it is" in caplog.text
    assert weights.prepared(bundled_model_path(), "as-is", tmp_path) == str(bundled_model_path())
