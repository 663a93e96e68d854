"""workbench: decide, by ear and by measurement, which voice-clone checkpoint is best.

Public surface (everything else is internal):

- :func:`load_catalog` / :class:`Catalog` and its records
- :mod:`workbench.audio` for reading, writing and loudness
- the error types in :mod:`workbench.errors`
"""

from .catalog import Catalog, Checkpoint, EnhancePreset, Reference, Sentence, load_catalog
from .errors import AudioError, CatalogError, ModelUnavailable, RenderError, VoteError, WorkbenchError

__version__ = "0.1.0"

__all__ = [
    "AudioError",
    "Catalog",
    "CatalogError",
    "Checkpoint",
    "EnhancePreset",
    "ModelUnavailable",
    "Reference",
    "RenderError",
    "Sentence",
    "VoteError",
    "WorkbenchError",
    "__version__",
    "load_catalog",
]
