"""The `saescope` command: options derived from the config dataclasses, and one-line errors."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import errno
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import saescope.capture
import saescope.config as C
from saescope import cli
from saescope.errors import SaescopeError
from saescope.sae.registry import architecture_names


def naive_field_docs() -> dict[str, dict[str, str]]:
    """Class name → field → the string literal right under it, read from the config package's syntax trees."""
    nodes = [n for path in Path(C.__file__).parent.glob("*.py") for n in ast.parse(path.read_text()).body]
    out: dict[str, dict[str, str]] = {}
    for node in nodes:
        if not isinstance(node, ast.ClassDef):
            continue
        docs = out.setdefault(node.name, {})
        for i, stmt in enumerate(node.body[:-1]):
            after = node.body[i + 1]
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[stmt.target.id] = after.value.value
    return out


def docs_of(cls: type) -> dict[str, str]:
    """A config's field docs, a subclass's own docs overriding its bases' (as for the fields)."""
    by_class = naive_field_docs()
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        docs.update(by_class.get(klass.__name__, {}))
    return docs


def squash(text: str) -> str:
    """Text without any whitespace (argparse re-wraps help, also at hyphens)."""
    return "".join(text.split())


def subparser(name: str) -> argparse.ArgumentParser:
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[name]


def one_line(err: str, prog: str) -> str:
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_help_lists_every_field_with_its_docstring(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    cls = cli.COMMANDS[name].config
    with pytest.raises(SystemExit) as exit_info:
        cli.main([name, "--help"])
    assert exit_info.value.code == 0
    help_text = squash(capsys.readouterr().out)
    docs = docs_of(cls)
    by_dest = {a.dest: a for a in subparser(name)._actions}
    for f in dataclasses.fields(cls):
        if "options_from" in f.metadata:
            continue  # gathered from other classes (each architecture's hyperparameters)
        doc = docs.get(f.name, "")
        assert doc.strip(), f"{cls.__name__}.{f.name} has no docstring"
        action = by_dest[f.name]
        if f.metadata.get("positional"):
            assert action.option_strings == []
            assert squash(f.metadata.get("metavar", f.name.upper())) in help_text
        else:
            expected_flags = list(f.metadata.get("flags", ("--" + f.name.replace("_", "-"),)))
            if f.type == "bool":
                expected_flags += ["--no-" + flag[2:] for flag in expected_flags]
            assert sorted(action.option_strings) == sorted(expected_flags)
            for flag in expected_flags:
                assert flag in help_text
        assert action.help is not None and squash(action.help).startswith(squash(doc))
        assert squash(doc) in help_text


def test_top_level_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for name, command in cli.COMMANDS.items():
        assert name in out and command.help in out


def test_architecture_choices_come_from_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    by_flag = {s: a for a in subparser("train")._actions for s in a.option_strings}
    assert by_flag["--arch"] is by_flag["--architecture"]
    assert list(by_flag["--arch"].choices or []) == architecture_names()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--arch", "no-such-arch"])
    assert exit_info.value.code == 2
    line = one_line(capsys.readouterr().err, "saescope train")
    assert all(name in line for name in architecture_names())


def parse(argv: list[str]) -> Any:
    cls = cli.COMMANDS[argv[0]].config
    return cli.build_config(cls, cli.build_parser().parse_args(argv))


def test_comma_separated_and_repeated_list_options() -> None:
    cfg = parse(["capture", "--hookpoint", "resid_post:1,mlp_out:2", "--hookpoint", "attn_out:3"])
    assert cfg.hookpoints == ("resid_post:1", "mlp_out:2", "attn_out:3")
    cfg = parse(["capture", "--hookpoints", "resid_post:1", "resid_pre:2", "--hookpoint", "mlp_out:0,"])
    assert cfg.hookpoints == ("resid_post:1", "resid_pre:2", "mlp_out:0")
    cfg = parse(["train", "--k", "16,32", "--k", "64", "--latents", "128", "256"])
    assert cfg.k == (16, 32, 64) and cfg.latents == (128, 256)
    # positional paths are not split at commas
    cfg = parse(["eval", "runs/a,b", "runs/c"])
    assert cfg.saes == (Path("runs/a,b"), Path("runs/c"))


def test_unset_options_keep_the_dataclass_defaults_and_values_are_typed() -> None:
    assert parse(["capture"]) == C.CaptureConfig()
    cfg = parse(["capture", "--tokens", "123", "--no-prepend-bos", "--sample-fraction", "0.5", "--out", "x"])
    assert cfg == C.CaptureConfig(tokens=123, prepend_bos=False, sample_fraction=0.5, out=Path("x"))
    cfg = parse(["convert", "sae-dir", "--from", "saelens", "--to", "sparsify", "--out", "o"])
    assert (cfg.sae_dir, cfg.from_format, cfg.to_format, cfg.out) == (
        Path("sae-dir"),
        "saelens",
        "sparsify",
        Path("o"),
    )


def test_help_survives_percent_signs_and_hides_empty_defaults() -> None:
    @dataclasses.dataclass(frozen=True)
    class Odd:
        share: str = "5%"
        """Fraction kept, in % of all rows."""

        name: str = ""
        """A name."""

    parser = argparse.ArgumentParser(prog="odd")
    cli.add_dataclass_arguments(parser, Odd)
    text = parser.format_help()
    assert "in % of all rows. (default: 5%)" in " ".join(text.split())
    assert "A name. (default" not in " ".join(text.split())


def test_os_errors_and_interrupts_become_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def disk_full(cfg: C.CaptureConfig) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/data/x")

    monkeypatch.setattr(saescope.capture, "capture", disk_full)
    assert cli.main(["capture", "--device", "cpu"]) == 2
    assert "disk full (/data/x)" in one_line(capsys.readouterr().err, "saescope capture")

    def missing(cfg: C.CaptureConfig) -> None:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/nope")

    monkeypatch.setattr(saescope.capture, "capture", missing)
    assert cli.main(["capture"]) == 2
    assert "No such file or directory: /nope" in one_line(capsys.readouterr().err, "saescope capture")

    def user_error(cfg: C.CaptureConfig) -> None:
        raise SaescopeError("the thing is wrong")

    monkeypatch.setattr(saescope.capture, "capture", user_error)
    assert cli.main(["capture"]) == 2
    assert (
        one_line(capsys.readouterr().err, "saescope capture") == "saescope capture: error: the thing is wrong"
    )

    def interrupted(cfg: C.CaptureConfig) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(saescope.capture, "capture", interrupted)
    assert cli.main(["capture"]) == 130
    assert capsys.readouterr().err.strip() == "saescope capture: interrupted"


def test_with_json_what_a_stage_prints_goes_to_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Done:
        def to_json(self) -> dict[str, int]:
            return {"rows": 3}

        def render(self) -> str:
            return "3 rows"

    def chatty(cfg: C.CaptureConfig) -> Done:
        print("a library talking on stdout")
        return Done()

    monkeypatch.setattr(saescope.capture, "capture", chatty)
    assert cli.main(["capture", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"rows": 3} and "a library talking on stdout" in err
    assert cli.main(["capture"]) == 0  # without --json stdout is the user's terminal, as it was
    assert capsys.readouterr().out == "a library talking on stdout\n3 rows\n"


@pytest.mark.parametrize(
    ("argv", "prog", "fragment"),
    [
        ([], "saescope", "the following arguments are required: COMMAND"),
        (["capture", "--tokens", "many"], "saescope capture", "argument --tokens: invalid int value"),
        (["capture", "--tokens", "0"], "saescope capture", "--tokens must be positive, got 0"),
        (["capture", "--model", "./no/such/model", "--device", "cpu"], "saescope capture", "no/such/model"),
    ],
    ids=["no-command", "usage", "config", "stage"],
)
def test_errors_are_one_line_without_traceback(
    argv: list[str], prog: str, fragment: str, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "saescope", *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert fragment in one_line(proc.stderr, prog)
    assert list(tmp_path.iterdir()) == []


# ----- --version, --config, --json ---------------------------------------------------------------
def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import saescope

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"saescope {saescope.__version__}"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "c.toml",
            'tokens = 500\nhookpoints = ["resid_post:1", "mlp_out:2"]\n'
            'out = "from-file"\nprepend-bos = false\n',
        ),
        (
            "c.yaml",
            "tokens: 500\nhookpoints: [resid_post:1, mlp_out:2]\nout: from-file\nprepend_bos: false\n",
        ),
        (
            "c.json",
            '{"tokens": 500, "hookpoints": ["resid_post:1", "mlp_out:2"], '
            '"out": "from-file", "prepend_bos": false}',
        ),
    ],
)
def test_config_files_give_defaults_that_flags_override(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    cfg = parse_with_file(["capture", "--config", str(path)])
    assert cfg == C.CaptureConfig(
        tokens=500, hookpoints=("resid_post:1", "mlp_out:2"), out=Path("from-file"), prepend_bos=False
    )
    cfg = parse_with_file(["capture", "--config", str(path), "--tokens", "7", "--hookpoint", "attn_out:0"])
    assert (cfg.tokens, cfg.hookpoints, cfg.out) == (7, ("attn_out:0",), Path("from-file"))


def parse_with_file(argv: list[str]) -> Any:
    args = cli.build_parser().parse_args(argv)
    command = cli.COMMANDS[argv[0]]
    return cli.build_config(command.config, args, cli.config_file_values(command.config, args.config))


def test_config_files_are_read_by_main(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("tokens = 321\n")
    assert parse_with_file(["capture", "--config", str(path)]).tokens == 321


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("tokenz = 5\n", "unknown option(s) tokenz; valid:"),
        ("tokens = [1\n", "cannot be parsed"),
        ("tokens = 0\n", "--tokens must be positive, got 0"),
    ],
)
def test_bad_config_files_are_one_line(
    tmp_path: Path, text: str, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert cli.main(["capture", "--config", str(path)]) == 2
    assert fragment in one_line(capsys.readouterr().err, "saescope capture")
    assert cli.main(["capture", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "no such file" in one_line(capsys.readouterr().err, "saescope capture")


def test_json_is_one_document_on_stdout_for_every_reporting_command(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(" ".join(f"The cat {i} sat on the mat in Paris." for i in range(400)))
    acts, sae = tmp_path / "acts", tmp_path / "sae"
    runs = {
        "capture": [
            "capture",
            "--model",
            str(tiny_model_dir),
            "--dataset",
            str(corpus),
            "--hookpoint",
            "resid_post:1",
            "--tokens",
            "2048",
            "--context-len",
            "64",
            "--out",
            str(acts),
            "--device",
            "cpu",
        ],
        "verify": ["verify", str(acts)],
        "train": [
            "train",
            "--acts",
            str(acts),
            "--out",
            str(sae),
            "--latents",
            "64",
            "--k",
            "4",
            "--batch-size",
            "256",
            "--tokens",
            "2048",
            "--device",
            "cpu",
        ],
        "eval": ["eval", str(sae), "--tokens", "128", "--device", "cpu", "--dataset", str(corpus)],
        "convert": [
            "convert",
            str(sae),
            "--from",
            "native",
            "--to",
            "saelens",
            "--out",
            str(tmp_path / "lens"),
        ],
    }
    for name, argv in runs.items():
        assert cli.main([*argv, "--json"]) == 0, name
        out = capsys.readouterr().out
        document = json.loads(out)  # the whole of stdout is one JSON document
        assert isinstance(document, dict) and document, name
    assert json.loads(json.dumps(document)) == {
        "out": str(tmp_path / "lens"),
        "from": "native",
        "to": "saelens",
    }


def test_help_and_usage_errors_start_quickly(tmp_path: Path) -> None:
    """`--help` and argument errors import no torch (it alone takes seconds to import)."""
    code = (
        "import sys; from saescope import cli\n"
        "for argv in (['--help'], ['capture', '--help'], ['eval', '--nope'], ['verify']):\n"
        "    try: cli.main(argv)\n"
        "    except SystemExit: pass\n"
        "print('torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "False", proc.stderr
