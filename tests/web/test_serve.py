"""`saescope serve` as a command: the address logged on stderr (with --json, stdout holds one JSON
document only), Ctrl-C stops it, bad settings are one line, and no other command needs the web extra."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from saescope.errors import SaescopeError
from saescope.web import serve as serve_module


def start(*args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "saescope", "serve", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def address_lines(process: subprocess.Popen[str]) -> tuple[str, str]:
    """The two address lines the server logs on stderr (without their time stamps)."""
    assert process.stderr is not None
    lines: list[str] = []
    while len(lines) < 2:
        line = process.stderr.readline()
        assert line, "the server stopped before logging its address"
        if "saescope serving on" in line or "log in at" in line:
            lines.append(line.strip().split(" ", 1)[1])
    return lines[0], lines[1]


@pytest.mark.parametrize("as_json", [False, True])
def test_serve_logs_its_address_and_stops_on_ctrl_c(run: Path, as_json: bool) -> None:
    flags = ["--json"] if as_json else []
    process = start(str(run), "--port", "0", "--token", "abcdefgh-123", "--device", "cpu", *flags)
    try:
        first, login = address_lines(process)
        assert first.startswith("saescope serving on http://127.0.0.1:")
        url = first.rsplit(" ", 1)[1]
        assert login == f"log in at {url}/?token=abcdefgh-123"
        deadline = time.monotonic() + 60
        while True:
            try:
                status = httpx.get(f"{url}/api/status", headers={"X-Saescope-Token": "abcdefgh-123"})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert status.status_code == 200 and status.json()["has_index"]
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    if as_json:
        assert json.loads(out)["url"] == url  # the whole of stdout is one JSON document
    else:
        assert out.startswith(f"stopped serving {url} after") and out.count("\n") == 1


def test_beyond_loopback_without_a_token_is_refused(run: Path) -> None:
    process = start(str(run), "--host", "0.0.0.0")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2 and out == ""
    assert err.count("\n") == 1 and "give --token" in err


def test_a_missing_run_is_one_line(tmp_path: Path) -> None:
    process = start(str(tmp_path / "nowhere"), "--port", "0")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2 and err.count("\n") == 1 and "not a run folder" in err


def test_without_the_web_extra_it_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        serve_module.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "fastapi" else real(name, *a),
    )
    with pytest.raises(SaescopeError, match=r"needs fastapi: pip install 'saescope\[web\]'"):
        serve_module.require_web_extra()


def test_the_command_line_does_not_import_the_web_extra() -> None:
    code = (
        "import sys, saescope.cli as c; c.build_parser(['serve']); c.build_parser(['dashboard']);"
        "import saescope.dashboard, saescope.render; assert 'fastapi' not in sys.modules, 'fastapi imported'"
        "; assert 'uvicorn' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
