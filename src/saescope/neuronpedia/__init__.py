"""Neuronpedia's dataset-export layout: runs exported for upload, Neuronpedia's explanations imported.

    saescope export runs/demo --neuronpedia exports/                       # `export`
    saescope import-explanations exports/<model>/<source> --index runs/demo/index   # `explanations`

`layout` is the format (folders, files, row fields, as Neuronpedia's repository defines them),
`export` writes a run's latent index in it, `explanations` stores an export's explanations in an
index beside saescope's own and scores them with its scorers.
This package knows nothing about how indexes are built or explanations scored.
"""

from .explanations import ImportResult, import_explanations
from .export import ExportResult, export_neuronpedia
from .layout import Export, read_export

__all__ = [
    "Export",
    "ExportResult",
    "ImportResult",
    "export_neuronpedia",
    "import_explanations",
    "read_export",
]
