"""The limits of one request: refused above the limit, with the limit named."""

from __future__ import annotations

from pathlib import Path

import pytest

from saescope.config.serve import ServeConfig
from saescope.errors import ConfigError
from saescope.web.limits import CHARS_PER_TOKEN, LimitError, Limits, check_chars, check_count

LIMITS = Limits.of(ServeConfig(run=Path("r"), max_new_tokens=10, max_text_tokens=5))


def test_counts_up_to_the_limit_pass_and_beyond_are_refused() -> None:
    check_count(LIMITS, "max_new_tokens", 10, "max_new_tokens")
    with pytest.raises(LimitError) as caught:
        check_count(LIMITS, "max_new_tokens", 11, "max_new_tokens")
    error = caught.value
    assert (error.limit, error.value, error.given, error.status) == ("max_new_tokens", 10, 11, 422)
    assert "over the limit max_new_tokens = 10" in str(error) and "--max-new-tokens" in str(error)
    assert error.to_json() == {"error": str(error), "limit": "max_new_tokens", "value": 10, "given": 11}


def test_long_texts_are_refused_before_tokenizing() -> None:
    check_chars(LIMITS, "max_text_tokens", "x" * 5 * CHARS_PER_TOKEN, "the text")
    with pytest.raises(LimitError) as caught:
        check_chars(LIMITS, "max_text_tokens", "x" * (5 * CHARS_PER_TOKEN + 1), "the text")
    assert caught.value.status == 413 and "characters" in str(caught.value)


def test_serve_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="give --token"):
        ServeConfig(run=Path("r"), host="0.0.0.0")
    with pytest.raises(ConfigError, match="at least 8 characters"):
        ServeConfig(run=Path("r"), token="short")
    with pytest.raises(ConfigError, match="at least 8 characters among"):
        ServeConfig(run=Path("r"), token="has space; and=")
    with pytest.raises(ConfigError, match="--max-new-tokens must be at least 1"):
        ServeConfig(run=Path("r"), max_new_tokens=0)
    assert ServeConfig(run=Path("r"), host="0.0.0.0", token="abcdefgh12").token == "abcdefgh12"
