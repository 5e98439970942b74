"""`saescope export` and `saescope import-explanations` settings (Neuronpedia's dataset-export layout).

This module knows nothing about the layout itself or how an index is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import require
from .backends import backend_names
from .interpret import Names
from .scorers import scorer_names

NEURONPEDIA_DEFAULT_USER = "clkht01d40000jv08hvalcvly"
"""The user a local Neuronpedia instance seeds (its `prisma/seed.ts`), whose id its own exports
write as every row's creator."""

_NEURONPEDIA_ID = re.compile(r"^[A-Za-z0-9._-]+$")


def _scorers() -> Names:
    return Names(scorer_names())


@dataclass(frozen=True)
class ExportConfig:
    """`saescope export`: a run's latents, top activations and explanations in Neuronpedia's
    dataset-export layout (gzipped JSONL batches of 1,024 rows), ready for its importer."""

    run: Path = field(default=Path(), metadata={"positional": True, "metavar": "RUN", "required": True})
    """The run folder holding `index/` (e.g. runs/demo), the latent index folder itself, or a published
    SAE's name (`hf:…`, `saelens:…`): its run folder."""

    neuronpedia: Path = field(default=Path(), metadata={"required": True})
    """Output folder: the source is written to OUT/<model id>/<source id>/."""

    model_id: str | None = None
    """Neuronpedia's id of the model. Default: the model's name after its last `/`, lowercased."""

    source_set: str | None = None
    """Neuronpedia's source set (the SAE family); the source id is `<layer>-<source set>`.
    Default: `saescope-<site>-<latents>` (`saescope-res-16k`)."""

    release: str = "saescope"
    """Neuronpedia's release the source set belongs to."""

    creator_id: str = NEURONPEDIA_DEFAULT_USER
    """The Neuronpedia user id every row names as its creator or author; the default is the user a
    local Neuronpedia instance seeds."""

    creator_name: str = "saescope"
    """The creator's name shown on the release and source set."""

    examples: int = 20
    """Top activations exported per latent (each a window of tokens with the latent's activations)."""

    before: int = 12
    """Tokens of context before an example's token."""

    after: int = 4
    """Tokens of context after it."""

    def __post_init__(self) -> None:
        require(str(self.run) not in ("", "."), "give the run folder (e.g. runs/demo) or its index folder")
        require(str(self.neuronpedia) not in ("", "."), "give --neuronpedia, the folder to write to")
        for name in ("model_id", "source_set", "release", "creator_id"):
            value = getattr(self, name)
            require(
                value is None or bool(_NEURONPEDIA_ID.match(value)),
                f"--{name.replace('_', '-')} {value!r}: use letters, digits, '.', '_' and '-' only",
            )
        require(1 <= self.examples <= 1000, f"--examples must be in [1, 1000], got {self.examples}")
        require(
            0 <= self.before <= 256 and 0 <= self.after <= 256, "--before and --after must be in [0, 256]"
        )


@dataclass(frozen=True)
class ImportExplanationsConfig:
    """`saescope import-explanations`: the explanations of a Neuronpedia export (theirs, or one
    `saescope export` wrote) stored in a latent index beside its own, optionally scored by its
    scorers."""

    export: Path = field(default=Path(), metadata={"positional": True, "metavar": "EXPORT", "required": True})
    """A source folder of a Neuronpedia export (holding explanations/), or a folder above it holding
    one source."""

    index: Path = field(default=Path(), metadata={"required": True})
    """The latent index of the same SAE to store them in, or a published SAE's name (`hf:…`,
    `saelens:…`): the index `saescope index NAME` made."""

    scorers: tuple[str, ...] = field(default=(), metadata={"choices": _scorers})
    """Score the imported explanations on the index's held-out examples with these scorers (as
    `saescope interpret --scorers`: `stats` needs no language model). Default: import only."""

    backend: str = field(default="local", metadata={"choices": backend_names})
    """Language model for the scorers that ask one (as `saescope interpret --backend`)."""

    model: str = ""
    """Model name as the backend knows it (as `saescope interpret --model`)."""

    base_url: str | None = None
    """Endpoint of an OpenAI-compatible or Anthropic server."""

    api_key_env: str | None = None
    """Environment variable holding the API key (as `saescope interpret --api-key-env`)."""

    def __post_init__(self) -> None:
        require(str(self.export) not in ("", "."), "give the export's source folder (EXPORT)")
        require(str(self.index) not in ("", "."), "give --index, the latent index to store them in")
