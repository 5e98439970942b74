"""Text sources, tokenization, model-input units and position sampling.

`iter_documents` streams the documents of a corpus: the built-in corpus (`builtin`, see
`saescope.builtin_corpus`), a local `.txt` / `.jsonl` / `.parquet` file, a folder of them (sorted,
recursive), or a Hugging Face dataset (streamed; needs the `hf` extra). A `.txt` file is one
document; a file of more than ~1 M characters is cut at blank lines into documents of about that
size, so no file is ever held whole. Bytes that are not UTF-8 are replaced (U+FFFD) with one
warning per file.

`iter_model_inputs` turns documents into model inputs, each numbered by `doc_id`, its index in the
deterministic stream of inputs (0, 1, 2, …), and carrying the `positions` whose activations are to
be stored:

- `window` unit: documents are tokenized without special tokens and packed into one stream with
  a separator token (EOS, else BOS) between documents; the stream is cut into consecutive inputs
  of `context_len` tokens, each starting with BOS when `prepend_bos` (the corpus's last input may
  be shorter). With a substring, each document is cut into inputs of its own instead (no
  packing), so that positions relate to one document.
- `sentence` unit: each sentence (`iter_sentences`) is one input, truncated to `context_len`.

Positions are every token except BOS (unless `include_bos`) and the separators, or — with a
substring — the tokens covering its occurrences (its last token, or all of them). Then
`round(sample_fraction · n)` of them are kept (0 possible for short inputs), drawn with
`numpy.random.default_rng([seed, doc_id])`, so a resumed capture picks the same ones. An input
left with no positions is not yielded, but still consumes its `doc_id`.

`batched` and `collate` group inputs into padded tensors for a forward pass.

This module knows nothing about models, hooks or activation stores.
"""

from __future__ import annotations

import json
import logging
import math
import re
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from .config import CorpusSettings
from .errors import SaescopeError

logger = logging.getLogger(__name__)

BUILTIN = "builtin"
"""The dataset name of the built-in corpus."""
FILE_SUFFIXES = (".txt", ".jsonl", ".parquet")
"""Local file types a corpus may consist of."""

_TXT_DOC_CHARS = 1_000_000
"""A `.txt` file longer than this is cut at the next blank line into several documents."""
_TXT_HARD_CHARS = 4_000_000
"""…and at the next line when no blank line comes for this long."""
_TOKENIZE_BATCH_DOCS = 64
_TOKENIZE_BATCH_CHARS = 1 << 20


@dataclass(frozen=True)
class Document:
    """One text of a corpus."""

    text: str
    """The text."""
    source: str
    """Where it comes from (file and line / row / record, or the built-in corpus's path)."""
    substring: str | None = None
    """Its own substring to locate (from `--substring-field`), if any."""


@dataclass(frozen=True)
class ModelInput:
    """One model input and the positions of it whose activations are stored."""

    doc_id: int
    """Index of this input in the corpus's deterministic stream of inputs."""
    token_ids: list[int]
    """Its tokens (BOS first when prepended)."""
    positions: list[int]
    """Indices into `token_ids` to store, ascending (never empty)."""
    text: str
    """`token_ids` decoded (special tokens included)."""
    source: str
    """The document it comes from; for a window covering several, the first and a count."""


# ---------------------------------------------------------------------------------------------------
# documents


_WARNED_NOT_UTF8: set[Path] = set()
"""Files already reported as not UTF-8 (a corpus is read more than once: checked, then used)."""


def _decode_line(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        if path not in _WARNED_NOT_UTF8:
            logger.warning("%s is not valid UTF-8; undecodable bytes are replaced with U+FFFD", path)
            _WARNED_NOT_UTF8.add(path)
        return raw.decode("utf-8", errors="replace")


def _read_lines(path: Path) -> Iterator[str]:
    """Lines of a file as text (newline kept, CRLF normalised), decoding bad UTF-8 with replacement.

    Decoding line by line is safe: no byte of a multi-byte UTF-8 sequence is a newline.
    """
    try:
        with path.open("rb") as f:
            first = True
            for raw in f:
                if first and raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark is not text
                    raw = raw[3:]
                first = False
                yield _decode_line(raw, path).replace("\r\n", "\n")
    except OSError as e:
        raise SaescopeError(f"cannot read {path}: {e.strerror or e}") from None


def _txt_documents(path: Path) -> Iterator[Document]:
    parts: list[str] = []
    size = 0
    chunk = 0

    def flush() -> Document:
        nonlocal parts, size, chunk
        text = "".join(parts)
        source = str(path) if chunk == 0 else f"{path}#part{chunk}"
        parts, size, chunk = [], 0, chunk + 1
        return Document(text=text, source=source)

    for line in _read_lines(path):
        if size >= _TXT_HARD_CHARS or (size >= _TXT_DOC_CHARS and not line.strip()):
            yield flush()
        parts.append(line)
        size += len(line)
    if parts or chunk == 0:
        yield flush()


def _record_document(record: Any, where: str, settings: CorpusSettings) -> Document:
    if not isinstance(record, dict):
        raise SaescopeError(f"{where} is not a JSON object")
    if settings.text_field not in record:
        raise SaescopeError(f"{where} has no field {settings.text_field!r} (set --text-field)")
    text = record[settings.text_field]
    if not isinstance(text, str):
        raise SaescopeError(f"field {settings.text_field!r} of {where} is {type(text).__name__}, not text")
    substring: str | None = None
    if settings.substring_field is not None:
        if settings.substring_field not in record:
            raise SaescopeError(f"{where} has no field {settings.substring_field!r} (--substring-field)")
        value = record[settings.substring_field]
        if value is not None and not isinstance(value, str):
            raise SaescopeError(f"field {settings.substring_field!r} of {where} is not text")
        substring = value or None
    return Document(text=text, source=where, substring=substring)


def _jsonl_documents(path: Path, settings: CorpusSettings) -> Iterator[Document]:
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise SaescopeError(f"{path}:{number} is not valid JSON") from None
        yield _record_document(record, f"{path}:{number}", settings)


def _parquet_documents(path: Path, settings: CorpusSettings) -> Iterator[Document]:
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
    except Exception as e:
        raise SaescopeError(f"cannot read {path} as Parquet: {e}") from None
    names = file.schema_arrow.names
    columns = [settings.text_field] + ([settings.substring_field] if settings.substring_field else [])
    for column in columns:
        if column not in names:
            raise SaescopeError(f"{path} has no column {column!r}; it has {', '.join(names)}")
    row = 0
    for batch in file.iter_batches(batch_size=1024, columns=columns):
        for record in batch.to_pylist():
            yield _record_document(record, f"{path}#{row}", settings)
            row += 1


def _file_documents(path: Path, settings: CorpusSettings) -> Iterator[Document]:
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return _txt_documents(path)
    if suffix == ".jsonl":
        return _jsonl_documents(path, settings)
    if suffix == ".parquet":
        return _parquet_documents(path, settings)
    raise SaescopeError(f"cannot read {path}: corpus files must be {', '.join(FILE_SUFFIXES)}")


def _folder_documents(folder: Path, settings: CorpusSettings) -> Iterator[Document]:
    files = sorted(
        (p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in FILE_SUFFIXES),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    if not files:
        raise SaescopeError(f"corpus {folder} is empty: no {', '.join(FILE_SUFFIXES)} files in it")
    for path in files:
        yield from _file_documents(path, settings)


def _hub_documents(settings: CorpusSettings) -> Iterator[Document]:
    name = settings.dataset
    try:
        import datasets
    except ImportError:
        raise SaescopeError(
            f"dataset {name!r} is not a local file or folder, and Hugging Face datasets need the "
            "`datasets` package: pip install 'saescope[hf]'"
        ) from None
    reason = "could not be loaded from the Hugging Face hub"
    try:
        records = iter(datasets.load_dataset(name, split=settings.split, streaming=True))
    except Exception as e:
        raise SaescopeError(
            f"dataset {name!r} is not a local file or folder and {reason}: {_first_line(e)}"
        ) from e
    index = 0
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except Exception as e:
            raise SaescopeError(f"reading dataset {name!r} failed at record {index}: {_first_line(e)}") from e
        yield _record_document(record, f"{name}/{settings.split}#{index}", settings)
        index += 1


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else type(e).__name__


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or name.lower().endswith(FILE_SUFFIXES)


def check_corpus(settings: CorpusSettings) -> None:
    """Fail now on a missing, unreadable or empty corpus — before any model is loaded."""
    next(iter_documents(settings), None)


def iter_documents(settings: CorpusSettings) -> Iterator[Document]:
    """The documents of `settings.dataset`, streamed, in a deterministic order (empty texts skipped).

    Raises `SaescopeError` for a missing path or field, an unreadable file, or an empty corpus.
    """
    name = settings.dataset
    if name == BUILTIN:
        from .builtin_corpus import builtin_texts

        documents: Iterable[Document] = (Document(text=t.text, source=t.source) for t in builtin_texts())
    else:
        path = Path(name).expanduser()
        if path.is_dir():
            documents = _folder_documents(path, settings)
        elif path.is_file():
            documents = _file_documents(path, settings)
        elif _looks_like_path(name):
            raise SaescopeError(f"dataset {name} does not exist")
        else:
            documents = _hub_documents(settings)
    count = 0
    for document in documents:
        if document.text:
            count += 1
            yield document
    if count == 0:
        raise SaescopeError(f"corpus {name} is empty")


# ---------------------------------------------------------------------------------------------------
# sentences

# A sentence ends at . ! or ? (plus closing quotes or brackets) when whitespace and an upper-case
# letter, digit or opening quote follow: a dependency-free stand-in for NLTK's Punkt (which
# llama3_interpretability_sae uses).
_SENTENCE_END = re.compile(r"""[.!?]+["'”’)\]]*(?=\s+["'“‘(\[]?[A-Z0-9])""")
_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n")
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "cf", "fig", "no", "vol"}
)


def iter_sentences(text: str) -> list[str]:
    """The sentences of `text`, stripped, in order; paragraphs (blank lines) always end one."""
    sentences: list[str] = []
    for block in _BLANK_LINES.split(text):
        start = 0
        for match in _SENTENCE_END.finditer(block):
            end = match.end()
            words = block[start : match.start()].split()
            # "Dr. Smith", "e.g. The": a period after a known abbreviation does not end the sentence.
            if match.group().startswith(".") and words and words[-1].lower() in _ABBREVIATIONS:
                continue
            piece = block[start:end].strip()
            if piece:
                sentences.append(piece)
            start = end
        piece = block[start:].strip()
        if piece:
            sentences.append(piece)
    return sentences


# ---------------------------------------------------------------------------------------------------
# substring positions


def _occurrences(text: str, substring: str) -> list[tuple[int, int]]:
    """Character spans of the non-overlapping occurrences of `substring` in `text`."""
    spans = []
    at = text.find(substring)
    while at != -1:
        spans.append((at, at + len(substring)))
        at = text.find(substring, at + len(substring))
    return spans


def _spans_by_offsets(
    offsets: Sequence[tuple[int, int]], occurrences: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Token spans `[start, end)` covering each character span, from the tokenizer's offset mapping.

    Linear in tokens + occurrences: a bisection over the running maximum of token ends finds the
    first token that can overlap an occurrence.
    """
    ends = list(accumulate((b for _, b in offsets), max))
    spans = []
    for s, e in occurrences:
        i = bisect_right(ends, s)
        first = last = -1
        while i < len(offsets) and offsets[i][0] < e:
            a, b = offsets[i]
            if b > a and b > s:  # zero-width tokens (special tokens) cover nothing
                first = i if first < 0 else first
                last = i
            i += 1
        if first >= 0:
            spans.append((first, last + 1))
    return spans


def spans_by_decoding(token_ids: Sequence[int], substring: str, tokenizer: Any) -> list[tuple[int, int]]:
    """Token spans `[start, end)` of the occurrences of `substring`, by binary search on decoded
    prefixes — the `find_string_in_tokens` of "Do I Know This Entity?"'s code, extended to every
    occurrence. The fallback for tokenizers without an offset mapping.
    """
    ids = list(token_ids)

    def decode(part: list[int]) -> str:
        return str(tokenizer.decode(part, clean_up_tokenization_spaces=False))

    spans = []
    for k in range(1, decode(ids).count(substring) + 1):
        lo, hi = 0, len(ids)  # smallest end whose prefix holds k occurrences
        while lo < hi:
            mid = (lo + hi) // 2
            if decode(ids[:mid]).count(substring) >= k:
                hi = mid
            else:
                lo = mid + 1
        end = lo
        lo, hi = 0, end - 1  # largest start whose slice up to `end` still holds the occurrence
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if substring in decode(ids[mid:end]):
                lo = mid
            else:
                hi = mid - 1
        spans.append((lo, end))
    return spans


def _span_tokens(spans: Sequence[tuple[int, int]], mode: str) -> list[int]:
    """Sorted token indices to store for the spans: the last token of each, or all of their tokens."""
    if mode == "last":
        return sorted({end - 1 for _, end in spans})
    return sorted({i for start, end in spans for i in range(start, end)})


# ---------------------------------------------------------------------------------------------------
# model inputs


def sample_positions(positions: list[int], fraction: float, seed: int, doc_id: int) -> list[int]:
    """`round(fraction · len(positions))` of `positions`, drawn with `default_rng([seed, doc_id])`,
    ascending. Deterministic per input, so a resumed capture keeps the same ones.
    """
    if fraction >= 1.0 or not positions:
        return positions
    keep = math.floor(fraction * len(positions) + 0.5)
    if keep == 0:
        return []
    rng = np.random.default_rng([seed % 2**63, doc_id])
    chosen = np.sort(rng.choice(len(positions), size=keep, replace=False))
    return [positions[i] for i in chosen.tolist()]


class _Tokenized:
    """A document (or sentence) with its tokens and, in substring mode, its token spans."""

    __slots__ = ("ids", "source", "spans")

    def __init__(self, ids: list[int], source: str, spans: list[tuple[int, int]] | None) -> None:
        self.ids = ids
        self.source = source
        self.spans = spans


class _InputMaker:
    """Shared state of one pass over a corpus: numbering, resume skipping, sampling, decoding."""

    def __init__(self, settings: CorpusSettings, tokenizer: Any, start: int) -> None:
        self.settings = settings
        self.tokenizer = tokenizer
        self.start = start
        self.next_id = 0
        self.tokens_seen = 0
        self.yielded = 0
        self.substring_mode = settings.substring is not None or settings.substring_field is not None
        bos = tokenizer.bos_token_id if settings.prepend_bos else None
        self.bos: int | None = bos
        self.body = settings.context_len - (1 if bos is not None else 0)
        sep = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.bos_token_id
        self.sep: int | None = sep
        self.use_offsets = self.substring_mode and bool(getattr(tokenizer, "is_fast", False))

    def tokenize(
        self, texts: list[str], sources: list[str], substrings: list[str | None]
    ) -> list[_Tokenized]:
        encoded = self.tokenizer(
            texts,
            add_special_tokens=False,
            return_attention_mask=False,
            return_offsets_mapping=self.use_offsets,
            verbose=False,
        )
        out = []
        for i, ids in enumerate(encoded["input_ids"]):
            spans: list[tuple[int, int]] | None = None
            substring = substrings[i]
            if self.substring_mode and substring is not None:
                occurrences = _occurrences(texts[i], substring)
                if not occurrences:
                    spans = []
                elif self.use_offsets:
                    spans = _spans_by_offsets(encoded["offset_mapping"][i], occurrences)
                else:
                    spans = spans_by_decoding(ids, substring, self.tokenizer)
                if not spans:
                    logger.debug("substring %r does not occur in %s", substring, sources[i])
            elif self.substring_mode:
                spans = []
            self.tokens_seen += len(ids)
            out.append(_Tokenized(list(ids), sources[i], spans))
        return out

    def take_id(self) -> int | None:
        """The next doc_id, or None when it is to be skipped (before `start`)."""
        doc_id = self.next_id
        self.next_id += 1
        return doc_id if doc_id >= self.start else None

    def finish(self, doc_id: int, ids: list[int], positions: list[int], source: str) -> ModelInput | None:
        s = self.settings
        positions = sample_positions(positions, s.sample_fraction, s.seed, doc_id)
        if not positions:
            return None
        self.yielded += 1
        text = str(self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False))
        return ModelInput(doc_id=doc_id, token_ids=ids, positions=positions, text=text, source=source)

    def prefix(self) -> list[int]:
        return [self.bos] if self.bos is not None else []

    def first_position(self) -> int:
        """Index of the first position to store in a non-substring input."""
        return 0 if (self.bos is None or self.settings.include_bos) else 1


def _batched_documents(
    documents: Iterator[Document], settings: CorpusSettings
) -> Iterator[tuple[list[str], list[str], list[str | None]]]:
    while True:
        texts: list[str] = []
        sources: list[str] = []
        substrings: list[str | None] = []
        size = 0
        for document in documents:
            texts.append(document.text)
            sources.append(document.source)
            substrings.append(settings.substring if settings.substring is not None else document.substring)
            size += len(document.text)
            if len(texts) >= _TOKENIZE_BATCH_DOCS or size >= _TOKENIZE_BATCH_CHARS:
                break
        if not texts:
            return
        yield texts, sources, substrings


def _tokenized_documents(maker: _InputMaker, documents: Iterator[Document]) -> Iterator[_Tokenized]:
    for texts, sources, substrings in _batched_documents(documents, maker.settings):
        yield from maker.tokenize(texts, sources, substrings)


def _tokenized_sentences(maker: _InputMaker, documents: Iterator[Document]) -> Iterator[_Tokenized]:
    def sentences() -> Iterator[Document]:
        for document in documents:
            for sentence in iter_sentences(document.text):
                yield Document(text=sentence, source=document.source, substring=document.substring)

    yield from _tokenized_documents(maker, sentences())


def _source_label(sources: Sequence[str]) -> str:
    return sources[0] if len(sources) == 1 else f"{sources[0]} (+{len(sources) - 1} more)"


def _packed_windows(maker: _InputMaker, docs: Iterator[_Tokenized]) -> Iterator[ModelInput]:
    """Documents packed into one stream with separators, cut into windows (no substring)."""
    body = maker.body
    prefix = maker.prefix()
    first_position = maker.first_position()
    ids: list[int] = []  # the stream not yet cut, from `cut` on
    is_sep: list[bool] = []
    cut = 0
    offset = 0  # stream index of ids[0]
    covering: deque[tuple[int, int, str]] = deque()  # (start, end, source) of documents, stream indices
    first_doc = True

    def window(length: int) -> ModelInput | None:
        nonlocal cut
        w_ids, w_sep = ids[cut : cut + length], is_sep[cut : cut + length]
        w_start = offset + cut
        w_end = w_start + length
        cut += length
        sources = [src for s, e, src in covering if s < w_end and e > w_start]
        while covering and covering[0][1] <= w_end:
            covering.popleft()
        doc_id = maker.take_id()
        if doc_id is None:
            return None
        tokens = prefix + w_ids
        skip = len(prefix)
        positions = [i for i in range(first_position, len(tokens)) if i < skip or not w_sep[i - skip]]
        return maker.finish(doc_id, tokens, positions, _source_label(sources or ["?"]))

    for doc in docs:
        if not doc.ids:
            continue
        if not first_doc and maker.sep is not None:
            ids.append(maker.sep)
            is_sep.append(True)
        first_doc = False
        start = offset + len(ids)
        ids.extend(doc.ids)
        is_sep.extend([False] * len(doc.ids))
        covering.append((start, start + len(doc.ids), doc.source))
        while len(ids) - cut >= body:
            made = window(body)
            if made is not None:
                yield made
        # Drop what was cut once per document, not once per window: a long document would
        # otherwise shift its whole tail for every window.
        del ids[:cut], is_sep[:cut]
        offset += cut
        cut = 0
    if not all(is_sep):
        made = window(len(ids))
        if made is not None:
            yield made


def _own_windows(maker: _InputMaker, docs: Iterator[_Tokenized], truncate: bool) -> Iterator[ModelInput]:
    """Each document (or sentence) on its own: cut into windows, or truncated to one."""
    body = maker.body
    prefix = maker.prefix()
    first_position = maker.first_position()
    for doc in docs:
        n = len(doc.ids)
        if n == 0:
            continue
        cuts = [(0, min(n, body))] if truncate else [(lo, min(n, lo + body)) for lo in range(0, n, body)]
        marked = None if doc.spans is None else _span_tokens(doc.spans, maker.settings.substring_positions)
        for lo, hi in cuts:
            doc_id = maker.take_id()
            if doc_id is None:
                continue
            tokens = prefix + doc.ids[lo:hi]
            if marked is None:
                positions = list(range(first_position, len(tokens)))
            else:
                inside = marked[bisect_left(marked, lo) : bisect_left(marked, hi)]
                positions = [i - lo + len(prefix) for i in inside]
            made = maker.finish(doc_id, tokens, positions, doc.source)
            if made is not None:
                yield made


def iter_model_inputs(settings: CorpusSettings, tokenizer: Any, start: int = 0) -> Iterator[ModelInput]:
    """The model inputs of the corpus with their positions to store, streamed (see the module docstring).

    `start` skips the inputs before `doc_id == start` (resuming a capture): the inputs yielded are
    exactly those an uninterrupted pass yields from there on. Raises `SaescopeError` for an empty
    corpus, and in substring mode when the substring occurs nowhere in the corpus.
    """
    if start < 0:
        raise SaescopeError(f"start must be >= 0, got {start}")
    maker = _InputMaker(settings, tokenizer, start)
    documents = iter_documents(settings)
    if settings.unit == "sentence":
        yield from _own_windows(maker, _tokenized_sentences(maker, documents), truncate=True)
    elif maker.substring_mode:
        yield from _own_windows(maker, _tokenized_documents(maker, documents), truncate=False)
    else:
        yield from _packed_windows(maker, _tokenized_documents(maker, documents))
    if maker.tokens_seen == 0:
        raise SaescopeError(f"corpus {settings.dataset} is empty: it holds no tokens")
    if maker.substring_mode and start == 0 and maker.yielded == 0:
        where = f"corpus {settings.dataset}"
        if settings.substring is not None:
            raise SaescopeError(
                f"substring {settings.substring!r} occurs nowhere in {where}; nothing to store"
            )
        raise SaescopeError(f"no record of {where} contains its own substring; nothing to store")


__all__ = [
    "BUILTIN",
    "FILE_SUFFIXES",
    "Document",
    "ModelInput",
    "check_corpus",
    "iter_documents",
    "iter_model_inputs",
    "iter_sentences",
    "sample_positions",
    "spans_by_decoding",
]


# ---------------------------------------------------------------------------------------------------
# batches of model inputs


class InputBatch(NamedTuple):
    """Model inputs padded into one batch, and where their stored positions are."""

    input_ids: Tensor
    """[B, T] right-padded token ids (on the model's device)."""
    attention_mask: Tensor
    """[B, T] 1 for real tokens (on the model's device)."""
    rows: Tensor
    """[n] batch row of every stored position (CPU)."""
    cols: Tensor
    """[n] its position in the row (CPU)."""
    token_ids: Tensor
    """[n] its token id (int32, CPU)."""


def batched(inputs: Iterable[ModelInput], size: int) -> Iterator[list[ModelInput]]:
    """Consecutive lists of `size` inputs (the last may be shorter)."""
    batch: list[ModelInput] = []
    for item in inputs:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def collate(batch: Sequence[ModelInput], pad_id: int, device: torch.device) -> InputBatch:
    """Right-pad `batch` into tensors; the positions to store stay on the CPU (reading them back from
    the GPU would wait for the forward pass)."""
    width = max(len(b.token_ids) for b in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    row_list: list[int] = []
    col_list: list[int] = []
    for r, b in enumerate(batch):
        ids[r, : len(b.token_ids)] = torch.tensor(b.token_ids, dtype=torch.long)
        mask[r, : len(b.token_ids)] = 1
        row_list.extend([r] * len(b.positions))
        col_list.extend(b.positions)
    rows = torch.tensor(row_list, dtype=torch.long)
    cols = torch.tensor(col_list, dtype=torch.long)
    return InputBatch(
        ids.to(device, non_blocking=True),
        mask.to(device, non_blocking=True),
        rows,
        cols,
        ids[rows, cols].to(torch.int32),
    )
