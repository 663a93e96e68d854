"""The running app's catalog: reloaded when its files change, and grown from the app.

- :class:`LiveCatalog` watches ``checkpoints.yaml`` and its overlay of added checkpoints
  (:func:`workbench.catalog.overlay_path`). A good edit replaces the catalog; a bad edit
  keeps the last good one and remembers the error (file and line) until the files are
  fixed.
- :func:`add_prerendered` adds a folder of existing clips (``<reference>/<sentence>.<ext>``),
  or a zip of one, as a new ``prerendered`` checkpoint (old renders, a revert to check).
  It is written to the overlay file, so it survives a restart; the catalog file itself
  is never rewritten (its comments and anchors stay as the team wrote them).
"""

from __future__ import annotations

import logging
import shutil
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from . import audio
from .catalog import _ID, AUDIO_EXTENSIONS, Catalog, load_catalog, overlay_path, parse_overlay
from .errors import AudioError, CatalogError
from .fsutil import atomic_open

log = logging.getLogger(__name__)

#: most audio files and bytes an uploaded zip may unpack to
MAX_ZIP_FILES = 5000
MAX_ZIP_BYTES = 2 * 1024**3
OVERLAY_HEADER = (
    "# Checkpoints added from the app (Compare > Add old renders as a checkpoint).\n"
    "# Same fields as checkpoints.yaml; paths are relative to this file. Edit or delete freely:\n"
    "# the app picks changes up without a restart.\n"
)


class LiveCatalog:
    """The current catalog of a running app, reloaded when its files change. Thread-safe.

    ``refresh()`` is cheap when nothing changed (two ``stat`` calls).
    """

    def __init__(self, catalog: Catalog):
        self.path = catalog.path
        self.current = catalog
        self.error: str | None = None  # why the files on disk are not in use (None: they are)
        self._lock = threading.Lock()
        self._stamp = self._stamps()

    def _stamps(self) -> tuple:
        out: list[tuple[int, int] | None] = []
        for p in (self.path, overlay_path(self.path)):
            try:
                st = p.stat()
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append(None)
        return tuple(out)

    def refresh(self, *, force: bool = False) -> bool:
        """Reload when a file changed; True when a new catalog is now current.

        A catalog that fails to load leaves the last good one current and sets ``error``.
        """
        with self._lock:
            stamp = self._stamps()
            if stamp == self._stamp and not force:
                return False
            self._stamp = stamp
            try:
                new = load_catalog(self.path)
            except CatalogError as e:
                if str(e) != self.error:
                    log.warning("catalog not reloaded, the last good one stays in use: %s", str(e).replace("\n", " "))
                self.error = str(e)
                return False
            self.current, self.error = new, None
            log.info("catalog reloaded: %d checkpoints", len(new.checkpoints))
            return True


# ---------------------------------------------------------------------------- adding old renders


@dataclass(frozen=True)
class Added:
    """What :func:`add_prerendered` added."""

    name: str
    clips_dir: Path
    clips: int  # audio files found under <reference>/<sentence>.<ext>
    missing: list[str]  # "<reference>/<sentence>" the catalog names but the folder lacks


def _layout(folder: Path, cat: Catalog) -> tuple[list[Path], list[str]]:
    """Clips of ``folder`` in the ``<reference>/<sentence>.<ext>`` layout, and what is missing."""
    found, missing = [], []
    for ref in cat.references:
        for sent in cat.sentences:
            hit = next(
                (
                    folder / ref / f"{sent}{ext}"
                    for ext in AUDIO_EXTENSIONS
                    if (folder / ref / f"{sent}{ext}").is_file()
                ),
                None,
            )
            if hit is None:
                missing.append(f"{ref}/{sent}")
            else:
                found.append(hit)
    return found, missing


def _clips_root(folder: Path, cat: Catalog) -> Path:
    """``folder`` or the one folder inside it that holds the reference folders (zips often wrap one)."""
    if any((folder / r).is_dir() for r in cat.references):
        return folder
    subs = [d for d in folder.iterdir() if d.is_dir()]
    if len(subs) == 1 and any((subs[0] / r).is_dir() for r in cat.references):
        return subs[0]
    return folder


def unpack_zip(zip_path: Path, dest: Path) -> Path:
    """Unpack the audio files of ``zip_path`` into ``dest`` (a new folder), refusing unsafe members.

    Members with absolute paths or ``..`` are refused, only audio files are written, and
    at most :data:`MAX_ZIP_FILES` files / :data:`MAX_ZIP_BYTES` bytes are unpacked.
    """
    name = Path(zip_path).name
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise CatalogError(
            f"{name}: not a readable zip file ({e}); upload a .zip of <reference>/<sentence>.flac"
        ) from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir() and Path(m.filename).suffix.lower() in AUDIO_EXTENSIONS]
        if not members:
            raise CatalogError(f"{name}: holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
        if len(members) > MAX_ZIP_FILES or sum(m.file_size for m in members) > MAX_ZIP_BYTES:
            raise CatalogError(f"{name}: too large to unpack (over {MAX_ZIP_FILES} files or {MAX_ZIP_BYTES >> 30} GiB)")
        for m in members:
            rel = PurePosixPath(m.filename.replace("\\", "/"))
            if rel.is_absolute() or ".." in rel.parts:
                raise CatalogError(f"{name}: member {m.filename!r} points outside the zip; refusing to unpack it")
        dest.mkdir(parents=True)
        for m in members:
            target = dest.joinpath(*PurePosixPath(m.filename.replace("\\", "/")).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(m) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    return dest


def add_prerendered(
    cat: Catalog, name: str, *, folder: str | Path | None = None, zip_path: str | Path | None = None, notes: str = ""
) -> Added:
    """Add old renders as checkpoint ``name`` (``backend: prerendered``) in the overlay file.

    Give ``folder`` (absolute, or relative to the catalog's folder) or ``zip_path`` (unpacked
    under ``<data_dir>/imported/<name>/``). Every clip found is read as audio first; the
    checkpoint is added only when at least one clip matches the catalog's references and
    sentences and none is unusable. Raises :class:`CatalogError` naming what to fix.
    """
    name = (name or "").strip()
    if not _ID.match(name):
        raise CatalogError(f"checkpoint name {name!r}: use letters, digits, _ . + - (e.g. feb1-old), at most 64")
    if name in cat.checkpoints:
        raise CatalogError(f"checkpoint {name!r} exists already; pick another name (e.g. {name}-old)")
    if bool(folder) == bool(zip_path):
        raise CatalogError("give either a folder on the server or a zip file, not both or neither")
    base = cat.path.parent
    unpacked = None
    if zip_path:
        unpacked = Path(cat.settings.data_dir) / "imported" / name
        if unpacked.exists():
            shutil.rmtree(unpacked)
        root = _clips_root(unpack_zip(Path(zip_path), unpacked), cat)
    else:
        root = Path(str(folder).strip()).expanduser()
        root = root if root.is_absolute() else base / root
        if not root.is_dir():
            raise CatalogError(f"folder {folder!r} not found on the server; give the folder holding <reference>/")
    try:
        clips, missing = _layout(root, cat)
        if not clips:
            refs = ", ".join(cat.references)
            raise CatalogError(
                f"no clips in the <reference>/<sentence>.<ext> layout under {root.name}/ "
                f"(references: {refs}; e.g. {next(iter(cat.references))}/{next(iter(cat.sentences))}.flac)"
            )
        bad = []
        for clip in clips:
            try:
                audio.check_file(clip)
            except AudioError as e:
                bad.append(f"{clip.parent.name}/{e}")
        if bad:
            raise CatalogError([f"unusable clip {b}" for b in bad])
        entry = {"backend": "prerendered", "clips_dir": overlay_folder(cat, root)}
        if notes.strip():
            entry["notes"] = notes.strip()[:500]
        write_overlay_entry(cat, name, entry)
    except CatalogError:
        if unpacked is not None:
            shutil.rmtree(unpacked, ignore_errors=True)
        raise
    return Added(name, root, len(clips), missing)


def overlay_folder(cat: Catalog, folder: Path) -> str:
    """``folder`` as the overlay file writes it: relative to the overlay's folder when inside it."""
    base = overlay_path(cat.path).resolve().parent
    folder = Path(folder).resolve()
    return str(folder.relative_to(base)) if folder.is_relative_to(base) else str(folder)


def write_overlay_entry(cat: Catalog, name: str, entry: dict) -> Path:
    """Add checkpoint ``name`` (its YAML fields, ``entry``) to the overlay file; return the file.

    The new overlay is validated against the catalog before it replaces the old file, so
    the app never finds a file it could not load.
    """
    path = overlay_path(cat.path)
    entries: dict = {}
    if path.is_file():
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        entries = dict((data.get("checkpoints") or {}) if isinstance(data, dict) else {})
    entries[name] = entry
    text = OVERLAY_HEADER + yaml.safe_dump({"checkpoints": entries}, sort_keys=False, allow_unicode=True)
    main = {k: v for k, v in cat.checkpoints.items() if k not in entries}
    parse_overlay(text, path=path, existing=main)  # refuse to write a file the app could not load
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
