"""The app's long-lived objects in one frozen record, built once when the app starts.

``app.py`` builds a :class:`Services` (through :meth:`workbench.ui.common.AppContext.create`)
and every tab reads what it needs from it: one renderer, one comparer, one quality store,
one live catalog, one vote store, one plan store, one served-audio folder. Nothing here
imports the UI, so a script or a test can build the same objects.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from .abtest import PlanStore, ServedFiles, sweep_served
from .catalog import Catalog
from .catalog_live import LiveCatalog
from .comparison import Comparer
from .quality import QualityStore
from .render import Renderer
from .votes import VoteStore


@dataclass(frozen=True)
class Services:
    """One of each service the tabs share (see :func:`build_services`)."""

    renderer: Renderer  # request -> cached clip; the only model holder
    comparer: Comparer  # Compare's render-measure-draw, with its analysis memo
    quality: QualityStore  # DNSMOS and bad-take flags, beside the renderer's cache
    live_catalog: LiveCatalog  # the catalog files as last read well (hot reload)
    votes_path: Path  # the vote CSV, the system of record (opened as `votes` on first use)
    plans: PlanStore  # blind-test plans and rater schedules (one store per folder: one lock)
    served: ServedFiles  # anonymous audio copies for raters, counted per delivery

    @functools.cached_property
    def votes(self) -> VoteStore:
        """The vote store, opened (and a torn last row recovered) on first use.

        Opening refuses a file whose header is not the store's; Results can still read
        such a file, so an app used only to look at results never opens the store.
        """
        return VoteStore(self.votes_path)


def served_dir(data_dir: Path) -> Path:
    """Where anonymous copies of clips are written for browsers (delivered by the app's own route)."""
    return Path(data_dir) / "served"


def tests_dir(data_dir: Path) -> Path:
    """Where blind-test plans and rater schedules are kept."""
    return Path(data_dir) / "tests"


def build_services(
    catalog: Catalog,
    *,
    votes_path: Path,
    data_dir: Path,
    device: str = "auto",
    cluster: str | None = None,
    renderer: Renderer | None = None,
) -> Services:
    """Build the app's services.

    Parameters
    ----------
    catalog : the catalog the app starts with (the live catalog replaces it on good edits)
    votes_path : the vote CSV (opening it recovers a torn last row)
    data_dir : blind tests (``tests/``) and served audio (``served/``; old copies are swept now)
    device : ``auto`` | ``cpu`` | ``cuda`` for local renders
    cluster : a Ray address to render on, or None for this process
    renderer : a ready renderer (tests pass one with their own cache); default: a new one
    """
    renderer = renderer or Renderer(catalog, device=device, cluster=cluster)
    quality = QualityStore(renderer.cache_dir)
    served = served_dir(data_dir)
    sweep_served(served)  # copies a previous run left behind (the folder is made on first use)
    return Services(
        renderer=renderer,
        comparer=Comparer(catalog, renderer, quality=quality),
        quality=quality,
        live_catalog=LiveCatalog(catalog),
        votes_path=Path(votes_path),
        plans=PlanStore(tests_dir(data_dir)),
        served=ServedFiles(served),
    )
