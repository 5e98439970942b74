"""How an SAE came to be: the typed `training` record saved in its `cfg.json`.

Later stages read it to find the SAE's world without flags: the corpus it was trained on, and
where in that corpus's deterministic stream of model inputs held-out text begins (`next_doc`, the
first input training did not read). An SAE imported from another library records only `source`.

This module knows nothing about training loops, models or files.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..config import CorpusSettings
from ..errors import SaescopeError


@dataclass(frozen=True)
class TrainingRecord:
    """Provenance of a trained (or imported) SAE; `cfg.json` holds it as the object `training`."""

    store: str | None = None
    """The activation store it was trained from (None on the fly or when imported)."""
    store_rows: int | None = None
    """Rows that store held."""
    capture: dict[str, Any] | None = None
    """The store's full capture config (model, corpus, cut into inputs): its training text."""
    on_the_fly: bool = False
    """Trained on activations computed from the model as training went."""
    corpus: dict[str, Any] | None = None
    """On the fly: the corpus settings it read."""
    next_doc: int = 0
    """The first model input of that corpus training did not read: held-out text starts here."""
    tokens: int | None = None
    """Activations seen in training."""
    steps: int | None = None
    """Optimisation steps."""
    config: dict[str, Any] | None = None
    """The full training config."""
    final_metrics: dict[str, Any] = field(default_factory=dict)
    """Metrics of the last logged window (FVU, L0, dead fraction, …)."""
    source: dict[str, Any] | None = None
    """For an imported SAE: the format and path it was imported from."""

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, where: str = "cfg.json") -> TrainingRecord:
        """The record from `cfg.json`'s `training` object (unknown keys are ignored)."""
        if not data:
            return cls()
        if not isinstance(data, dict):
            raise SaescopeError(f"{where}: training must be an object, got {data!r}")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        try:
            values["next_doc"] = int(values.get("next_doc") or 0)
        except (TypeError, ValueError):
            raise SaescopeError(f"{where}: training.next_doc must be an integer") from None
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object saved in `cfg.json` (unset fields left out)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and value != {} and not (f.name == "on_the_fly" and not value):
                out[f.name] = value
        return out

    @property
    def corpus_record(self) -> dict[str, Any] | None:
        """The training corpus's settings as recorded (the capture config, or the on-the-fly corpus)."""
        return self.capture or self.corpus

    def corpus_settings(self) -> CorpusSettings | None:
        """The training corpus as `CorpusSettings` (None when the SAE records none)."""
        record = self.corpus_record
        if not record:
            return None
        names = {f.name for f in fields(CorpusSettings)}
        return CorpusSettings(**{k: _as_tuple(v) for k, v in record.items() if k in names})


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


__all__ = ["TrainingRecord"]
