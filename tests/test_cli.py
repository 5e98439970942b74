"""The `saescope` command: options derived from the config dataclasses, and one-line errors."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import errno
import inspect
import json
import re
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

    def bare(cfg: C.CaptureConfig) -> None:  # as pyarrow raises it: no strerror, no filename
        raise FileNotFoundError("/data/part-3.parquet")

    monkeypatch.setattr(saescope.capture, "capture", bare)
    assert cli.main(["capture"]) == 2
    said = one_line(capsys.readouterr().err, "saescope capture")
    assert said == "saescope capture: error: /data/part-3.parquet" and "None" not in said

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
        "approximation": [],  # an SAE's export is exact; a TopK transcoder's says how close it is
    }


def test_help_and_usage_errors_start_quickly(tmp_path: Path) -> None:
    """`--help` and argument errors import no torch (it alone takes seconds to import) — `train` and
    `convert` included, whose architectures and formats are declared in the torch-free config."""
    code = (
        "import sys; from saescope import cli\n"
        "for argv in (['--help'], ['capture', '--help'], ['train', '--help'], ['convert', '--help'],\n"
        "             ['eval', '--nope'], ['verify'], ['train', '--arch', 'relu', '--k', '4']):\n"
        "    try: cli.main(argv)\n"
        "    except SystemExit: pass\n"
        "print('torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "False", proc.stderr


# ----- what --help says ---------------------------------------------------------------------------
def help_of(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([name, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def printed_description(help_text: str) -> str:
    """The description block of a --help text: between the usage and the first list of arguments."""
    after_usage = help_text.split("\n\n", 1)[1]
    return after_usage.split("\npositional arguments:")[0].split("\noptions:")[0].strip()


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_help_prints_the_whole_description(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The config docstring, every paragraph of it, each ending with a full stop (it was cut after
    its first line: "…best scored first, or")."""
    doc = inspect.getdoc(cli.COMMANDS[name].config) or ""
    shown = printed_description(help_of(name, capsys))
    assert squash(shown) == squash(doc)
    assert shown.startswith(f"`saescope {name}`: ")
    paragraphs = shown.split("\n\n")
    assert len(paragraphs) == len(doc.split("\n\n"))
    assert all(p.rstrip().endswith(".") for p in paragraphs), shown


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_help_shows_required_options_as_required_never_a_placeholder_default(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    help_text = " ".join(help_of(name, capsys).split())
    assert "(default: .)" not in help_text
    assert "(default: )" not in help_text
    docs = docs_of(cli.COMMANDS[name].config)
    for f in dataclasses.fields(cli.COMMANDS[name].config):
        if f.metadata.get("required"):
            assert f"{' '.join(docs[f.name].split())} (required)" in help_text, f.name


# Every field the user must give, by command: its default is only a placeholder.
REQUIRED = {
    "verify": ["store"],
    "eval": ["saes"],
    "convert": ["sae_dir", "out"],
    "steer": ["sae", "steer"],
    "effects": ["sae", "text"],
    "contrast": ["sae", "positive", "negative"],
    "index": ["saes"],
    "query": ["index"],
    "interpret": ["index"],
    "explanations": ["index"],
    "dashboard": ["index"],
    "serve": ["run"],
    "compare": ["saes"],
    "export": ["run", "neuronpedia"],
    "import-explanations": ["export", "index"],
    "circuit": ["run", "prompt"],
}


def test_fields_with_placeholder_defaults_are_marked_required() -> None:
    for name, command in cli.COMMANDS.items():
        marked = [f.name for f in dataclasses.fields(command.config) if f.metadata.get("required")]
        assert marked == REQUIRED.get(name, []), name
        placeholders = [f.name for f in dataclasses.fields(command.config) if f.default == Path()]
        assert set(placeholders) <= set(marked), f"{name}: {placeholders} default to a placeholder"


@pytest.mark.parametrize(
    ("argv", "missing"),
    [
        (["contrast", "runs/x/sae", "--positive", "p.txt"], "--negative"),
        (["contrast"], "SAE, --positive, --negative"),
        (["verify"], "STORE"),
        (["eval"], "SAE"),
        (["effects", "runs/x/sae"], "--text"),
        (["convert", "runs/x/sae"], "--out"),
        (["steer", "runs/x/sae", "--prompt", "Hi"], "--steer"),
    ],
)
def test_a_missing_required_option_is_one_line_naming_it(
    argv: list[str], missing: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    line = one_line(capsys.readouterr().err, f"saescope {argv[0]}")
    assert f"the following arguments are required: {missing}" in line
    # with a --config file that does not give them either, the same line, after reading it
    path = tmp_path / "c.toml"
    path.write_text("")
    assert cli.main([*argv, "--config", str(path)]) == 2
    line = one_line(capsys.readouterr().err, f"saescope {argv[0]}")
    assert line.endswith(f"the following arguments are required: {missing}")


def test_required_options_and_positionals_may_come_from_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(cli, "stage_function", lambda command: seen.append)
    monkeypatch.setattr(cli, "report", lambda result, as_json: None)
    path = tmp_path / "c.toml"
    path.write_text('sae = "runs/x/sae"\npositive = "p.txt"\nnegative = "n.txt"\n')
    assert cli.main(["contrast", "--config", str(path)]) == 0
    assert (seen[-1].sae, seen[-1].positive, seen[-1].negative) == (
        Path("runs/x/sae"),
        Path("p.txt"),
        Path("n.txt"),
    )
    assert cli.main(["contrast", "runs/y/sae", "--config", str(path), "--negative", "m.txt"]) == 0
    assert (seen[-1].sae, seen[-1].negative) == (Path("runs/y/sae"), Path("m.txt"))
    # a positional list from the file is not replaced by the empty list of an absent positional
    path.write_text('saes = ["runs/a/sae", "runs/b/sae"]\n')
    assert cli.main(["eval", "--conf", str(path)]) == 0
    assert seen[-1].saes == (Path("runs/a/sae"), Path("runs/b/sae"))


def test_no_help_text_cites_the_seed_documents(capsys: pytest.CaptureFixture[str]) -> None:
    """Users do not have the documents the project grew from ("seed 001"): name the project or
    paper instead, in --help and in every docstring and comment of the package."""
    for name in cli.COMMANDS:
        help_text = " ".join(help_of(name, capsys).split())
        assert not re.search(r"(?i)\bseeds? \d{3}", help_text), (
            name,
            re.findall(r".{40}seed \d{3}.{20}", help_text),
        )
    package = Path(cli.__file__).parent
    for path in package.rglob("*.py"):
        text = " ".join(path.read_text(encoding="utf-8").split())
        assert not re.search(r"(?i)\bseeds? \d{3}", text), path


def test_the_missing_api_key_error_names_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    from saescope.interpret.clients.sdk import read_api_key

    monkeypatch.delenv("SAESCOPE_TEST_NO_SUCH_KEY", raising=False)
    with pytest.raises(SaescopeError) as info:
        read_api_key("SAESCOPE_TEST_NO_SUCH_KEY", "openai")
    message = str(info.value)
    assert "SAESCOPE_TEST_NO_SUCH_KEY" in message and "--api-key-env" in message
    assert "api_key_env" not in message.replace("--api-key-env", "")


# ----- --config values of the wrong type ------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "name", "text", "error"),
    [
        ("train", "c.toml", 'tokens = "lots"\n', '--tokens expects an integer (or nothing), got "lots"'),
        ("train", "c.toml", 'latents = "x"\n', '--latents expects an integer, or a list of them, got "x"'),
        (
            "train",
            "c.yaml",
            "latents: [64, many]\n",
            '--latents expects an integer, or a list of them, got [64, "many"]',
        ),
        ("train", "c.json", '{"resume": "true"}', '--resume expects true or false, got "true"'),
        ("train", "c.toml", 'optimizer = "sgd"\n', '--optimizer expects one of adam, adamw, got "sgd"'),
        ("train", "c.toml", "lr = [0.1]\n", "--lr expects a number (or nothing), got [0.1]"),
        ("train", "c.toml", "batch_size = 1.5\n", "--batch-size expects an integer, got 1.5"),
        (
            "train",
            "c.toml",
            'arch = "no-such-sae"\n',
            "--arch expects one of batchtopk, gated, jumprelu, matryoshka, relu, topk, transcoder,"
            ' got "no-such-sae"',
        ),
        ("train", "c.toml", 'l1_coefficient = "high"\n', '--l1-coefficient expects a number, got "high"'),
        ("train", "c.toml", "acts = 5\n", "--acts expects a path (or nothing), got 5"),
        ("steer", "c.yaml", "top_p: high\n", '--top-p expects a number, got "high"'),
        (
            "steer",
            "c.yaml",
            "positions: [1, last]\n",
            '--positions expects an integer, or a list of them, got [1, "last"]',
        ),
        ("capture", "c.json", '{"tokens": [1, 2]}', "--tokens expects an integer, got [1, 2]"),
        ("capture", "c.yaml", "tokens: null\n", "--tokens expects an integer, got null"),
        ("capture", "c.toml", "prepend_bos = 1\n", "--prepend-bos expects true or false, got 1"),
        (
            "query",
            "c.toml",
            'unit = "word"\n',
            '--unit expects one of token, sentence, document (or nothing), got "word"',
        ),
        ("verify", "c.toml", "store = [1]\n", "STORE expects a path, got [1]"),
        (
            "convert",
            "c.toml",
            'from = "pickle"\n',
            '--from expects one of auto, native, saelens, sparsify, gemmascope, llamascope, got "pickle"',
        ),
    ],
)
def test_config_values_of_the_wrong_type_are_one_line_naming_the_flag(
    tmp_path: Path, command: str, name: str, text: str, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    path.write_text(text)
    argv = [command, *POSITIONALS.get(command, []), "--config", str(path)]
    assert cli.main(argv) == 2
    line = one_line(capsys.readouterr().err, f"saescope {command}")
    assert line == f"saescope {command}: error: --config {path}: {error}"


POSITIONALS = {"steer": ["runs/x/sae"], "query": ["runs/x/index"], "convert": ["runs/x/sae"]}


@pytest.mark.parametrize(
    ("command", "name", "text", "expected"),
    [
        # PyYAML reads 3e-4 and 1e6 as strings; TOML writes 1e6 as a float
        ("train", "c.yaml", "lr: 3e-4\ntokens: 1e6\n", {"lr": 3e-4, "tokens": 1_000_000}),
        (
            "train",
            "c.toml",
            "tokens = 1e6\nlatents = 64\nk = [8, 16]\n",
            {"tokens": 1_000_000, "latents": (64,), "k": (8, 16)},
        ),
        (
            "train",
            "c.toml",
            'arch = "relu"\nl1_coefficient = 1\n',
            {"architecture": "relu", "arch_params": {"l1_coefficient": 1.0}},
        ),
        (
            "train",
            "c.toml",
            'architecture = "relu"\narch_params = {l1_coefficient = 2}\n',
            {"arch_params": {"l1_coefficient": 2.0}},
        ),
        (
            "train",
            "c.json",
            '{"epochs": null, "tokens": 10, "acts": "runs/a/acts"}',
            {"epochs": None, "acts": Path("runs/a/acts")},
        ),
        (
            "capture",
            "c.yaml",
            "hookpoint: resid_post:3\nsample_fraction: 1\n",
            {"hookpoints": ("resid_post:3",), "sample_fraction": 1.0},
        ),
    ],
)
def test_config_values_are_typed(
    tmp_path: Path, command: str, name: str, text: str, expected: dict[str, Any]
) -> None:
    path = tmp_path / name
    path.write_text(text)
    cfg = parse_with_file([command, "--config", str(path)])
    for key, value in expected.items():
        got = getattr(cfg, key)
        assert got == value and type(got) is type(value), key


def test_an_option_given_twice_in_a_config_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('arch = "relu"\narchitecture = "topk"\n')
    with pytest.raises(SaescopeError, match="--arch is given twice"):
        cli.config_file_values(C.TrainConfig, path)
