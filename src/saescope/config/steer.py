"""`saescope steer`, `saescope effects` and `saescope contrast` settings.

An intervention on the command line is `LATENT:MODE[:VALUE]`: `1234:add:8` adds 8·d_1234,
`1234:clamp:10x` clamps the latent to 10× its maximum activation, `1234:clamp:4.5` to 4.5,
`1234:add:3x` adds 3× its maximum,
`1234:scale:0.5` halves it, `1234:ablate` removes it. Several are given comma-separated or by
repeating `--steer`. `parse_intervention_spec` reads one; the steering package turns it into an
`Intervention`.

This module knows nothing about how the stages run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from ..errors import ConfigError, require
from .base import GenerationSettings, check_choices

MODES = ("add", "clamp", "scale", "ablate")
"""What an intervention does to its latent's activation f (see `saescope.steer.edit`)."""
Mode = Literal["add", "clamp", "scale", "ablate"]
Where = Literal["all", "prompt", "generated", "positions", "substring"]
ContrastPositions = Literal["last", "all", "substring"]


class InterventionSpec(NamedTuple):
    """One `LATENT:MODE[:VALUE]` as written on the command line."""

    latent: int
    """The latent id."""
    mode: str
    """One of `MODES`."""
    value: float
    """The value (0 for `ablate`)."""
    relative: bool
    """Whether the value was written `Nx`: a multiple of the latent's maximum activation (add and
    clamp only)."""


def parse_intervention_spec(spec: str) -> InterventionSpec:
    """Read `LATENT:MODE[:VALUE]` (see the module docstring); ConfigError naming what is wrong."""
    parts = spec.strip().split(":")
    where = f"--steer {spec!r}"
    require(2 <= len(parts) <= 3, f"{where}: expected LATENT:MODE[:VALUE], e.g. 1234:add:8 or 1234:ablate")
    latent_text, mode = parts[0].strip(), parts[1].strip().lower()
    require(latent_text.isdigit(), f"{where}: the latent id must be a non-negative integer")
    require(mode in MODES, f"{where}: unknown mode {mode!r}; choose from {', '.join(MODES)}")
    if mode == "ablate":
        require(len(parts) == 2, f"{where}: ablate takes no value")
        return InterventionSpec(int(latent_text), mode, 0.0, False)
    require(len(parts) == 3, f"{where}: {mode} needs a value, e.g. {latent_text}:{mode}:4")
    text = parts[2].strip().lower()
    relative = text.endswith("x")
    try:
        value = float(text.removesuffix("x"))
    except ValueError:
        raise ConfigError(f"{where}: {parts[2]!r} is not a number (or a multiple like 10x)") from None
    require(math.isfinite(value), f"{where}: the value must be finite")
    require(
        not relative or mode in ("add", "clamp"),
        f"{where}: only add and clamp take a multiple of the maximum (Nx)",
    )
    return InterventionSpec(int(latent_text), mode, value, relative)


def parse_multiple(text: str) -> float:
    """One --sweep multiple, `2x` or `2`: positive and finite; ConfigError otherwise."""
    try:
        value = float(text.strip().lower().removesuffix("x"))
    except ValueError:
        raise ConfigError(f"--sweep {text!r}: give multiples such as 0.5x 1x 2x") from None
    require(math.isfinite(value) and value > 0, f"--sweep {text!r}: a multiple must be positive and finite")
    return value


def _check_common(cfg: SteerConfig | EffectsConfig | ContrastConfig) -> None:
    check_choices(cfg)
    require(str(cfg.sae) not in ("", "."), "give the SAE folder (e.g. runs/demo/sae)")
    require(cfg.batch_size > 0, f"--batch-size must be positive, got {cfg.batch_size}")
    require(cfg.threads >= 0, f"--threads must be 0 (torch's default) or positive, got {cfg.threads}")
    stats_tokens = getattr(cfg, "stats_tokens", 1)
    require(stats_tokens > 0, f"--stats-tokens must be positive, got {stats_tokens}")


@dataclass(frozen=True)
class SteerConfig(GenerationSettings):
    """`saescope steer`: generate with SAE latents edited, beside the unsteered completion and controls.

    The controls are a random latent of similar frequency and a random direction of the same norm."""

    sae: Path = field(default=Path(), metadata={"positional": True, "metavar": "SAE", "required": True})
    """The SAE folder (e.g. runs/demo/sae), or a published SAE's name (`hf:OWNER/REPO/PATH`,
    `saelens:RELEASE/SAE_ID`)."""

    steer: tuple[str, ...] = field(default=(), metadata={"required": True})
    """Interventions, `LATENT:MODE[:VALUE]`: `12:add:8` adds 8 × the latent's decoder direction,
    `12:clamp:10x` sets the latent to 10× its maximum activation (`12:clamp:4` to 4; `12:add:3x` adds
    3× the maximum), `12:scale:0.5` multiplies it, `12:ablate` removes it."""

    prompt: str | None = None
    """One prompt."""

    prompts: Path | None = None
    """A file of prompts, one per line (empty lines skipped), generated as one batch."""

    where: Where = "all"
    """Where the interventions apply: every position, the prompt only, generated tokens only, the
    prompt positions in --positions, or the tokens of --substring."""

    positions: tuple[int, ...] = ()
    """Prompt token positions to intervene at (0 is the first token, BOS included; -1 the last)."""

    substring: str | None = None
    """Intervene on the tokens covering every occurrence of this text in the prompt."""

    conditional: bool = False
    """Only where the latent already fires (its activation is positive)."""

    splice: bool = False
    """Replace the activation by the SAE's edited reconstruction, dropping the SAE's error (as
    the llama3_interpretability_sae project steers; weaker). By default the error is kept:
    x + decode(edited) − decode(original)."""

    max_new_tokens: int = 40
    """Tokens to generate per prompt."""

    temperature: float = 0.0
    """Sampling temperature; 0 is greedy."""

    top_p: float = 1.0
    """Nucleus sampling: draw from the smallest set of tokens holding this much probability."""

    seed: int = 0
    """Sampling seed (every variant uses it) and the seed that picks the controls."""

    chat: bool = False
    """Wrap each prompt in the model's chat template (instruct models); default plain continuation."""

    prepend_bos: bool = True
    """Start plain prompts with the tokenizer's BOS token, as the SAE's training inputs did."""

    controls: bool = True
    """Also run the controls: a random latent of similar frequency (same mode and strength) and a
    random direction with the norm of the steering edit."""

    target: tuple[str, ...] = ()
    """Words whose log-probability measures the effects, each exactly one token (mind the leading
    space a word inside a sentence has: `" than"`). Default: the steered latents' top logit-effect
    tokens (decoder direction through the final norm and unembedding) that are whole words."""

    sweep: tuple[str, ...] = ()
    """Also run the edit at these multiples of its values (`0.5x 1x 2x 4x 8x`): for each, the
    effects, the steered completion's perplexity under the unsteered model and its repeated
    3-grams, and the strongest multiple whose perplexity stays within 2x the unsteered one's."""

    plot: Path | None = None
    """Draw the sweep as a PNG here (matplotlib); without it no plot is drawn."""

    use_cache: bool = True
    """Generate through the KV cache; --no-use-cache recomputes every token's whole sequence (slow;
    gives the same tokens, a check)."""

    stream: bool = True
    """Stream the steered completion of a single prompt to stderr as it is generated."""

    batch_size: int = 8
    """Prompts per batch."""

    index: Path | None = None
    """The SAE's latent index (maximum activations and frequencies). Default: RUN/index when it
    indexes this SAE, else statistics measured on held-out text."""

    stats_tokens: int = 4096
    """Held-out tokens to measure latent statistics on when there is no index."""

    force: bool = False
    """Use --model even if the SAE was trained on another model."""

    model: str = ""
    """Model to run. Default: the one the SAE records."""

    def __post_init__(self) -> None:
        _check_common(self)
        require(len(self.steer) > 0, "give at least one intervention with --steer LATENT:MODE[:VALUE]")
        for spec in self.steer:
            parse_intervention_spec(spec)
        require((self.prompt is None) != (self.prompts is None), "give exactly one of --prompt and --prompts")
        require(self.prompt is None or self.prompt.strip() != "", "--prompt must not be empty")
        require(not (self.positions and self.substring), "give --positions or --substring, not both")
        require(self.substring != "", "--substring must not be empty")
        if self.positions:
            require(self.where in ("all", "positions"), "--positions needs --where positions (or none)")
        if self.substring:
            require(self.where in ("all", "substring"), "--substring needs --where substring (or none)")
        require(self.where != "positions" or bool(self.positions), "--where positions needs --positions")
        require(self.where != "substring" or bool(self.substring), "--where substring needs --substring")
        require(self.max_new_tokens > 0, f"--max-new-tokens must be positive, got {self.max_new_tokens}")
        require(
            math.isfinite(self.temperature) and self.temperature >= 0,
            f"--temperature must be >= 0, got {self.temperature}",
        )
        require(0 < self.top_p <= 1, f"--top-p must be in (0, 1], got {self.top_p}")
        for word in self.target:
            require(word != "", "--target must not be empty")
        for text in self.sweep:
            parse_multiple(text)
        require(self.plot is None or bool(self.sweep), "--plot draws the sweep: give --sweep too")
        if self.sweep:
            modes = [parse_intervention_spec(spec).mode for spec in self.steer]
            require("ablate" not in modes, "--sweep multiplies the edit's values; an ablation has none")

    @property
    def sweep_multiples(self) -> tuple[float, ...]:
        """The --sweep multiples as numbers."""
        return tuple(parse_multiple(text) for text in self.sweep)

    @property
    def scope(self) -> Where:
        """Where the interventions apply, with --positions / --substring implying their scope."""
        if self.positions:
            return "positions"
        if self.substring:
            return "substring"
        return self.where


@dataclass(frozen=True)
class EffectsConfig(GenerationSettings):
    """`saescope effects`: ablation effect and attribution of every active latent of a text.

    Reports each latent's effect on later tokens, their correlation, and the latents that matter
    most for a next token."""

    sae: Path = field(default=Path(), metadata={"positional": True, "metavar": "SAE", "required": True})
    """The SAE folder (e.g. runs/demo/sae), or a published SAE's name (`hf:OWNER/REPO/PATH`,
    `saelens:RELEASE/SAE_ID`)."""

    text: str = field(default="", metadata={"required": True})
    """The text to analyse."""

    target: str | None = None
    """The next token to explain, predicted after the whole text (its first token). Default: the
    text's own last token, predicted from what precedes it."""

    top: int = 15
    """Latents to list by effect on the target."""

    prepend_bos: bool = True
    """Start the text with the tokenizer's BOS token, as the SAE's training inputs did."""

    max_tokens: int = 256
    """Refuse longer texts (the ablations cost one forward pass per active latent and position)."""

    batch_size: int = 32
    """Ablated copies of the text per forward pass."""

    index: Path | None = None
    """The SAE's latent index (explanations, when it has them). Default: RUN/index."""

    force: bool = False
    """Use --model even if the SAE was trained on another model."""

    model: str = ""
    """Model to run. Default: the one the SAE records."""

    def __post_init__(self) -> None:
        _check_common(self)
        require(self.text.strip() != "", "give a non-empty --text")
        require(self.target != "", "--target must not be empty")
        require(self.top > 0, f"--top must be positive, got {self.top}")
        require(self.max_tokens >= 2, f"--max-tokens must be at least 2, got {self.max_tokens}")


@dataclass(frozen=True)
class ContrastConfig(GenerationSettings):
    """`saescope contrast`: the latents that separate two sets of texts.

    Ranked by the separation score of Ferrando et al. ("Do I Know This Entity?"),
    P(a>0 | positive) − P(a>0 | negative), with the mean difference and a t-statistic."""

    sae: Path = field(default=Path(), metadata={"positional": True, "metavar": "SAE", "required": True})
    """The SAE folder (e.g. runs/demo/sae), or a published SAE's name (`hf:OWNER/REPO/PATH`,
    `saelens:RELEASE/SAE_ID`)."""

    positive: Path = field(default=Path(), metadata={"required": True})
    """Positive texts: a file with one text per line, or a .jsonl/.parquet file or a folder read as
    a corpus (one text per record or file; --text-field names the field)."""

    negative: Path = field(default=Path(), metadata={"required": True})
    """Negative texts, read like --positive."""

    positions: ContrastPositions = "last"
    """Positions compared: each text's last token, all its tokens (BOS excluded), or the last token
    of each occurrence of --substring (or of each record's --substring-field), as Ferrando et al.
    do for entity names."""

    substring: str | None = None
    """The text whose last token is compared (with --positions substring)."""

    substring_field: str | None = None
    """Record field holding each text's own substring (.jsonl/.parquet inputs)."""

    text_field: str = "text"
    """Field holding the text in .jsonl/.parquet records."""

    max_density: float = 0.05
    """Leave out latents firing on more than this fraction of generic (held-out) tokens: they
    separate nothing specific."""

    top: int = 20
    """Latents listed per direction."""

    prepend_bos: bool = True
    """Start each text with the tokenizer's BOS token, as the SAE's training inputs did."""

    chat: bool = False
    """Wrap each text in the model's chat template."""

    batch_size: int = 16
    """Texts per forward pass."""

    index: Path | None = None
    """The SAE's latent index (frequencies, explanations). Default: RUN/index when it indexes this
    SAE, else frequencies measured on held-out text."""

    stats_tokens: int = 4096
    """Held-out tokens to measure firing densities on when there is no index."""

    force: bool = False
    """Use --model even if the SAE was trained on another model."""

    model: str = ""
    """Model to run. Default: the one the SAE records."""

    def __post_init__(self) -> None:
        _check_common(self)
        require(str(self.positive) not in ("", "."), "give --positive texts")
        require(str(self.negative) not in ("", "."), "give --negative texts")
        substring_given = self.substring is not None or self.substring_field is not None
        require(
            (self.positions == "substring") == substring_given,
            "--positions substring goes with --substring or --substring-field (and they only with it)",
        )
        require(not (self.substring and self.substring_field), "give --substring or --substring-field")
        require(self.substring != "", "--substring must not be empty")
        require(0 < self.max_density <= 1, f"--max-density must be in (0, 1], got {self.max_density}")
        require(self.top > 0, f"--top must be positive, got {self.top}")
