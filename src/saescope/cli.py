"""The `saescope` command: parse arguments into a stage's config dataclass and call the stage.

No pipeline logic lives here. Options are derived from the config dataclasses: a field's type gives
the option's type (Literal → choices, bool → --x/--no-x, tuple → several values, given space- or
comma-separated or by repeating the option), the string under the field gives its help, and
`metadata` may add aliases (`flags`), dynamic choices (`choices`, a callable — e.g. the SAE
architecture registry) or make it positional. User errors
(`SaescopeError`) become one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import errno
import inspect
import itertools
import json
import logging
import os
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from . import config as C
from .errors import SaescopeError

log = logging.getLogger("saescope")


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


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()) -> None:
    """One option per field of `cls` (see module docstring)."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    # The stage's own options first (model, hookpoint, out, …), then the shared model/corpus ones.
    own = set(inspect.get_annotations(cls))
    for f in sorted(dataclasses.fields(cls), key=lambda f: f.name not in own):
        if f.name in skip:
            continue
        tp, optional = _unwrap_optional(hints[f.name])
        meta = f.metadata
        default: Any = f.default
        if default is dataclasses.MISSING and callable(f.default_factory):
            default = f.default_factory()
        # argparse %-formats help texts: a literal % must be doubled
        kwargs: dict[str, Any] = {"dest": f.name, "help": docs.get(f.name, "").replace("%", "%%")}
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
        if meta.get("positional"):
            kwargs.pop("dest")
            parser.add_argument(f.name, metavar=meta.get("metavar", f.name.upper()), **kwargs)
            continue
        flags = meta.get("flags", ("--" + f.name.replace("_", "-"),))
        if "metavar" in meta:
            kwargs["metavar"] = meta["metavar"]
        parser.add_argument(*flags, default=argparse.SUPPRESS, **kwargs)


def build_config(cls: type, namespace: argparse.Namespace) -> Any:
    """The config from parsed arguments (unset options keep the dataclass default)."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(namespace).items() if k in names}
    for k, v in values.items():
        if isinstance(v, list):
            # an option's values come as one list per comma-separated argument
            values[k] = tuple(p for item in v for p in (item if isinstance(item, list) else [item]))
    return cls(**values)


# ----- subcommands ------------------------------------------------------------------------
def _run_capture(cfg: C.CaptureConfig, args: argparse.Namespace) -> int:
    from .capture import capture
    from .distributed import is_main_process

    result = capture(cfg)
    if not is_main_process():
        return 0  # under torchrun, rank 0 reports the whole store
    for store in result.stores:
        print(f"stored {store.rows:,} rows of {store.hookpoint} (d_model {store.d_model}) in {store.path}")
    return 0


def _run_train(cfg: C.TrainConfig, args: argparse.Namespace) -> int:
    from .train import train

    result = train(cfg)
    for run in result.saes:
        print(
            f"{run.path}: FVU {run.fvu:.4f}  L0 {run.l0:.1f}  dead {100 * run.dead_fraction:.2f}%"
            f"  ({run.tokens:,} tokens, {run.tokens_per_second:,.0f} tok/s)"
        )
    return 0


def _run_eval(cfg: C.EvalConfig, args: argparse.Namespace) -> int:
    from .evals import evaluate, format_table

    result = evaluate(cfg)
    if cfg.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        print(format_table(result))
    return 0


def _run_convert(cfg: C.ConvertConfig, args: argparse.Namespace) -> int:
    from .convert import convert

    out = convert(cfg)
    print(f"wrote {cfg.to_format} SAE to {out}")
    return 0


def _run_demo(cfg: C.DemoConfig, args: argparse.Namespace) -> int:
    from .demo import demo

    print(demo(cfg).summary())
    return 0


SUBCOMMANDS: dict[str, tuple[type, Callable[[Any, argparse.Namespace], int], str]] = {
    "capture": (C.CaptureConfig, _run_capture, "model × corpus → activation store"),
    "train": (C.TrainConfig, _run_train, "activation store (or a model, on the fly) → SAE"),
    "eval": (C.EvalConfig, _run_eval, "SAE → reconstruction, sparsity and downstream metrics"),
    "convert": (C.ConvertConfig, _run_convert, "import/export SAELens, sparsify and Gemma Scope SAEs"),
    "demo": (C.DemoConfig, _run_demo, "the whole pipeline on the embedded model"),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`saescope train: error: …`) and exit status 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="saescope",
        description="Find interpretable features in language models with sparse autoencoders.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    for name, (cls, _, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=(inspect.getdoc(cls) or "").split("\n")[0])
        add_dataclass_arguments(p, cls)
    return parser


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("transformers", "accelerate", "urllib3", "filelock", "huggingface_hub", "datasets"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    cls, run, _ = SUBCOMMANDS[args.command]
    prog = f"saescope {args.command}"
    try:
        cfg = build_config(cls, args)
        return run(cfg, args)
    except SaescopeError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            print(
                f"{prog}: error: disk full ({e.filename or 'while writing'}); free space and rerun",
                file=sys.stderr,
            )
            return 2
        if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
            print(f"{prog}: error: {e.strerror}: {e.filename}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    finally:
        from . import distributed

        distributed.shutdown()
