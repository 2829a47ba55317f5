"""Every ```python block of README.md, and every block fenced ```python runnable in docs/*.md,
runs as written: each in a fresh namespace, in a temporary working directory (so the
PNGs the snippets write land there), with the global RNG seeded. A snippet that stops
running (a renamed argument, a removed function) fails here, named by file and line.
"""
from __future__ import annotations

import os
import re

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FENCE = re.compile(r"^```(\S*)[ \t]*(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)


def _blocks(path: str, need_mark: bool):
    with open(path) as f:
        text = f.read()
    for m in _FENCE.finditer(text):
        lang, mark, body = m.group(1), m.group(2), m.group(3)
        if lang != "python" or (need_mark and mark != "runnable"):
            continue
        line = text.count("\n", 0, m.start()) + 2  # first line of the code
        yield f"{os.path.relpath(path, ROOT)}:{line}", line, body


def _all_blocks():
    out = list(_blocks(os.path.join(ROOT, "README.md"), need_mark=False))
    docs = os.path.join(ROOT, "docs")
    if os.path.isdir(docs):
        for name in sorted(os.listdir(docs)):
            if name.endswith(".md"):
                out += list(_blocks(os.path.join(docs, name), need_mark=True))
    return out


BLOCKS = _all_blocks()


def test_readme_has_python_blocks():
    assert sum(b[0].startswith("README.md") for b in BLOCKS) >= 5


def test_fence_parser():
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False) as f:
        f.write("x\n```python\na = 1\n```\n```bash\nls\n```\n```python runnable\nb = 2\n```\n```py\nc\n```\n")
    try:
        assert [(n, body) for _, n, body in _blocks(f.name, False)] == [(3, "a = 1\n"), (9, "b = 2\n")]
        assert [body for *_, body in _blocks(f.name, True)] == ["b = 2\n"]
    finally:
        os.unlink(f.name)


@pytest.mark.parametrize("where, line, code", BLOCKS, ids=[b[0] for b in BLOCKS])
def test_snippet_runs(where, line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    # blank lines in front so tracebacks point at the file's own line numbers
    src = "\n" * (line - 1) + code
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small snippets: on a shared machine 2 spin-waiting threads are 10x slower
    try:
        exec(compile(src, os.path.join(ROOT, where.rsplit(":", 1)[0]), "exec"), {"__name__": "__readme__"})
    finally:
        torch.set_num_threads(threads)


def test_benchmarks_doc_is_rendered_from_the_committed_results(tmp_path):
    """docs/benchmarks.md is what benchmarks/render_docs.py makes of benchmarks/results/*.json
    (after new results land, rerun `python benchmarks/render_docs.py`), and the renderer
    writes its plot."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("render_docs", os.path.join(ROOT, "benchmarks", "render_docs.py"))
    rd = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rd)
    assert rd.main(["--check"]) == 0, "docs/benchmarks.md is stale: run python benchmarks/render_docs.py"
    out = tmp_path / "bench.md"
    assert rd.main(["--out", str(out), "--img-dir", str(tmp_path / "img")]) == 0
    text = out.read_text()
    for suite in ("reparam", "gibbs", "langevin"):
        assert f"\n## {suite}\n" in text
    assert "| case | gensample ms | reference ms |" in text
    with open(tmp_path / "img" / "benchmark_speedups.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_cli_reference_documents_every_option():
    """docs/cli.md names every command and every option of gensample/cli.py's parser."""
    import argparse

    cli = pytest.importorskip("gensample.cli")
    with open(os.path.join(ROOT, "docs", "cli.md")) as f:
        doc = f.read()

    def walk(parser, name):
        yield name, parser
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sub, sp in a.choices.items():
                    yield from walk(sp, f"{name} {sub}")

    missing = []
    for name, parser in walk(cli.build_parser(), "gensample"):
        if name != "gensample" and f"## {name}\n" not in doc:
            missing.append(f"section '## {name}'")
        for a in parser._actions:
            for opt in a.option_strings:
                if opt.startswith("--") and opt not in ("--help", "--version") and f"`{opt}" not in doc:
                    missing.append(f"{name} {opt}")
    assert not missing, "docs/cli.md lacks: " + ", ".join(missing)
