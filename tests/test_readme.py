"""The README: its two commands are exactly what CI runs, and its Python example runs as printed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    install, test = blocks[0].strip(), blocks[1].strip()
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert install in ci and test in ci
    assert ci.index(install) < ci.index(test)
    assert "TRANSFERKIT_DATA" in "\n".join(ci)


def test_the_readme_python_example_runs_and_prints_what_it_says():
    readme = (ROOT / "README.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    claimed = float(re.search(r"accuracy = .*# ([0-9.]+), as `transferkit run` prints", block).group(1))
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert round(scope["accuracy"], 2) == claimed
