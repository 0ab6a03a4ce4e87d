"""The method reference (``docs/methods.md``), written from the registry and the classes' docstrings.

The docs are not a second description kept by hand beside the code: ``transferkit methods --markdown``
prints this reference from the one table of :mod:`transferkit.registry` and each class's own
docstring, settings (parsed from its constructor's type hints, as ``--set`` parses them) and search
space (what ``--select`` tries). The committed ``docs/methods.md`` is its output, and a test fails
when the two differ, so a method added as one file plus one table line is documented too.

The docstrings are reStructuredText in numpydoc's layout; :func:`rst_to_markdown` renders the part
of it they use (math, literals, cross-references, section headings, doctest examples, literal
blocks) as GitHub-flavoured Markdown.

>>> print(rst_to_markdown("Whitens with :math:`C^{-1/2}` (``reg`` on the diagonal)."))
Whitens with $C^{-1/2}$ (`reg` on the diagonal).
"""

from __future__ import annotations

import inspect
import re
import textwrap

from transferkit import registry

__all__ = ["methods_reference", "rst_to_markdown"]

_ROLE = re.compile(r":(?:math):`([^`]*)`")
_XREF = re.compile(r":(?:class|func|meth|mod|attr|data|obj|exc):`~?([^`]*)`")
_LITERAL = re.compile(r"``([^`]+?)``")
_DASHES = re.compile(r"^-{3,}$")
_FIELD = re.compile(r"^(\w[\w, ]*) : (.+)$")
_FIELD_SECTIONS = {"Parameters", "Attributes", "Returns", "Other Parameters", "Raises", "Yields"}


def _inline(text: str) -> str:
    text = _ROLE.sub(lambda m: f"${m.group(1).strip()}$", text)
    text = _XREF.sub(lambda m: f"`{m.group(1).rsplit('.', 1)[-1] if m.group(0).count('~') else m.group(1)}`",
                     text)  # fmt: skip
    return _LITERAL.sub(r"`\1`", text)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip()) if line.strip() else 0


def rst_to_markdown(doc: str) -> str:
    """Render a docstring's reStructuredText (the subset this project writes) as Markdown.

    ``.. math::`` directives become ``$$`` blocks, ``:math:`` roles ``$...$``, double back-quoted
    literals single ones, ``:class:`~a.B``` cross-references the name in back-quotes, numpydoc section
    headings bold lines, doctest examples ``pycon`` code blocks and ``::`` literal blocks ``text``
    code blocks.
    """
    lines = inspect.cleandoc(doc).splitlines()
    out: list[str] = []
    section = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped and not _indent(line) and i + 1 < len(lines) and _DASHES.match(lines[i + 1]):
            section = stripped  # a numpydoc section heading
            out.append(f"**{section}**")
            out.append("")
            i += 2
            continue
        if section in _FIELD_SECTIONS and not _indent(line) and (m := _FIELD.match(line)):
            out.append(f"- `{m.group(1)}` ({m.group(2).strip()}):")
            i += 1
            while i < len(lines) and _indent(lines[i]) > 0:
                out.append("  " + lines[i].strip())
                i += 1
            continue
        if stripped.startswith(".. math::"):
            indent = len(line) - len(line.lstrip())
            body = [stripped[len(".. math::") :].strip()]
            i += 1
            # the formula: the lines indented deeper than the directive (blank lines inside it kept)
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
                if not lines[i].strip() and not (i + 1 < len(lines) and _indent(lines[i + 1]) > indent):
                    break
                body.append(lines[i].strip())
                i += 1
            pad = " " * indent  # inside a list item, the block stays in it
            out += [pad + "$$", *[pad + b for b in body if b], pad + "$$", ""]
            continue
        if stripped.startswith(">>>"):
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i].strip() if lines[i].strip().startswith((">>>", "...")) else lines[i])
                i += 1
            out += ["```pycon", *textwrap.dedent("\n".join(block)).splitlines(), "```", ""]
            continue
        if stripped.endswith("::") and not stripped.startswith(".."):
            text = stripped[:-2].rstrip()
            out.append(text + ":" if text else "")
            i += 1
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            out += ["", "```text", *textwrap.dedent("\n".join(block)).strip("\n").splitlines(), "```", ""]
            continue
        out.append(line)
        i += 1
    # inline markup may wrap across lines: convert the prose as a whole, leaving code blocks alone
    parts = re.split(r"(```.*?```)", "\n".join(out), flags=re.S)
    text = "".join(p if p.startswith("```") else _inline(p) for p in parts)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _shown(hint) -> str:
    """A type hint as a user reads it (``one of a, b``, ``float or none``, ``int``)."""
    import types
    import typing

    if hint is None:
        return ""
    if hint is type(None):
        return "none"
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(c) for c in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_shown(a) for a in typing.get_args(hint))
    if origin is tuple:
        return "list of " + _shown(typing.get_args(hint)[0])
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def _settings_table(params: dict) -> list[str]:
    rows = ["| setting | default | type |", "|---|---|---|"]
    rows += [f"| `{p}` | `{default!r}` | {_cell(_shown(hint))} |" for p, (hint, default) in params.items()]
    return rows


def _anchor(name: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", name.lower()).replace(" ", "-")


_FLAG = {"method": "--method {name} --set key=value",
         "preprocessing": "--preprocess {name}:key=value,...",
         "estimator": "--estimator {name}:key=value,..."}  # fmt: skip


def _entry_section(kind: str, name: str) -> list[str]:
    e = registry.entry(kind, name)
    cls = e.load()
    where = e.target.replace(":", ".")
    lines = [f"### `{name}`", ""]
    if kind == "method":
        role = "oracle: reads target labels" if e.requires_target_labels else e.role
        lines += [f"*{e.family}* · *{role}* · `{where}`", ""]
    else:
        lines += [f"`{where}`", ""]
    if not cls.__module__.startswith("transferkit."):
        # a scikit-learn class: its own documentation is the reference (and its parameter list
        # changes with scikit-learn's version, which this file must not depend on)
        changed = registry.ESTIMATOR_DEFAULTS.get(name, {})
        ours = ", ".join(f"`{k}={v!r}`" for k, v in changed.items())
        lines += [
            f"scikit-learn's `{cls.__name__}`, with every one of its parameters settable "
            f"(`{_FLAG[kind].format(name=name)}`, as named in scikit-learn's documentation)"
            + (f"; transferkit sets {ours}." if ours else "."),
            "",
        ]
        return lines
    lines += [rst_to_markdown(inspect.getdoc(cls) or "") or e.summary, ""]
    params = e._own_parameters(cls)
    if params:
        lines += [f"Settings (`{_FLAG[kind].format(name=name)}`):", "", *_settings_table(params), ""]
    if kind == "method" and e.role == "deep":
        lines += ["It also takes every [deep setting](#deep-settings) (trainer and network).", ""]
    space = e.search_space if kind == "method" else {}
    if space:
        grid = "; ".join(f"`{k}` in {', '.join(f'`{v!r}`' for v in values)}" for k, values in space.items())
        lines += [f"Label-free selection (`--select SCORER`) tries: {grid}.", ""]
    return lines


def methods_reference() -> str:
    """The whole method reference as Markdown: what ``docs/methods.md`` holds."""
    from transferkit.deep import runner
    from transferkit.deep.runner import NETWORK_SETTINGS, deep_parameters
    from transferkit.nn.backbones import backbone_names
    from transferkit.nn.trainer import TrainerConfig

    runner_doc = inspect.getdoc(runner) or ""

    names = registry.list_methods()
    families: dict[str, list[str]] = {}
    for n in names:
        families.setdefault(registry.entry("method", n).family, []).append(n)
    out = [
        "# transferkit methods",
        "",
        "<!-- Written by `transferkit methods --markdown > docs/methods.md` from the registry and the",
        "classes' docstrings; do not edit by hand (a test checks that this file is current). -->",
        "",
        "Every name below can be given to `transferkit run --method NAME` and",
        "`transferkit bench --methods NAME`, and built in Python with",
        "`transferkit.registry.build('method', NAME, settings)`. Shallow methods are scikit-learn estimators",
        "(an *adapter* transforms rows, a *reweighter* weighs source rows, a *classifier* predicts);",
        "`transferkit.shallow.DAClassifier` turns an adapter or reweighter into a classifier. Deep methods",
        "are losses trained by the one `transferkit.nn.trainer.Trainer`. Runnable scripts that use them",
        "are in [`examples/`](../examples/).",
        "",
        "| method | family | role | summary |",
        "|---|---|---|---|",
    ]
    for n in names:
        e = registry.entry("method", n)
        role = "oracle (reads target labels)" if e.requires_target_labels else e.role
        out.append(f"| [`{n}`](#{_anchor(n)}) | {e.family} | {role} | {_cell(e.summary)} |")
    out += ["", "Contents: " + ", ".join(f"[{f}](#{_anchor(f + ' methods')})" for f in sorted(families))
            + ", [deep settings](#deep-settings), [preprocessing steps](#preprocessing-steps), "
            "[final estimators](#final-estimators).", ""]  # fmt: skip
    for family in sorted(families):
        out += [f"## {family} methods", ""]
        for n in families[family]:
            out += _entry_section("method", n)
    trainer = {k: v for k, v in deep_parameters().items() if k not in NETWORK_SETTINGS}
    out += [
        "## Deep settings",
        "",
        "Every deep method takes these with `--set key=value` beside its own (in Python: the fields of",
        "the trainer's `TrainerConfig` and the arguments of `transferkit.nn.model.build_network`). The",
        "defaults shown are a run's; a `TrainerConfig` built in Python has `min_steps=0`.",
        "",
        "### Trainer",
        "",
        rst_to_markdown(inspect.getdoc(TrainerConfig) or ""),
        "",
        *_settings_table(trainer),
        "",
        "### Network",
        "",
        rst_to_markdown(runner_doc.split("\n\n", 1)[1]),
        "",
        "Backbones (`--set backbone=NAME`; `auto` picks by the data): "
        + ", ".join(f"`{b}`" for b in backbone_names())
        + ". Their inputs and feature sizes are in `transferkit.nn.backbones`.",
        "",
        *_settings_table(NETWORK_SETTINGS),
        "",
        "## Preprocessing steps",
        "",
        "Given in order with `--preprocess NAME[:key=value,...]`; each is fitted on the run's training rows",
        "(labelled sources and unlabelled targets, never a target label).",
        "",
    ]
    for n in registry.list_methods(kind="preprocessing"):
        out += _entry_section("preprocessing", n)
    out += [
        "## Final estimators",
        "",
        f"The classifier a shallow method trains on the (adapted, reweighted) labelled source rows:"
        f" `--estimator NAME[:key=value,...]`, default `{registry.DEFAULT_ESTIMATOR}`.",
        "",
    ]
    for n in registry.list_methods(kind="estimator"):
        out += _entry_section("estimator", n)
    return "\n".join(out).rstrip() + "\n"
