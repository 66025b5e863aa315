"""The README's settings table stays true: every setting read from the environment is in it, and nothing else."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_every_setting_is_documented_once_in_the_readme():
    source = (ROOT / "voiceproject" / "settings.py").read_text()
    read = set(re.findall(r'(?:os\.environ\.get|env_(?:int|float|bool|list|name))\(\s*"([A-Z_]+)"', source))
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `([A-Z_]+)` \|", readme, flags=re.M)
    assert sorted(set(rows)) == sorted(read)
    assert len(rows) == len(set(rows)), "a setting is listed twice"


def test_a_setting_renamed_is_still_read_by_its_old_name(monkeypatch):
    from voiceproject.settings import env_name

    monkeypatch.delenv("VOICE_REPLY_DISPATCH", raising=False)
    monkeypatch.setenv("VOICE_TTS_DISPATCH", "worker")
    assert env_name("VOICE_REPLY_DISPATCH", "VOICE_TTS_DISPATCH") == "VOICE_TTS_DISPATCH"
    monkeypatch.setenv("VOICE_REPLY_DISPATCH", "inline")  # the new name wins
    assert env_name("VOICE_REPLY_DISPATCH", "VOICE_TTS_DISPATCH") == "VOICE_REPLY_DISPATCH"


def test_each_old_name_is_documented_beside_its_new_one():
    source = (ROOT / "voiceproject" / "settings.py").read_text()
    readme = (ROOT / "README.md").read_text()
    for new, old in re.findall(r'env_name\(\s*"([A-Z_]+)",\s*"([A-Z_]+)"', source):
        row = re.search(rf"^\| `{new}` \|.*$", readme, flags=re.M).group(0)
        assert f"`{old}`" in row, f"the README's row for {new} does not name its old name {old}"


def test_runworker_takes_the_reply_channels_old_name(monkeypatch):
    from channels.management.commands.runworker import Command as ChannelsRunworker
    from django.core.management import call_command

    seen = {}
    monkeypatch.setattr(ChannelsRunworker, "handle", lambda self, *args, **options: seen.update(options))
    call_command("runworker", "voice-tts")
    assert seen["channels"] == ["voice-replies"]
