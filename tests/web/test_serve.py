"""`saescope serve` as a command: the address on stdout, Ctrl-C stops it, bad settings are one line,
and no other command needs the web extra."""

from __future__ import annotations

import importlib.util
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


def test_serve_prints_its_address_and_stops_on_ctrl_c(run: Path) -> None:
    process = start(str(run), "--port", "0", "--token", "abcdefgh-123", "--device", "cpu")
    try:
        assert process.stdout is not None
        first = process.stdout.readline().strip()
        login = process.stdout.readline().strip()
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
    assert out.strip().endswith("s") and "stopped serving" in out


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
