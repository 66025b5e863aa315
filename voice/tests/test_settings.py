"""The README's settings table stays true: every setting read from the environment is in it, and nothing else."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented_once_in_the_readme():
    source = (ROOT / "voiceproject" / "settings.py").read_text()
    read = set(re.findall(r'(?:os\.environ\.get|env_(?:int|float|bool|list))\(\s*"([A-Z_]+)"', source))
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `([A-Z_]+)` \|", readme, flags=re.M)
    assert sorted(set(rows)) == sorted(read)
    assert len(rows) == len(set(rows)), "a setting is listed twice"
