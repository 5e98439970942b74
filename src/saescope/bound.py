"""ONE way to bind a saved SAE to its world: its model, its hookpoint in that model, its held-out text.

Every stage that runs an SAE inside its model (eval, index from text, steer, effects, contrast,
serve) loads through `bind_sae`, as every nanochat script loads through one function:

    bound = bind_sae("runs/demo/sae")               # the model the SAE records
    bound = bind_sae("hf:EleutherAI/sae-llama-3-8b-32x/layers.23")   # a published SAE, by name
    bound = bind_sae(path, model=loaded)             # share one loaded model between SAEs
    corpus = heldout_corpus(bound.sae)               # its own corpus, after what training read

The SAE is a folder in any format saescope reads or a published SAE's name (`saescope.sae.source`:
a name binds with its run folder, and `BoundSAE.source` pins its commit). The SAE's config names
its model and hookpoint; a different `model` is refused unless `force`, and an SAE whose width is
not its site's in the model is refused. `heldout_corpus` reads the typed training record
(`saescope.sae.record`).

A dictionary reads at one hookpoint and its decoder writes at another when it is a transcoder
(`mlp_in:L` → `mlp_out:L`): `BoundSAE.writes` is where decoder directions go, and every stage
that changes the model through a dictionary (steering, ablations, splicing, effects) does it with
`BoundSAE.rewrite(fn)`: in each forward pass the activation at `writes` becomes
`fn(read, written)`, `read` being what the dictionary read in that same pass (for an SAE both are
the one activation).
This module knows nothing about what the stages do with the bound SAE.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .config import CorpusSettings, ModelSettings
from .errors import SaescopeError
from .hookpoints import Hookpoint, resolve_hookpoints
from .hooks import collect_activations, patch_activations
from .models import LoadedModel, load_model
from .sae.base import SparseAutoencoder
from .sae.source import open_sae
from .tokens import bos_offset, decode_each, encode

log = logging.getLogger(__name__)


class BoundSAE(NamedTuple):
    """A saved SAE on its model's device, with the model and the hookpoint it reads."""

    sae: SparseAutoencoder
    """The SAE, in eval mode, on `loaded_model.device`."""
    loaded_model: LoadedModel
    """Its language model and tokenizer."""
    hookpoint: Hookpoint
    """Where in the model the SAE reads (and where interventions write)."""
    path: Path
    """The SAE's folder, where what the stages write about it goes (a published SAE's run folder's
    `sae/`)."""
    source: str = ""
    """What the SAE is, pinned: a published SAE's name at its commit (`hf:OWNER/REPO/PATH@<commit>`),
    else its folder; records name it."""
    output: Hookpoint | None = None
    """Where its decoder writes when that is not where it reads (a transcoder: its module's
    output, e.g. `mlp_out:3`); None for an SAE."""

    @property
    def writes(self) -> Hookpoint:
        """Where its decoder directions live in the model: a transcoder's output hookpoint, else
        the hookpoint it reads."""
        return self.output or self.hookpoint

    def rewrite(self, fn: Callable[[Tensor, Tensor], Tensor]) -> AbstractContextManager[None]:
        """Within the block, every forward pass's activation at `writes` is `fn(read, written)`
        (see `rewriting`)."""
        return rewriting(self.loaded_model.model, self.hookpoint, self.writes, fn)


class TextCodes(NamedTuple):
    """An SAE's latents on every token of one text."""

    tokens: list[str]
    """Each token decoded on its own (BOS included when the text starts with one)."""
    token_ids: list[int]
    """The token ids."""
    latent_acts: Tensor
    """[T, K] activations of the active latents of each token, largest first (0 in padding slots)."""
    latent_indices: Tensor
    """[T, K] their latent ids."""
    first: int = 0
    """Position of the text's first own token: 1 after a BOS (whose activations are far from every
    other token's, so per-token reports leave it out), else 0."""

    @property
    def text_positions(self) -> range:
        """The positions of the text's own tokens (BOS left out)."""
        return range(self.first, len(self.token_ids))

    def top(self, position: int, n: int = 5) -> list[tuple[int, float]]:
        """The `n` most active (latent, activation) pairs at one position."""
        pairs = zip(self.latent_indices[position].tolist(), self.latent_acts[position].tolist())
        return [(int(i), float(a)) for i, a in pairs if a > 0][:n]


class HeldOut(NamedTuple):
    """Text an SAE did not see in training, as model inputs."""

    corpus: CorpusSettings
    """The corpus and how it is cut into inputs (the SAE's own settings unless overridden)."""
    start: int
    """The first model input (`doc_id`) to read."""


def same_model(a: str, b: str) -> bool:
    """Equal names, or two names of one local folder (relative and absolute, say)."""
    if a == b:
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def model_for(sae: SparseAutoencoder, path: Path, model: str | None, force: bool) -> str:
    """The model to run `sae` in: `model` if given (refused when it is not the SAE's, unless
    `force`), else the one the SAE records."""
    recorded = sae.cfg.model
    if model and recorded and not same_model(model, recorded) and not force:
        raise SaescopeError(
            f"{path} was trained on {recorded!r}, not {model!r}; pass --force to use it anyway"
        )
    chosen = model or recorded
    if not chosen:
        raise SaescopeError(f"{path} does not record its model; pass --model")
    return chosen


def resolve_sae_hookpoint(sae: SparseAutoencoder, loaded: LoadedModel, path: Path) -> Hookpoint:
    """The SAE's hookpoint in `loaded`'s model (its short form when it has one)."""
    spec = sae.cfg.hookpoint_alias or sae.cfg.hookpoint
    if not spec:
        raise SaescopeError(f"{path} does not record its hookpoint")
    try:
        (hookpoint,) = resolve_hookpoints(loaded.model, [spec])
    except SaescopeError as e:
        raise SaescopeError(f"{path}: its hookpoint {spec!r} is not in {loaded.name}: {e}") from None
    except ValueError:
        raise SaescopeError(
            f"{path}: its hookpoint {spec!r} names several modules of {loaded.name}"
        ) from None
    return hookpoint


_SHORT_FORMS = ("resid_pre", "resid_post", "mlp_in", "mlp_out", "attn_out")


def site_width(loaded: LoadedModel, hookpoint: Hookpoint) -> int | None:
    """The width of the activations at `hookpoint` when the model's config tells it (the residual
    stream and the MLP's input and output and attention's output are `hidden_size` wide), else None."""
    if hookpoint.alias.split(":", 1)[0] not in _SHORT_FORMS:
        return None
    config = getattr(loaded.model, "config", None)
    text_config = (
        config.get_text_config() if config is not None and hasattr(config, "get_text_config") else config
    )
    width = getattr(text_config, "hidden_size", None)
    return width if isinstance(width, int) else None


def check_width(
    sae: SparseAutoencoder,
    loaded: LoadedModel,
    hookpoint: Hookpoint,
    label: str,
    output: Hookpoint | None = None,
) -> None:
    """Refuse an SAE whose input width is not its site's in the model (nor, for a transcoder, its
    output width that of its `output` hookpoint)."""
    sites = [("reads", hookpoint, sae.d_in)]
    if output is not None:
        sites.append(("writes", output, sae.d_out))
    for verb, site, wide in sites:
        width = site_width(loaded, site)
        if width is not None and width != wide:
            raise SaescopeError(
                f"{label} {verb} width {wide}, but {site.alias} of {loaded.name} is {width} wide: it is "
                f"an SAE of another model or site (it records model {sae.cfg.model!r})"
            )


def resolve_output_hookpoint(sae: SparseAutoencoder, loaded: LoadedModel, path: Path) -> Hookpoint | None:
    """Where a transcoder's decoder writes in `loaded`'s model (None for an SAE)."""
    spec = sae.cfg.output_hookpoint_alias or sae.cfg.output_hookpoint
    if not spec:
        return None
    try:
        (hookpoint,) = resolve_hookpoints(loaded.model, [spec])
    except (SaescopeError, ValueError) as e:
        raise SaescopeError(
            f"{path}: its output hookpoint {spec!r} is not one module of {loaded.name}: {e}"
        ) from None
    return hookpoint


@contextmanager
def rewriting(
    model: Any, reads: Hookpoint, writes: Hookpoint, fn: Callable[[Tensor, Tensor], Tensor]
) -> Iterator[None]:
    """Within the block, every forward pass replaces the activation at `writes` by
    `fn(read, written)`: `read` is the activation at `reads` in that same pass, as it arrived (the
    same tensor as `written` when `reads == writes`). `reads` must fire before `writes`."""
    if reads == writes:
        with patch_activations(model, writes, lambda act: fn(act, act)):
            yield
        return
    seen: list[Tensor] = []

    def record(act: Tensor) -> Tensor:
        seen[:] = [act]
        return act

    def rewrite(act: Tensor) -> Tensor:
        if not seen:
            raise SaescopeError(f"{writes.alias} fired before {reads.alias}: it cannot be rewritten from it")
        return fn(seen[0], act)

    with patch_activations(model, reads, record), patch_activations(model, writes, rewrite):
        yield


def bind_sae(
    path: str | Path,
    model: str | LoadedModel | None = None,
    force: bool = False,
    settings: ModelSettings | None = None,
    models: dict[str, LoadedModel] | None = None,
) -> BoundSAE:
    """Load the SAE at `path` (a folder, or a published SAE's name) with its model (see the module
    docstring).

    `model`: a model name (as `--model` takes it), an already loaded model to share, or None for
    the one the SAE records. `settings` gives device, dtype and revision for a model loaded here;
    `models` (name → loaded model) shares loads between calls: a model loaded here is added to it.
    """
    opened = open_sae(path)
    sae, label = opened.sae, Path(str(path))
    name = model.name if isinstance(model, LoadedModel) else model
    chosen = model_for(sae, label, name, force)
    models = {} if models is None else models
    if isinstance(model, LoadedModel):
        loaded = model
    elif chosen in models:
        loaded = models[chosen]
    else:
        base = settings or ModelSettings()
        loaded = models[chosen] = load_model(dataclasses.replace(base, model=chosen))
    hookpoint = resolve_sae_hookpoint(sae, loaded, label)
    output = resolve_output_hookpoint(sae, loaded, label)
    check_width(sae, loaded, hookpoint, str(label), output)
    sae.to(loaded.device)
    return BoundSAE(sae.eval(), loaded, hookpoint, opened.folder, opened.source, output)


@torch.inference_mode()
def encode_text(bound: BoundSAE, text: str, prepend_bos: bool = True) -> TextCodes:
    """The SAE's latents on every token of `text` (the model runs up to the SAE's hookpoint only)."""
    tokenizer = bound.loaded_model.tokenizer
    if not text.strip():
        raise SaescopeError("the text is empty: nothing to encode")
    ids = encode(tokenizer, text, prepend_bos=prepend_bos)
    device = bound.loaded_model.device
    with collect_activations(bound.loaded_model.model, [bound.hookpoint]) as collector:
        input_ids = torch.tensor([ids], device=device)
        act = collector.run(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
    codes = bound.sae.encode(act[bound.hookpoint.name][0].float())
    order = codes.latent_acts.argsort(dim=-1, descending=True)
    acts = codes.latent_acts.gather(-1, order).cpu()
    indices = codes.latent_indices.gather(-1, order).cpu()
    return TextCodes(decode_each(tokenizer, ids), ids, acts, indices, bos_offset(tokenizer, ids))


def heldout_corpus(
    sae: SparseAutoencoder,
    dataset: str | None = None,
    split: str = "train",
    text_field: str = "text",
    context_len: int | None = None,
) -> HeldOut:
    """Text for evaluating or indexing `sae`: by default its own training corpus from the first
    model input training did not read, cut into inputs as in training; with `dataset`, that
    corpus from its start (cut the same way)."""
    record = sae.cfg.training
    trained_on = record.corpus_settings()
    base = trained_on or CorpusSettings()
    cut = CorpusSettings(
        unit=base.unit,
        context_len=context_len or base.context_len,
        prepend_bos=base.prepend_bos,
        include_bos=base.include_bos,
    )
    if dataset is not None:
        return HeldOut(dataclasses.replace(cut, dataset=dataset, split=split, text_field=text_field), 0)
    if trained_on is None:
        log.warning("%s records no training corpus; using the built-in corpus", sae.cfg.model or "the SAE")
        return HeldOut(cut, 0)
    corpus = dataclasses.replace(
        cut,
        dataset=trained_on.dataset,
        split=trained_on.split,
        text_field=trained_on.text_field,
        seed=trained_on.seed,
    )
    return HeldOut(corpus, record.next_doc)


__all__ = [
    "BoundSAE",
    "HeldOut",
    "TextCodes",
    "bind_sae",
    "check_width",
    "encode_text",
    "heldout_corpus",
    "model_for",
    "resolve_output_hookpoint",
    "resolve_sae_hookpoint",
    "rewriting",
    "same_model",
    "site_width",
]
