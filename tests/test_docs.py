"""The method reference: written from the registry, committed, and current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from transferkit import registry
from transferkit.cli import main
from transferkit.docs import methods_reference, rst_to_markdown

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reference() -> str:
    return methods_reference()


def test_the_committed_reference_is_current(reference):
    committed = (ROOT / "docs" / "methods.md").read_text()
    assert committed == reference, (
        "docs/methods.md is out of date: run `transferkit methods --markdown > docs/methods.md`"
    )


def test_every_registered_name_has_a_section_and_every_link_a_target(reference):
    headings = re.findall(r"^#+ (.+)$", reference, flags=re.M)
    for kind in ("method", "preprocessing", "estimator"):
        for name in registry.list_methods(kind=kind):
            assert f"`{name}`" in headings, f"{kind} {name} has no section"
    # GitHub's anchors: lower case, punctuation dropped, spaces as hyphens; the first of equal ones wins
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
    links = set(re.findall(r"\]\(#([^)]+)\)", reference))
    assert links and links <= anchors, sorted(links - anchors)
    # a method's anchor is its own section, not a family heading of the same name
    assert len(headings) == len(anchors)


def test_no_restructured_text_is_left(reference):
    prose = re.sub(r"```.*?```", "", reference, flags=re.S)
    for leftover in ("``", ":math:", ":class:", ":func:", ":mod:", ".. math::", "\n---"):
        assert leftover not in prose, leftover


def test_a_method_section_says_how_to_set_and_select_it(reference):
    section = reference.split("### `dann`", 1)[1].split("\n### ", 1)[0]
    assert "`--method dann --set key=value`" in section
    assert "| `weight` | `1.0` | float |" in section
    assert "[deep setting](#deep-settings)" in section
    assert "`weight` in `0.1`, `0.3`, `1.0`" in section  # DANN.search_space
    # an oracle method says that it reads target labels
    assert "*oracle: reads target labels*" in reference.split("### `target-only`", 1)[1][:200]


def test_math_inside_a_list_item_stays_in_it_and_the_item_goes_on():
    doc = """Summary.

    1. First step
       minimises

       .. math::
          a + b

          + c

       continued text of the step.
    2. Second step.
    """
    assert rst_to_markdown(doc).splitlines() == [
        "Summary.",
        "",
        "1. First step",
        "   minimises",
        "",
        "   $$",
        "   a + b",
        "   + c",
        "   $$",
        "",
        "   continued text of the step.",
        "2. Second step.",
    ]


def test_numpydoc_fields_doctests_and_literal_blocks():
    doc = """Summary with ``code``, :math:`x^2` and :class:`~transferkit.shallow.coral.CORAL`.

    Parameters
    ----------
    reg : float
        The ridge, see :func:`numpy.linalg.eigh`.

    A layout::

        root/
          <domain>/<class>

    Examples
    --------
    >>> 1 + 1
    2
    """
    assert rst_to_markdown(doc).splitlines() == [
        "Summary with `code`, $x^2$ and `CORAL`.",
        "",
        "**Parameters**",
        "",
        "- `reg` (float):",
        "  The ridge, see `numpy.linalg.eigh`.",
        "",
        "A layout:",
        "",
        "```text",
        "root/",
        "  <domain>/<class>",
        "```",
        "",
        "**Examples**",
        "",
        "```pycon",
        ">>> 1 + 1",
        "2",
        "```",
    ]


def test_the_cli_prints_the_reference(capsys, reference):
    assert main(["methods", "--markdown"]) == 0
    assert capsys.readouterr().out == reference
    assert main(["methods", "coral", "--markdown"]) == 2
    assert "leave out NAME" in capsys.readouterr().err
