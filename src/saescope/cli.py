"""The `saescope` command: parse arguments into a stage's config dataclass and call the stage.

No pipeline logic lives here. `COMMANDS` names, for every subcommand, its config dataclass and its
stage function (imported only when the command runs, so `--help` and argument errors are quick).
Options are derived from the config dataclasses: a field's type gives the option's type (Literal →
choices, bool → --x/--no-x, tuple → several values, given space- or comma-separated or by
repeating the option), the string under the field gives its help, and `metadata` may add aliases
(`flags`), dynamic choices (`choices`, a callable — e.g. the SAE architecture registry), make it
positional, or gather the fields of other dataclasses into a mapping (`options_from`, a callable
returning {name: dataclass} — each architecture's own hyperparameters).

Handled here once for every command: `--config FILE` (TOML, YAML or JSON with the options' own
names; flags given on the command line override it), `--json` (the result's `to_json()` as one
JSON document on stdout; otherwise its `render()`), `--version`, and errors: a `SaescopeError`
(or a bad option) becomes one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import errno
import importlib
import inspect
import itertools
import json
import logging
import os
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from . import config as C
from .errors import ConfigError, SaescopeError

log = logging.getLogger("saescope")


class Command(NamedTuple):
    """One subcommand: its settings, the stage function that runs them, one line of help."""

    config: type
    """The config dataclass (its fields are the options)."""
    run: str
    """`module:function` of the stage function `f(config) -> result` (with `to_json`, `render`)."""
    help: str
    """What the command does, in one line."""


COMMANDS: dict[str, Command] = {
    "capture": Command(C.CaptureConfig, "saescope.capture:capture", "model × corpus → activation store"),
    "verify": Command(
        C.VerifyConfig, "saescope.store.verify:verify_store", "check every checksum of a store"
    ),
    "train": Command(
        C.TrainConfig, "saescope.train:train", "activation store (or a model, on the fly) → SAE"
    ),
    "eval": Command(
        C.EvalConfig, "saescope.evals:evaluate", "SAE → reconstruction, sparsity, downstream metrics"
    ),
    "convert": Command(
        C.ConvertConfig, "saescope.convert:convert", "import/export SAELens, sparsify, Gemma Scope"
    ),
    "demo": Command(C.DemoConfig, "saescope.demo:demo", "the whole pipeline on the embedded model"),
    "steer": Command(
        C.SteerConfig, "saescope.steer.experiment:steer", "generate with latents edited, beside controls"
    ),
    "effects": Command(
        C.EffectsConfig, "saescope.steer.effects:effects", "ablation and attribution per latent"
    ),
    "contrast": Command(
        C.ContrastConfig, "saescope.steer.contrast:contrast", "latents separating two sets of texts"
    ),
    "index": Command(
        C.IndexConfig, "saescope.index.build:build_index", "SAE → latent index of its held-out text"
    ),
    "query": Command(C.QueryConfig, "saescope.index.query:query", "ask a latent index about latents, texts"),
    "interpret": Command(
        C.InterpretConfig,
        "saescope.interpret.command:interpret_latents",
        "latent index → explanations, scored",
    ),
    "explanations": Command(
        C.ExplanationsConfig, "saescope.interpret.listing:explanations", "list or search stored explanations"
    ),
    "dashboard": Command(
        C.DashboardConfig, "saescope.dashboard:dashboard", "latent index → static HTML pages"
    ),
    "serve": Command(C.ServeConfig, "saescope.web.serve:serve", "browser UI and JSON API over a run"),
}


# ----- dataclass → argparse ---------------------------------------------------------------
def field_docs(cls: type) -> dict[str, str]:
    """The string literal under each field of `cls` and its bases (attribute docstrings)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _comma_list(convert: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    """An argparse `type` reading "a,b" as two values, each converted (empty pieces dropped)."""

    def parse(text: str) -> list[Any]:
        return [convert(p) for p in text.split(",") if p != ""]

    # argparse names the type in its error message ("invalid int value: 'x'")
    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def _option_kwargs(f: dataclasses.Field[Any], tp: Any, optional: bool, doc: str) -> dict[str, Any]:
    """argparse keyword arguments for one field (type, choices, nargs, help with its default)."""
    meta = f.metadata
    default: Any = f.default
    if default is dataclasses.MISSING and callable(f.default_factory):
        default = f.default_factory()
    # argparse %-formats help texts: a literal % must be doubled
    kwargs: dict[str, Any] = {"dest": f.name, "help": doc.replace("%", "%%")}
    origin = typing.get_origin(tp)
    if tp is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif origin is tuple and meta.get("positional"):
        kwargs["nargs"] = "*"
        kwargs["type"] = typing.get_args(tp)[0]
    elif origin is tuple:
        # "a,b c", "a b c" and "--x a,b --x c" all give three values
        kwargs["nargs"] = "+"
        kwargs["type"] = _comma_list(typing.get_args(tp)[0])
        kwargs["action"] = "extend"
    elif origin is typing.Literal:
        kwargs["choices"] = list(typing.get_args(tp))
    else:
        kwargs["type"] = tp
    if "choices" in meta:
        choices: Callable[[], list[str]] = meta["choices"]
        kwargs["choices"] = choices()
    if default is not None and default != "" and not (isinstance(default, tuple) and not default):
        shown = ", ".join(map(str, default)) if isinstance(default, tuple) else str(default)
        kwargs["help"] += f" (default: {shown})".replace("%", "%%")
    elif optional and default is None:
        kwargs["help"] += " (default: none)"
    return kwargs


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, skip: Sequence[str] = ()
) -> None:
    """One option per field of `cls` (see module docstring)."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    # The stage's own options first (model, hookpoint, out, …), then the shared model/corpus ones.
    own = set(inspect.get_annotations(cls))
    for f in sorted(dataclasses.fields(cls), key=lambda f: f.name not in own):
        if f.name in skip:
            continue
        if "options_from" in f.metadata:
            _add_gathered_options(parser, f, skip)
            continue
        tp, optional = _unwrap_optional(hints[f.name])
        kwargs = _option_kwargs(f, tp, optional, docs.get(f.name, ""))
        meta = f.metadata
        if meta.get("positional"):
            kwargs.pop("dest")
            parser.add_argument(f.name, metavar=meta.get("metavar", f.name.upper()), **kwargs)
            continue
        flags = meta.get("flags", ("--" + f.name.replace("_", "-"),))
        if "metavar" in meta:
            kwargs["metavar"] = meta["metavar"]
        parser.add_argument(*flags, default=argparse.SUPPRESS, **kwargs)


def gathered_classes(f: dataclasses.Field[Any]) -> dict[str, type]:
    """The dataclasses whose fields an `options_from` field gathers (owner name → dataclass)."""
    source: Callable[[], Mapping[str, type]] = f.metadata["options_from"]
    return dict(source())


def _add_gathered_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, f: dataclasses.Field[Any], skip: Sequence[str]
) -> None:
    """The fields of every class an `options_from` field names, as options of their own (a group
    per owner, e.g. per architecture), each named once."""
    seen: set[str] = set(skip)
    for owner, klass in gathered_classes(f).items():
        names = [g.name for g in dataclasses.fields(klass) if g.name not in seen]
        if not names:
            continue
        group = parser.add_argument_group(f"{owner} options")
        add_dataclass_arguments(
            group, klass, skip=[g.name for g in dataclasses.fields(klass) if g.name in seen]
        )  # type: ignore[arg-type]
        seen.update(names)


def _gathered_fields(cls: type) -> dict[str, str]:
    """Option name → the `options_from` field of `cls` that gathers it."""
    out: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        if "options_from" in f.metadata:
            for klass in gathered_classes(f).values():
                out.update({g.name: f.name for g in dataclasses.fields(klass)})
    return out


def build_config(cls: type, namespace: argparse.Namespace, defaults: Mapping[str, Any] | None = None) -> Any:
    """The config from parsed arguments over `defaults` (a `--config` file's values); options set
    in neither keep the dataclass default."""
    names = {f.name for f in dataclasses.fields(cls)}
    gathered = _gathered_fields(cls)
    values: dict[str, Any] = dict(defaults or {})
    for k, v in vars(namespace).items():
        if k not in names and k not in gathered:
            continue
        if isinstance(v, list):
            # an option's values come as one list per comma-separated argument
            v = tuple(p for item in v for p in (item if isinstance(item, list) else [item]))
        values[k] = v
    for name, owner in gathered.items():
        if name in values:
            values[owner] = {**values.get(owner, {}), name: values.pop(name)}
    return cls(**values)


# ----- --config FILE -----------------------------------------------------------------------
def read_config_file(path: Path) -> dict[str, Any]:
    """The options in a TOML, YAML or JSON file (by its suffix), as a flat mapping."""
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                import tomli as tomllib

            data: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"--config {path}: use a .toml, .yaml/.yml or .json file")
    except ConfigError:
        raise
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"--config {path} cannot be parsed: {first}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must hold a table/mapping of options")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _coerce(value: Any, tp: Any) -> Any:
    """A value from a config file as the field's type (paths, tuples; numbers stay as given)."""
    tp, _ = _unwrap_optional(tp)
    if value is None:
        return None
    if tp is Path:
        return Path(str(value))
    if typing.get_origin(tp) is tuple:
        (item,) = typing.get_args(tp)[:1]
        items = value if isinstance(value, list) else [value]
        return tuple(Path(str(v)) if item is Path else v for v in items)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def config_file_values(cls: type, path: Path) -> dict[str, Any]:
    """A `--config` file's values for `cls`, typed; unknown keys are refused with the valid ones."""
    raw = read_config_file(path)
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    gathered = _gathered_fields(cls)
    unknown = sorted(set(raw) - fields - set(gathered))
    if unknown:
        valid = ", ".join(sorted(fields | set(gathered)))
        raise ConfigError(f"--config {path}: unknown option(s) {', '.join(unknown)}; valid: {valid}")
    return {k: (_coerce(v, hints[k]) if k in hints else v) for k, v in raw.items()}


# ----- the parser ----------------------------------------------------------------------------
class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`saescope train: error: …`) and exit status 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def version() -> str:
    from . import __version__

    return __version__


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the options of `commands` (default: every command) built; the others list
    only their name and help, which keeps start-up quick."""
    parser = OneLineParser(
        prog="saescope",
        description="Find interpretable features in language models with sparse autoencoders.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"saescope {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    for name, command in COMMANDS.items():
        description = (inspect.getdoc(command.config) or "").split("\n")[0]
        p = sub.add_parser(name, help=command.help, description=description)
        if commands is not None and name not in commands:
            continue
        add_dataclass_arguments(p, command.config)
        p.add_argument(
            "--config",
            type=Path,
            metavar="FILE",
            help="read options from a TOML, YAML or JSON "
            "file (the options' own names); options given here override it",
        )
        p.add_argument(
            "--json",
            action="store_true",
            help="print the result as one JSON document on stdout (logs and progress go to stderr)",
        )
        p.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
        )
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named in `argv` (the first argument that is one), if any."""
    return next((a for a in argv if a in COMMANDS), None)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in (
        "transformers",
        "accelerate",
        "urllib3",
        "filelock",
        "huggingface_hub",
        "datasets",
        "httpx",
    ):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def stage_function(command: Command) -> Callable[[Any], Any]:
    """The stage function a command runs (imported now)."""
    module, _, name = command.run.partition(":")
    function: Callable[[Any], Any] = getattr(importlib.import_module(module), name)
    return function


def run_stage(stage: Callable[[Any], Any], cfg: Any, as_json: bool) -> Any:
    """Run a stage; with `--json`, whatever it (or a library under it) prints goes to stderr, so
    stdout carries the one JSON document and nothing else."""
    if not as_json:
        return stage(cfg)
    with contextlib.redirect_stdout(sys.stderr):
        return stage(cfg)


def report(result: Any, as_json: bool) -> None:
    """Print a stage's result: its JSON document, or its readable rendering."""
    from .distributed import is_main_process
    from .files import json_safe

    if not is_main_process():
        return  # under torchrun, rank 0 reports for all
    if as_json:
        print(json.dumps(json_safe(result.to_json()), indent=1, ensure_ascii=False))
        return
    text = result.render()
    if text:
        print(text)


def _user_error(prog: str, e: BaseException) -> int | None:
    """Exit status for an error the user can fix (one line on stderr), or None to re-raise it."""
    if isinstance(e, SaescopeError):
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        print(
            f"{prog}: error: disk full ({e.filename or 'while writing'}); free space and rerun",
            file=sys.stderr,
        )
        return 2
    if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        print(f"{prog}: error: {e.strerror}: {e.filename}", file=sys.stderr)
        return 2
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command_name = _command_in(argv)
    parser = build_parser([command_name] if command_name else [])
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    command = COMMANDS[args.command]
    prog = f"saescope {args.command}"
    try:
        defaults = config_file_values(command.config, args.config) if args.config else None
        cfg = build_config(command.config, args, defaults)
        report(run_stage(stage_function(command), cfg, args.json), args.json)
        return 0
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (SaescopeError, OSError) as e:
        status = _user_error(prog, e)
        if status is None:
            raise
        return status
    finally:
        if "saescope.distributed" in sys.modules:
            sys.modules["saescope.distributed"].shutdown()
