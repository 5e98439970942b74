"""The JSON API's request and response bodies (they make the OpenAPI schema at /openapi.json).

Sizes are bounded by the server's limits (`limits.py`), checked in the routes so that the error
names the limit; these models check types and ranges only.

This module knows nothing about how requests are answered.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, create_model

from ..example import Example
from ..fielddocs import field_docs


class InspectRequest(BaseModel):
    """A text to see through the SAE."""

    text: str = Field(description="The text (tokenized as the model sees it, BOS first).")
    latent: int | None = Field(
        None, ge=0, description="Shade tokens by this latent (default: the strongest)."
    )


class EffectsRequest(BaseModel):
    """A text whose latents' effects on a next token are wanted."""

    text: str = Field(description="The text.")
    target: str | None = Field(
        None, description="The next token to explain (default: the text's last token)."
    )
    top: int = Field(15, ge=1, le=200, description="Latent-position pairs listed by effect.")


class InterventionIn(BaseModel):
    """An edit of one latent (as `saescope steer --steer LATENT:MODE[:VALUE]`)."""

    latent: int = Field(ge=0)
    mode: Literal["add", "clamp", "scale", "ablate"]
    value: float = Field(0.0, allow_inf_nan=False, description="Amount added, clamped value, or factor.")
    relative: bool = Field(
        False, description="add and clamp only: value is a multiple of the latent's maximum activation."
    )
    where: Literal["all", "prompt", "generated"] = "all"
    conditional: bool = Field(False, description="Only where the latent already fires.")


class SteerRequest(BaseModel):
    """A steering request: prompts, edits and generation settings."""

    prompts: list[str] = Field(min_length=1, description="Prompts, generated as one batch.")
    interventions: list[InterventionIn] = Field(min_length=1)
    max_new_tokens: int = Field(24, ge=1)
    temperature: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int = 0
    controls: bool = Field(
        True, description="Also run a random latent of similar frequency and a random direction."
    )
    chat: bool = Field(False, description="Wrap prompts in the model's chat template.")
    targets: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Words (each exactly one token) that measure the effects (default: the steered "
        "latents' top logit-effect tokens that are whole words).",
    )
    sweep: list[Annotated[float, Field(gt=0.0, allow_inf_nan=False)]] = Field(
        default_factory=list,
        max_length=8,
        description="Also run the edit at these multiples of its values (e.g. 0.5, 1, 2, 4, 8), each with "
        "its effects and fluency cost.",
    )


def model_of(cls: type, name: str) -> type[BaseModel]:
    """A pydantic model with the fields, types and field docstrings of the NamedTuple `cls` (its
    `to_json()` is what the API returns): the schema is derived, never written twice."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    names: tuple[str, ...] = cls._fields  # type: ignore[attr-defined]
    fields: dict[str, Any] = {f: (hints[f], Field(description=docs.get(f, ""))) for f in names}
    model: type[BaseModel] = create_model(name, __doc__=cls.__doc__, **fields)
    return model


if typing.TYPE_CHECKING:
    ExampleOut = BaseModel
else:
    ExampleOut = model_of(Example, "Example")
    """An example window (`saescope.example.Example.to_json()`)."""


class ExamplesOut(BaseModel):
    latent: int
    examples: list[ExampleOut]


class QuantileOut(BaseModel):
    latent: int
    label: str
    examples: list[ExampleOut]


class RelatedOut(BaseModel):
    latent: int
    value: float
    explanation: str


class RelatedListOut(BaseModel):
    latent: int
    kind: Literal["cooccurring", "neighbours"]
    latents: list[RelatedOut]


class LatentRowOut(BaseModel):
    latent: int
    frequency: float
    max: float
    explanation: str
    score: float | None
    top_tokens: list[str]


class LatentsOut(BaseModel):
    total: int = Field(description="Latents matching the search.")
    rows: list[LatentRowOut]
    complete: bool = Field(description="False while top tokens are still being gathered at start-up.")


class StatusOut(BaseModel):
    run: str
    loaded: bool
    generating: int
    waiting: int
    queue: int
    load_error: str | None
    has_index: bool
    has_sae: bool


class ErrorOut(BaseModel):
    error: str
    limit: str | None = None
    value: int | None = None
    given: int | None = None


__all__ = [
    "EffectsRequest",
    "ErrorOut",
    "ExampleOut",
    "ExamplesOut",
    "InspectRequest",
    "InterventionIn",
    "LatentRowOut",
    "LatentsOut",
    "QuantileOut",
    "RelatedListOut",
    "RelatedOut",
    "StatusOut",
    "SteerRequest",
]
