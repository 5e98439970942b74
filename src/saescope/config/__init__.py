"""One frozen dataclass per pipeline stage (one file each), and the shared model/corpus settings.

Field docstrings become `--help`; configs validate themselves and are never mutated. Stage
functions take these configs, so a notebook can do everything the CLI does.
"""

from ..errors import ConfigError
from .base import (
    CorpusSettings,
    GenerationSettings,
    ModelDType,
    ModelSettings,
    StoreDType,
    check_choices,
    corpus_of,
    model_of,
    to_jsonable,
)
from .capture import CaptureConfig
from .circuit import CircuitConfig
from .compare import CompareConfig
from .convert import ConvertConfig
from .dashboard import DashboardConfig
from .demo import DemoConfig
from .eval import EvalConfig
from .explanations import ExplanationsConfig
from .export import ExportConfig, ImportExplanationsConfig
from .index import IndexConfig
from .interpret import InterpretConfig
from .query import QueryConfig
from .serve import ServeConfig
from .steer import ContrastConfig, EffectsConfig, SteerConfig
from .train import TrainConfig
from .verify import VerifyConfig

__all__ = [
    "CaptureConfig",
    "CircuitConfig",
    "CompareConfig",
    "ConfigError",
    "ContrastConfig",
    "ConvertConfig",
    "CorpusSettings",
    "DashboardConfig",
    "DemoConfig",
    "EffectsConfig",
    "EvalConfig",
    "ExplanationsConfig",
    "ExportConfig",
    "GenerationSettings",
    "ImportExplanationsConfig",
    "IndexConfig",
    "InterpretConfig",
    "ModelDType",
    "ModelSettings",
    "QueryConfig",
    "ServeConfig",
    "SteerConfig",
    "StoreDType",
    "TrainConfig",
    "VerifyConfig",
    "check_choices",
    "corpus_of",
    "model_of",
    "to_jsonable",
]
