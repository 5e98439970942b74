"""`saescope import-explanations EXPORT --index INDEX`: Neuronpedia's explanations beside saescope's.

    saescope import-explanations exports/llama3.1-8b/15-llamascope-res-32k --index runs/x/index
    saescope import-explanations EXPORT --index INDEX --scorers stats        # and score them

Each Explanation row of the export (`layout`) becomes a stored explanation of its latent in the
index (`saescope.interpret.tables`), keyed by explainer `neuronpedia`, model its
`explanationModelName` and prompt version its `typeName`; one `saescope export` wrote carries its
own explainer, model and prompt version in `notes` and gets them back. A latent's first row of a key
is kept (the others are counted, not stored). The export must be of the index's SAE: every latent
it names must exist, and an export saescope wrote must carry the index's weights fingerprint.

With `--scorers`, the imported explanations are scored like saescope's own (`saescope interpret`'s
scorers, on the index's held-out examples, beside a chance baseline of another latent's imported
explanation), so both can be compared on the same footing; latents that never fire in the index
cannot be scored and are set aside.

This module knows nothing about how explanations are written or scored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..config.export import ImportExplanationsConfig
from ..config.interpret import InterpretConfig
from ..errors import SaescopeError
from ..index.reader import Index
from ..interpret.clients.local import preload
from ..interpret.command import make_scorers, open_client, record_settings
from ..interpret.concurrent import LatentResult
from ..interpret.explainers import Explanation
from ..interpret.records import LatentRecord
from ..interpret.resumable import interpret_index
from ..interpret.selection import select_latents
from ..interpret.source import IndexRecords
from ..interpret.summary import InterpretResult, Usage, overall
from ..interpret.tables import ExplanationKey, ResultStore
from .layout import Export, read_export

log = logging.getLogger(__name__)

EXPLAINER = "neuronpedia"
"""The explainer name imported explanations are stored under."""


class ImportResult(NamedTuple):
    """What `saescope import-explanations` did."""

    index_dir: Path
    """The index they were stored in."""
    source: Path
    """The export's source folder."""
    imported: int
    """Explanations stored."""
    latents: int
    """Latents they explain."""
    duplicates: int
    """Rows not stored: another explanation of the same latent by the same explainer, model and type."""
    scored: tuple[InterpretResult, ...]
    """One scoring run per explainer key (empty without --scorers)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "index": str(self.index_dir),
            "source": str(self.source),
            "imported": self.imported,
            "latents": self.latents,
            "duplicates": self.duplicates,
            "scored": [r.to_json() for r in self.scored],
        }

    def render(self) -> str:
        extra = f" ({self.duplicates} duplicates not stored)" if self.duplicates else ""
        lines = [
            f"stored {self.imported:,} explanations of {self.latents:,} latents from {self.source} "
            f"in {self.index_dir}{extra}"
        ]
        return "\n".join([*lines, *(r.render() for r in self.scored)])


class Imported:
    """An explainer's key that never explains: scoring reuses the stored explanations of its key."""

    def __init__(self, key: ExplanationKey) -> None:
        self.name, self.model, self.prompt_version = key

    async def explain(self, record: LatentRecord) -> Explanation:
        key = ExplanationKey(self.name, self.model, self.prompt_version)
        return Explanation(record.latent, *key, "", None, False, "no imported explanation", 0, False, "")


def key_of_row(row: dict[str, Any]) -> ExplanationKey:
    """The key an Explanation row is stored under (see the module docstring)."""
    try:
        ours = json.loads(row.get("notes") or "{}").get("saescope")
    except (json.JSONDecodeError, AttributeError):
        ours = None
    if isinstance(ours, dict) and ours.get("explainer"):
        return ExplanationKey(
            str(ours["explainer"]), str(ours.get("model") or ""), str(ours.get("prompt_version") or "")
        )
    return ExplanationKey(
        EXPLAINER, str(row.get("explanationModelName") or ""), str(row.get("typeName") or "")
    )


def latent_of(row: dict[str, Any], d_sae: int, source: Path) -> int:
    """The row's latent, checked against the index's SAE."""
    try:
        latent = int(str(row.get("index")))
    except ValueError:
        raise SaescopeError(
            f"{source}: an explanation row has index {row.get('index')!r}, not a latent"
        ) from None
    if not 0 <= latent < d_sae:
        raise SaescopeError(
            f"{source}: an explanation of latent {latent}, but the index's SAE has {d_sae} latents: "
            "the export is of another SAE"
        )
    return latent


def check_same_sae(export: Export, index: Index) -> None:
    """An export saescope wrote names its SAE's weights: they must be the index's."""
    try:
        ours = json.loads(export.source.get("notes") or "{}").get("saescope") or {}
    except (json.JSONDecodeError, AttributeError):
        ours = {}
    theirs = ours.get("sae_sha256") if isinstance(ours, dict) else None
    if theirs and theirs != index.header.sae_sha256:
        raise SaescopeError(
            f"{export.folder} is an export of another SAE ({ours.get('sae')}) than the index's "
            f"({index.header.sae})"
        )


def explanations_of(export: Export, d_sae: int) -> tuple[dict[ExplanationKey, dict[int, Explanation]], int]:
    """The export's explanations by key and latent, and the rows left out as duplicates."""
    found: dict[ExplanationKey, dict[int, Explanation]] = {}
    duplicates = 0
    for row in export.explanations:
        text = str(row.get("description") or "").strip()
        if not text:
            continue
        latent, key = latent_of(row, d_sae, export.folder), key_of_row(row)
        mine = found.setdefault(key, {})
        if latent in mine:
            duplicates += 1
            continue
        raw = json.dumps(
            {k: row.get(k) for k in ("id", "authorId", "typeName", "explanationModelName", "notes")}
        )
        mine[latent] = Explanation(latent, *key, text, None, True, None, 0, False, raw)
    return found, duplicates


async def _score(
    records: IndexRecords,
    latents: Sequence[int],
    key: ExplanationKey,
    icfg: InterpretConfig,
    store: ResultStore,
) -> InterpretResult:
    """Score the stored explanations of `key` on `latents` with the scorers `icfg` names."""
    started = time.perf_counter()
    client = open_client(icfg) if icfg.needs_llm else None
    scorers = make_scorers(icfg, client)
    try:
        await preload(client, icfg.llm_model)
        outcome = await interpret_index(
            records, latents, Imported(key), scorers, store, concurrency=icfg.concurrency, seed=icfg.seed
        )
    finally:
        close = getattr(client, "aclose", None)
        if close is not None:
            await close()
    return InterpretResult(
        icfg.index,
        key.explainer,
        key.model,
        key.prompt_version,
        icfg.chosen_scorers,
        outcome.reports,
        (),
        overall(outcome.reports),
        Usage.of(getattr(client, "usage", None)),
        time.perf_counter() - started,
        outcome.stopped,
    )


def import_explanations(cfg: ImportExplanationsConfig) -> ImportResult:
    """Store the export's explanations in the index and score them when asked (module docstring)."""
    index = Index(cfg.index)
    export = read_export(Path(cfg.export))
    check_same_sae(export, index)
    by_key, duplicates = explanations_of(export, index.d_sae)
    if not by_key:
        raise SaescopeError(f"{export.folder} holds no explanations (explanations/batch-*.jsonl.gz)")
    store = ResultStore(cfg.index)
    for key, explanations in by_key.items():
        for latent, explanation in sorted(explanations.items()):
            store.add(LatentResult(latent, explanation, (), None), key, {})
    store.compact()
    scored: list[InterpretResult] = []
    if cfg.scorers:
        icfg = InterpretConfig(
            index=cfg.index,
            scorers=cfg.scorers,
            backend=cfg.backend,
            model=cfg.model,
            base_url=cfg.base_url,
            api_key_env=cfg.api_key_env,
        )
        records = IndexRecords(index, record_settings(icfg))
        for key, explanations in by_key.items():
            chosen = select_latents(records.counts, sorted(explanations))
            for skipped in chosen.skipped:
                log.info("latent %d not scored: %s", skipped.latent, skipped.reason)
            if chosen.latents:
                result = asyncio.run(_score(records, chosen.latents, key, icfg, store))
                scored.append(result._replace(skipped=chosen.skipped))
    latents = len({latent for explanations in by_key.values() for latent in explanations})
    imported = sum(len(e) for e in by_key.values())
    return ImportResult(Path(cfg.index), export.folder, imported, latents, duplicates, tuple(scored))


__all__ = ["EXPLAINER", "ImportResult", "import_explanations"]
