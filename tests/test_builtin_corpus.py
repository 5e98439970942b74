from __future__ import annotations

from itertools import islice

from saescope.builtin_corpus import (
    builtin_texts,
    code_texts,
    describe_builtin,
    prose_texts,
    summarize_builtin,
)


def test_prefix_mixes_prose_and_code_and_is_deterministic() -> None:
    first = list(islice(builtin_texts(), 200))
    assert first == list(islice(builtin_texts(), 200))
    assert first[0].kind == "prose" and {t.kind for t in first[:3]} == {"prose", "code"}
    chars = {"prose": 0, "code": 0}
    for t in first:
        chars[t.kind] += len(t.text)
    # Interleaved by size: neither stream dominates a prefix while both last.
    assert 0.3 < chars["prose"] / (chars["prose"] + chars["code"]) < 0.7
    assert all(t.source.startswith("builtin:") and t.text.strip() for t in first)


def test_streams_hold_real_text() -> None:
    prose = list(prose_texts())
    sources = [t.source for t in prose]
    assert "builtin:pydoc_data/topics.py#assert" in sources
    assert 'The "assert" statement' in prose[sources.index("builtin:pydoc_data/topics.py#assert")].text
    (idle,) = [t for t in prose if t.source == "builtin:idlelib/help.html"]
    assert "IDLE" in idle.text and "<div" not in idle.text and "&#" not in idle.text
    assert any(s.endswith("#docstring") for s in sources)
    code = list(islice(code_texts(), 400))
    code_sources = [t.source for t in code]
    assert code_sources == sorted(code_sources)
    assert not any(
        part in s for s in code_sources for part in ("/test/", "/tests/", "idle_test", "site-packages")
    )
    assert all(t.kind == "code" for t in code) and any("def " in t.text for t in code)


def test_describe_builtin() -> None:
    summary = summarize_builtin()
    assert summary.prose_documents > 50 and summary.code_documents > 100
    assert summary.prose_chars > 500_000 and summary.code_chars > 5_000_000
    line = describe_builtin()
    assert f"{summary.prose_documents} prose documents" in line and "\n" not in line
