"""The `saescope` command: parse arguments into a stage's config dataclass and call the stage.

No pipeline logic lives here. `COMMANDS` names, for every subcommand, its config dataclass and its
stage function (imported only when the command runs, so `--help` and argument errors are quick).
Options are derived from the config dataclasses: a field's type gives the option's type (Literal →
choices, bool → --x/--no-x, tuple → several values, given space- or comma-separated or by
repeating the option), the string under the field gives its help, the class docstring the
command's description, and `metadata` may add aliases (`flags`), dynamic choices (`choices`, a
callable — e.g. the architectures of `saescope.config.architectures`), make it positional, mark it
`required` (its default is a placeholder: help says "(required)", and a command line or config file
without it is refused naming its flag), or gather the fields of other dataclasses into a mapping
(`options_from`, a callable returning {name: dataclass} — each architecture's own hyperparameters).

Handled here once for every command: `--config FILE` (TOML, YAML or JSON with the options' own
names, each value checked against its field's type; flags given on the command line override it),
`--json` (the result's `to_json()` as one JSON document on stdout; otherwise its `render()`),
`--version`, and errors: a `SaescopeError` (or a bad option, or a config-file value of the wrong
type) becomes one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import importlib
import inspect
import json
import logging
import math
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from . import config as C
from .config.base import flag_of, is_required, option_flag
from .errors import ConfigError, SaescopeError
from .fielddocs import field_docs

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
        # core runs in saescope.evals; --metrics absorption,probing in saescope.compare, which runs it
        C.EvalConfig,
        "saescope.compare.evaluate:evaluate",
        "SAE → reconstruction, sparsity, downstream metrics",
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
    "compare": Command(
        C.CompareConfig, "saescope.compare.command:compare", "SAEs of one site matched, split, compared"
    ),
    "circuit": Command(
        C.CircuitConfig, "saescope.circuit.command:circuit", "prompt → attribution graph, checked by ablation"
    ),
    "export": Command(
        C.ExportConfig,
        "saescope.neuronpedia.export:export_neuronpedia",
        "run → Neuronpedia's dataset-export layout",
    ),
    "import-explanations": Command(
        C.ImportExplanationsConfig,
        "saescope.neuronpedia.explanations:import_explanations",
        "Neuronpedia's explanations → a latent index",
    ),
}


# ----- dataclass → argparse ---------------------------------------------------------------
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


def _help(f: dataclasses.Field[Any], optional: bool, doc: str) -> str:
    """A field's help: its docstring and its default, or "(required)" for a field the user must give
    (whose default is only a placeholder). argparse %-formats help texts, so a % is doubled."""
    default: Any = f.default
    if default is dataclasses.MISSING and callable(f.default_factory):
        default = f.default_factory()
    if is_required(f):
        suffix = " (required)"
    elif default is not None and default != "" and not (isinstance(default, tuple) and not default):
        shown = ", ".join(map(str, default)) if isinstance(default, tuple) else str(default)
        suffix = f" (default: {shown})"
    elif optional and default is None:
        suffix = " (default: none)"
    else:
        suffix = ""
    return (doc + suffix).replace("%", "%%")


def _option_kwargs(
    f: dataclasses.Field[Any], tp: Any, optional: bool, doc: str, enforce_required: bool
) -> dict[str, Any]:
    """argparse keyword arguments for one field (type, choices, nargs, required, help)."""
    meta = f.metadata
    kwargs: dict[str, Any] = {"dest": f.name, "help": _help(f, optional, doc)}
    required = enforce_required and is_required(f)
    origin = typing.get_origin(tp)
    if tp is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif origin is tuple and meta.get("positional"):
        # absent (not an empty list) when not given, so a --config file's value stands
        kwargs.update(nargs="+" if required else "*", type=typing.get_args(tp)[0], default=argparse.SUPPRESS)
    elif origin is tuple:
        # "a,b c", "a b c" and "--x a,b --x c" all give three values
        kwargs.update(nargs="+", type=_comma_list(typing.get_args(tp)[0]), action="extend")
    elif origin is typing.Literal:
        kwargs["choices"] = list(typing.get_args(tp))
    else:
        kwargs["type"] = tp
    if meta.get("positional") and origin is not tuple and not required:
        # may come from a --config file instead; None (left out of the config) when not given
        kwargs.update(nargs="?", default=None)
    elif not meta.get("positional"):
        kwargs.update(default=argparse.SUPPRESS, required=required)
    if "choices" in meta:
        choices: Callable[[], list[str]] = meta["choices"]
        kwargs["choices"] = choices()
    return kwargs


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    skip: Sequence[str] = (),
    enforce_required: bool = True,
) -> None:
    """One option per field of `cls` (see module docstring). With `enforce_required`, argparse
    itself refuses a command line without the required fields; without it (when a --config file may
    give them) `build_config` checks them once the file is read."""
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
        kwargs = _option_kwargs(f, tp, optional, docs.get(f.name, ""), enforce_required)
        meta = f.metadata
        if meta.get("positional"):
            kwargs.pop("dest")
            parser.add_argument(f.name, metavar=flag_of(f), **kwargs)
            continue
        flags = meta.get("flags", (option_flag(f.name),))
        if "metavar" in meta:
            kwargs["metavar"] = meta["metavar"]
        parser.add_argument(*flags, **kwargs)


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
    in neither keep the dataclass default, and a required one set in neither is a `ConfigError`
    naming it."""
    names = {f.name for f in dataclasses.fields(cls)}
    gathered = _gathered_fields(cls)
    values: dict[str, Any] = dict(defaults or {})
    for k, v in vars(namespace).items():
        if (k not in names and k not in gathered) or v is None:
            continue  # None: a positional left to the --config file
        if isinstance(v, list):
            # an option's values come as one list per comma-separated argument
            v = tuple(p for item in v for p in (item if isinstance(item, list) else [item]))
        values[k] = v
    missing = [flag_of(f) for f in dataclasses.fields(cls) if is_required(f) and f.name not in values]
    if missing:
        raise ConfigError(f"the following arguments are required: {', '.join(missing)}")
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


class WrongType(Exception):
    """A value from a config file that the field's type cannot hold; the message says what it expects."""


SCALAR_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string", Path: "a path"}
"""What a config file's value of each scalar type is, in words."""


def _is_mapping(origin: Any) -> bool:
    return isinstance(origin, type) and issubclass(origin, Mapping)


def expected(tp: Any) -> str:
    """What a field of type `tp` takes, in words (for errors about config-file values)."""
    tp, optional = _unwrap_optional(tp)
    origin = typing.get_origin(tp)
    if origin is tuple:
        return f"{expected(typing.get_args(tp)[0])}, or a list of them"
    if origin is typing.Literal:
        words = f"one of {', '.join(map(str, typing.get_args(tp)))}"
    elif _is_mapping(origin):
        words = "a table of options"
    else:
        words = SCALAR_WORDS.get(tp, getattr(tp, "__name__", str(tp)))
    return f"{words} (or nothing)" if optional else words


def _number(value: Any, tp: type) -> Any:
    """An int or float field's value: numbers, and numbers written as text (PyYAML reads `3e-4`
    and `1e6` as strings); an int field takes a float only when it is whole."""
    if isinstance(value, str):
        try:
            value = float(value.strip().replace("_", ""))
        except ValueError:
            raise WrongType from None
        if not math.isfinite(value):
            raise WrongType
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WrongType
    if tp is float:
        return float(value)
    if isinstance(value, float) and not value.is_integer():
        raise WrongType
    return int(value)


def _scalar(value: Any, tp: Any) -> Any:
    """`value` as a field of scalar type `tp` holds it, or `WrongType`."""
    if typing.get_origin(tp) is typing.Literal:
        if not any(value == o and type(value) is type(o) for o in typing.get_args(tp)):
            raise WrongType
        return value
    if tp in (int, float):
        return _number(value, tp)
    if tp is bool and not isinstance(value, bool):
        raise WrongType
    if tp is Path or tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and tp is str:
            return str(value)  # `revision = 1234`, `latents = 5`
        if not isinstance(value, str):
            raise WrongType
        return Path(value) if tp is Path else value
    return value


def _coerce(value: Any, tp: Any) -> Any:
    """A value from a config file as the field's type (paths, tuples, whole floats as ints), or
    `WrongType` when the type cannot hold it (a string for a number, a list for a scalar…)."""
    tp, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise WrongType
    origin = typing.get_origin(tp)
    if origin is tuple:
        items = value if isinstance(value, list) else [value]
        return tuple(_scalar(v, typing.get_args(tp)[0]) for v in items)
    if _is_mapping(origin):
        if not isinstance(value, dict):
            raise WrongType
        return dict(value)
    if isinstance(value, (list, dict)):
        raise WrongType
    return _scalar(value, tp)


def _file_fields(cls: type) -> dict[str, tuple[dataclasses.Field[Any], Any]]:
    """Every name a config file may use for `cls` → (its field, its type): the fields, their flags'
    names (`arch` for `architecture`), and the options an `options_from` field gathers."""
    hints = typing.get_type_hints(cls)
    out: dict[str, tuple[dataclasses.Field[Any], Any]] = {}
    for f in dataclasses.fields(cls):
        out[f.name] = (f, hints[f.name])
        for flag in f.metadata.get("flags", ()):
            out.setdefault(flag.lstrip("-").replace("-", "_"), (f, hints[f.name]))
        if "options_from" in f.metadata:
            for klass in gathered_classes(f).values():
                own = typing.get_type_hints(klass)
                out.update({g.name: (g, own[g.name]) for g in dataclasses.fields(klass)})
    return out


def _shown(value: Any) -> str:
    """A config-file value as the file would write it (`"lots"`, `[1, "x"]`, `true`)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def config_file_values(cls: type, path: Path) -> dict[str, Any]:
    """A `--config` file's values for `cls`, typed; an unknown key is refused with the valid ones, a
    value of the wrong type naming its option's flag and what it expects."""
    raw = read_config_file(path)
    known = _file_fields(cls)
    unknown = sorted(set(raw) - set(known))
    if unknown:
        valid = ", ".join(sorted(known))
        raise ConfigError(f"--config {path}: unknown option(s) {', '.join(unknown)}; valid: {valid}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        f, tp = known[key]
        if f.name in values:
            raise ConfigError(f"--config {path}: {flag_of(f)} is given twice")
        values[f.name] = _file_value(path, f, tp, value)
        if "options_from" in f.metadata:
            # a table of the gathered options (e.g. `arch_params = {l1_coefficient = 0.1}`), each typed
            values[f.name] = {
                k: _file_value(path, *known[k], v) if k in known else v for k, v in values[f.name].items()
            }
    return values


def _file_value(path: Path, f: dataclasses.Field[Any], tp: Any, value: Any) -> Any:
    """One config-file value, typed for field `f`; a `ConfigError` naming its flag and what it
    expects when the type cannot hold it or it is not among the field's choices."""
    try:
        typed = _coerce(value, tp)
    except WrongType:
        raise ConfigError(
            f"--config {path}: {flag_of(f)} expects {expected(tp)}, got {_shown(value)}"
        ) from None
    if "choices" in f.metadata:
        choices = list(f.metadata["choices"]())
        items = typed if isinstance(typed, tuple) else (typed,)  # an option taking several: each
        wrong = [v for v in items if v not in choices]
        if wrong:
            raise ConfigError(
                f"--config {path}: {flag_of(f)} expects one of {', '.join(choices)}, got {_shown(wrong[0])}"
            )
    return typed


# ----- the parser ----------------------------------------------------------------------------
class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`saescope train: error: …`) and exit status 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class ParagraphsFormatter(argparse.HelpFormatter):
    """argparse's help layout, but a description keeps its paragraphs (argparse joins them)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = [p for p in text.split("\n\n") if p.strip()]
        return "\n\n".join(super(ParagraphsFormatter, self)._fill_text(p, width, indent) for p in paragraphs)


def version() -> str:
    from . import __version__

    return __version__


def description(cls: type) -> str:
    """A command's description: its config class's whole docstring (paragraphs kept)."""
    return inspect.getdoc(cls) or ""


def names_config_file(argv: Sequence[str]) -> bool:
    """Whether `argv` gives `--config` (or an abbreviation argparse accepts): its required options
    may then come from the file."""
    pre = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    pre.add_argument("--config")
    try:
        known, _ = pre.parse_known_args(list(argv))
    except argparse.ArgumentError:
        return True  # `--config` without its FILE: the full parser says so
    return known.config is not None


def build_parser(
    commands: Sequence[str] | None = None, enforce_required: bool = True
) -> argparse.ArgumentParser:
    """The parser, with the options of `commands` (default: every command) built; the others list
    only their name and help, which keeps start-up quick. Without `enforce_required` (a --config
    file is given) argparse does not demand the required options; `build_config` does, once the
    file is read."""
    parser = OneLineParser(
        prog="saescope",
        description="Find interpretable features in language models with sparse autoencoders.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"saescope {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    for name, command in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=command.help,
            description=description(command.config),
            formatter_class=ParagraphsFormatter,
        )
        if commands is not None and name not in commands:
            continue
        add_dataclass_arguments(p, command.config, enforce_required=enforce_required)
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
    ):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # the language-model SDKs and their HTTP clients (the SDKs' own fork is httpx2) log a line per
    # request: shown only with -v
    for chatty in ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "anthropic"):
        logging.getLogger(chatty).setLevel(logging.NOTSET if verbose else logging.WARNING)
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
        # some libraries (pyarrow) raise these with neither strerror nor filename set
        said = f"{e.strerror}: {e.filename}" if e.strerror and e.filename else str(e) or type(e).__name__
        print(f"{prog}: error: {said}", file=sys.stderr)
        return 2
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command_name = _command_in(argv)
    parser = build_parser(
        [command_name] if command_name else [], enforce_required=not names_config_file(argv)
    )
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    command = COMMANDS[args.command]
    prog = f"saescope {args.command}"
    try:
        defaults = config_file_values(command.config, args.config) if args.config else None
        cfg = build_config(command.config, args, defaults)
        given = [getattr(cfg, f, None) for f in ("index", "run")]
        paths = [v for g in given for v in (g if isinstance(g, tuple) else [g])]
        if any(str(v).startswith(("hf:", "saelens:")) for v in paths):  # a published SAE: its run's
            cfg = importlib.import_module("saescope.sae.source").runs_of_names(cfg)
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
