"""The benchmark's smoke run: a few seconds, so `make bench` cannot rot."""

import pytest

from bench.__main__ import run
from bench.report import Report


@pytest.mark.deployment
def test_quick_benchmark_measures_real_replies(tmp_path):
    results = run(quick=True, out=tmp_path / "benchmarks.md")
    for n, ttfa in results["ttfa"].items():
        assert ttfa["errors"] == 0, n
        # The first clause can beat the whole-sentence floor; never the finished reply.
        assert ttfa["floor"] > 0 and 0 < ttfa["ours"] <= ttfa["ours_total"]
        assert ttfa["baseline"] > 0
    # Three sentences: the baseline waits for all of them, we for the first.
    assert results["ttfa"][3]["baseline"] > results["ttfa"][3]["ours"]
    for level in results["concurrency"].values():
        assert (level["errors"], level["lost"]) == (0, 0)
        assert level["audio_per_wall"] > 1 and level["peak_mib"] > 10
    wire = results["wire"]
    assert wire["binary frames (ours)"] < wire["base64 JSON (?audio=base64)"]
    assert wire["raw PCM16 (reference)"] < wire["binary frames (ours)"] < 1.05 * wire["raw PCM16 (reference)"]
    assert 0 < results["rtf"]["short (1 sentence)"][0] < 1
    for http in results["http"].values():
        assert 0 < http["ours_first"] <= http["ours_total"] and 0 < http["piper_first"] <= http["piper_total"]
    # Piper's server answers with one whole WAV; ours streams from the first sentence.
    assert results["http"][3]["ours_first"] < results["http"][3]["piper_first"]
    report = (tmp_path / "benchmarks.md").read_text()
    assert "## Targets" in report and (tmp_path / "bench-ttfa.png").stat().st_size > 1000
    assert len(Report(results).targets()) >= 2
