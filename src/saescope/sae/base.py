"""The interface every SAE architecture implements, and the outputs it returns.

An SAE maps an activation `x [N, d_in]` to sparse latents and back:

    pre_acts   = (x - b_dec) @ W_enc + b_enc          [N, d_sae]
    latents    = sparsify(pre_acts)                    architecture-specific (TopK, ReLU, JumpReLU…)
    recon      = latents @ W_dec + b_dec               [N, d_in]

Latents are returned compactly as `(latent_acts, latent_indices)`, both `[N, K]`: the values and ids
of the active latents of each row (TopK: K = k; other architectures: K = the most active latents
of any row in the batch, the other slots padded with value 0). Every stage downstream (decode,
index, steering) works with that one representation.

Hyperparameters: each architecture declares `Params`, a frozen dataclass of its own settings (L1
coefficient, JumpReLU bandwidth…) taken from `saescope.config.architectures` (torch-free, so the
command line and `TrainConfig` know them without importing an SAE), built from
`SAEConfig.hyperparams` and saved with it in `cfg.json`; its sparsity penalty reads them from there,
so no training loop needs to know which architecture it trains.

Parameter layout: `W_enc` is `[d_in, d_sae]` (the file format), but its storage is latent-major
(`W_enc.T` is contiguous), so each latent's encoder vector is one contiguous row — what the sparse
gradient kernels write (see `saescope.kernels`). `W_dec` is `[d_sae, d_in]`, one row per latent.

This module knows nothing about training loops, files or models.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from ..config.architectures import Hyperparams
from ..errors import require
from .record import TrainingRecord


class EncoderOutput(NamedTuple):
    """Sparse codes of a batch."""

    latent_acts: Tensor
    """[N, K] activation values of the active latents (0 in padding slots)."""
    latent_indices: Tensor
    """[N, K] their latent ids (int64)."""
    pre_acts: Tensor
    """[N, d_sae] pre-activations, before the sparsifying nonlinearity."""


class ForwardOutput(NamedTuple):
    """Reconstruction and codes of a batch: `recon == decode(*encode(x)[:2])`."""

    recon: Tensor
    """[N, d_in] reconstruction of the input."""
    latent_acts: Tensor
    """[N, K] activation values of the active latents."""
    latent_indices: Tensor
    """[N, K] their latent ids."""
    pre_acts: Tensor
    """[N, d_sae] pre-activations."""


class ArchitectureLoss(NamedTuple):
    """An architecture's own terms of a training step's loss (scalars, in normalised units)."""

    sparsity_loss: Tensor
    """Its sparsity penalty: L1 (ReLU, gated SAE), L0 (JumpReLU); 0 for TopK-style SAEs."""
    extra_loss: Tensor
    """Its other terms: the reconstruction errors of a Matryoshka SAE's nested prefixes, a gated
    SAE's auxiliary reconstruction; 0 for the other architectures."""


class LossTerms(NamedTuple):
    """The terms of one training step's loss (all scalars, in normalised units)."""

    loss: Tensor
    """What is minimised: recon_loss + sparsity_loss + aux_loss + extra_loss."""
    recon_loss: Tensor
    """Mean over rows of the summed squared error."""
    sparsity_loss: Tensor
    """L1 (ReLU, gated SAE) or L0 (JumpReLU) penalty; 0 for TopK-style SAEs."""
    aux_loss: Tensor
    """Weighted aux-k loss reviving dead latents (0 when none are dead or it is disabled)."""
    extra_loss: Tensor
    """The architecture's other terms (`ArchitectureLoss.extra_loss`; 0 for most)."""
    fvu: Tensor
    """Fraction of variance unexplained of this batch (detached)."""
    l0: Tensor
    """Mean active latents per row (detached)."""


@dataclass(frozen=True)
class SAEConfig:
    """What an SAE is and where it belongs; saved as `cfg.json`."""

    architecture: str
    d_in: int
    d_sae: int
    k: int | None = None
    """Active latents per token (TopK, BatchTopK)."""
    model: str = ""
    """The language model the SAE reads (as given to `--model`)."""
    revision: str | None = None
    hookpoint: str = ""
    """Where in the model it reads (as resolved, e.g. `model.layers.15`)."""
    hookpoint_alias: str = ""
    """The hookpoint as the user wrote it (e.g. `resid_post:15`)."""
    d_out: int | None = None
    """Width of what it reconstructs when that is not its input (a transcoder: the MLP's output);
    None for an SAE, which reconstructs its input (d_in)."""
    output_hookpoint: str = ""
    """Where what it reconstructs is read when that is not its input (a transcoder: the MLP's
    output, e.g. `model.layers.15.mlp`); empty for an SAE."""
    output_hookpoint_alias: str = ""
    """The output hookpoint's short form (e.g. `mlp_out:15`)."""
    dtype: str = "float32"
    normalization: dict[str, Any] = field(default_factory=dict)
    """How inputs were normalised in training and that it was folded into the weights."""
    hyperparams: dict[str, Any] = field(default_factory=dict)
    """The architecture's own hyperparameters (its `Params`: L1 coefficient, JumpReLU bandwidth,
    BatchTopK threshold momentum…). Missing ones take their defaults (a `cfg.json` written before
    they were recorded has none); an SAE's own config holds all of them once it is built."""
    training: TrainingRecord = field(default_factory=TrainingRecord)
    """Provenance: the corpus and store it was trained on, where held-out text starts, tokens seen,
    settings (a dict given here is read as a `TrainingRecord`)."""

    def __post_init__(self) -> None:
        if not isinstance(self.training, TrainingRecord):
            object.__setattr__(self, "training", TrainingRecord.from_dict(self.training))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["training"] = self.training.to_dict()
        return out

    def with_updates(self, **changes: Any) -> SAEConfig:
        return replace(self, **changes)


class SparseAutoencoder(nn.Module, ABC):
    """Base class: parameters, encode/decode/forward, and the reconstruction loss."""

    architecture: ClassVar[str]
    """Registry name, e.g. `topk`."""

    Params: ClassVar[type[Hyperparams]] = Hyperparams
    """The dataclass of this architecture's own hyperparameters (`self.params` is one): its
    `saescope.config.architectures` entry's `params` (`register` checks they agree)."""

    takes_k: ClassVar[bool] = False
    """Whether `SAEConfig.k` (active latents per token) applies: TopK and BatchTopK (as its
    `saescope.config.architectures` entry says)."""

    params: Hyperparams
    """This SAE's hyperparameters, from `cfg.hyperparams` (which then holds all of them)."""

    kernel: str = "reference"
    """Gradient path of encode/decode: `reference` (dense autograd, the oracle), `torch` (sparse
    autograd; the CPU fast path) or `triton` (fused GPU kernels). Not saved; set by the trainer."""

    def __init__(
        self, cfg: SAEConfig, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ):
        super().__init__()
        self.check_config(cfg)
        self.params = self.Params.from_dict(cfg.hyperparams, cfg.architecture)
        self.cfg = cfg.with_updates(hyperparams=self.params.to_dict())
        d_in, d_sae = cfg.d_in, cfg.d_sae
        factory = {"device": device, "dtype": dtype or torch.float32}
        # Latent-major storage for W_enc (see module docstring).
        self.W_enc = nn.Parameter(torch.zeros(d_sae, d_in, **factory).t())  # type: ignore[arg-type]
        self.b_enc = nn.Parameter(torch.zeros(d_sae, **factory))  # type: ignore[arg-type]
        self.W_dec = nn.Parameter(torch.zeros(d_sae, d_in, **factory))  # type: ignore[arg-type]
        self.b_dec = nn.Parameter(torch.zeros(d_in, **factory))  # type: ignore[arg-type]

    # ----- the architecture-specific part -------------------------------------------------
    @classmethod
    def check_config(cls, cfg: SAEConfig) -> None:
        """Raise `ConfigError` for a config this architecture cannot have (called first by `__init__`).

        Subclasses extend it (calling `super()`), e.g. TopK requires 1 <= k <= d_sae.
        """
        require(
            cfg.architecture == cls.architecture,
            f"config says architecture {cfg.architecture!r} but this is a {cls.architecture!r} SAE",
        )
        require(cfg.d_in > 0, f"d_in must be positive, got {cfg.d_in}")
        require(cfg.d_sae > 0, f"d_sae (latents) must be positive, got {cfg.d_sae}")
        if cls.takes_k:
            require(cfg.k is not None, f"a {cfg.architecture} SAE needs k (active latents per token)")
            assert cfg.k is not None
            require(1 <= cfg.k <= cfg.d_sae, f"k must be in [1, latents={cfg.d_sae}], got {cfg.k}")

    @property
    def k(self) -> int:
        """Active latents per token (architectures that `takes_k` only)."""
        assert self.takes_k and self.cfg.k is not None, f"a {self.architecture} SAE has no k"
        return self.cfg.k

    @abstractmethod
    def select(self, pre_acts: Tensor) -> Tensor:
        """Which latents fire: latent ids [N, K] (int64), chosen without gradient tracking.

        Slots beyond a row's active latents may name any latent: `activate` gives them value 0.
        """

    @abstractmethod
    def activate(self, selected_pre_acts: Tensor, latent_indices: Tensor) -> Tensor:
        """Elementwise nonlinearity on the selected pre-activations [N, K] -> latent_acts [N, K]."""

    def sparsity_loss(self, out: ForwardOutput) -> Tensor:
        """Architecture penalty added to the reconstruction loss, from `self.params` (0 for
        TopK-style SAEs), where the codes alone give it; see `architecture_loss`."""
        return out.recon.new_zeros(())

    def architecture_loss(self, x: Tensor, selected_pre_acts: Tensor, out: ForwardOutput) -> ArchitectureLoss:
        """The architecture's own terms of the loss for a batch `x` [N, d_in] and its forward pass
        `out`; `selected_pre_acts` [N, K] are the pre-activations of `out.latent_indices` with their
        gradient (`out.pre_acts` has none on the sparse kernels). Every training objective calls it
        exactly once per step. By default: `sparsity_loss(out)` and no other term; architectures
        whose terms need the input (Matryoshka, gated) override it."""
        return ArchitectureLoss(self.sparsity_loss(out), out.recon.new_zeros(()))

    def initialize_extra(self) -> None:
        """Initialise architecture-specific state (thresholds); called by `sae.init.initialize`."""

    def file_tensors(self) -> dict[str, Tensor]:
        """The tensors of the native file, detached, in its layout (`W_enc [d_in, d_sae]`, `b_enc`,
        `W_dec [d_sae, d_in]`, `b_dec`); architectures with a threshold add `threshold [d_sae]`."""
        return {
            "W_enc": self.W_enc.detach(),
            "b_enc": self.b_enc.detach(),
            "W_dec": self.W_dec.detach(),
            "b_dec": self.b_dec.detach(),
        }

    @torch.no_grad()
    def load_file_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        """Copy tensors named and shaped as in `file_tensors()` into the SAE.

        Copies in place, so `W_enc` keeps its latent-major storage. Callers check names and shapes.
        """
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            getattr(self, name).copy_(tensors[name])

    # ----- shared -------------------------------------------------------------------------
    @property
    def d_in(self) -> int:
        return self.cfg.d_in

    @property
    def d_sae(self) -> int:
        return self.cfg.d_sae

    @property
    def d_out(self) -> int:
        """Width of what it reconstructs, where its decoder writes: d_in for an SAE."""
        return self.cfg.d_out or self.cfg.d_in

    def input_offset(self) -> Tensor:
        """What is subtracted from x before the encoder: b_dec, the reconstruction's own bias (its
        input and output share a space); a transcoder, whose spaces differ, subtracts zeros."""
        return self.b_dec

    def direct_path(self, x: Tensor) -> Tensor | None:
        """What the reconstruction adds to the decoded latents, from the input itself: None for an
        SAE; a transcoder's linear skip x @ W_skip.T."""
        return None

    def pre_activation(self, x: Tensor) -> Tensor:
        """(x - input_offset) @ W_enc + b_enc (the offset is b_dec for an SAE)."""
        return (x - self.input_offset()) @ self.W_enc + self.b_enc

    def encode(self, x: Tensor) -> EncoderOutput:
        """Sparse codes of x [..., d_in]; the gradient path is chosen by `self.kernel`."""
        from ..kernels import sparse_encode

        lead = x.shape[:-1]
        selected, latent_indices, pre_acts = sparse_encode(
            x.reshape(-1, self.d_in),
            self.W_enc,
            self.b_enc,
            self.input_offset(),
            self.select,
            impl=self.kernel,
        )
        latent_acts = self.activate(selected, latent_indices)
        k = latent_acts.shape[-1]
        return EncoderOutput(
            latent_acts.reshape(*lead, k),
            latent_indices.reshape(*lead, k),
            pre_acts.reshape(*lead, self.d_sae),
        )

    def decode(self, latent_acts: Tensor, latent_indices: Tensor) -> Tensor:
        """sum_j latent_acts[..., j] * W_dec[latent_indices[..., j]] + b_dec."""
        from ..kernels import sparse_decode

        return sparse_decode(latent_acts, latent_indices, self.W_dec, impl=self.kernel) + self.b_dec

    def forward(self, x: Tensor) -> ForwardOutput:
        latent_acts, latent_indices, pre_acts = self.encode(x)
        recon = self.decode(latent_acts, latent_indices)
        direct = self.direct_path(x)
        if direct is not None:
            recon = recon + direct
        return ForwardOutput(recon, latent_acts, latent_indices, pre_acts)

    def encode_dense(self, x: Tensor) -> Tensor:
        """Latent activations as a dense [N, d_sae] tensor (zeros where inactive)."""
        acts, idx, pre = self.encode(x)
        return pre.new_zeros(pre.shape).scatter_(-1, idx, acts)

    @torch.no_grad()
    def set_decoder_norm_to_unit_norm(self) -> None:
        """Rescale each decoder row to unit norm (OpenAI, Towards Monosemanticity)."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def remove_gradient_parallel_to_decoder_directions(self) -> None:
        """Project out of each decoder row's gradient its component along the row (Gao et al. 2024)."""
        W, grad = self.W_dec, self.W_dec.grad
        if grad is None:
            return
        parallel = (grad * W).sum(dim=1, keepdim=True) / (W * W).sum(dim=1, keepdim=True).clamp_min(1e-12)
        grad.sub_(parallel * W)

    def extra_repr(self) -> str:
        return f"architecture={self.architecture}, d_in={self.d_in}, d_sae={self.d_sae}, k={self.cfg.k}"


def indices_of_active(scores: Tensor) -> Tensor:
    """Ids [N, K] of the positive entries of each row of `scores` [N, d_sae].

    K is the most positive entries in any row (at least 1); in rows with fewer, the extra slots
    hold the row's next-largest entries, which `activate` turns into zeros.
    """
    count = int((scores > 0).sum(dim=-1).max().item()) if scores.numel() else 0
    return scores.topk(max(count, 1), dim=-1, sorted=False).indices


def fvu(x: Tensor, recon: Tensor) -> Tensor:
    """Fraction of variance unexplained: sum ||x - recon||^2 / sum ||x - mean(x)||^2 (over the batch).

    Against the mean, not zero (SAELens #665).
    """
    x = x.float()
    err = (x - recon.float()).pow(2).sum()
    total = (x - x.mean(dim=0, keepdim=True)).pow(2).sum()
    return err / total.clamp_min(1e-12)
