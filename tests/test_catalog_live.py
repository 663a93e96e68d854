"""Old renders added as checkpoints (overlay file), and the catalog reloaded on edits."""

from __future__ import annotations

import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest

from workbench.catalog import load_catalog, overlay_path
from workbench.catalog_live import LiveCatalog, add_prerendered
from workbench.comparison import Comparer, make_selection
from workbench.errors import CatalogError
from workbench.render import Renderer
from workbench.ui import compare as compare_ui
from workbench.ui.common import AppContext


def old_renders(root: Path, src: Path) -> Path:
    """A copy of one demo checkpoint's clips, as a folder of old renders."""
    dest = root / "old" / "feb1"
    shutil.copytree(src, dest)
    return dest


def test_a_folder_of_old_renders_becomes_a_checkpoint_that_survives_a_restart(demo_catalog, tmp_path):
    folder = old_renders(tmp_path, demo_catalog.checkpoints["feb1"].demo_dir)
    added = add_prerendered(demo_catalog, "feb1-old", folder=str(folder), notes="March renders")
    assert added.clips == 32 and added.missing == []
    overlay = overlay_path(demo_catalog.path)
    assert overlay.name == "checkpoints.added.yaml" and "feb1-old" in overlay.read_text()
    cat = load_catalog(demo_catalog.path)  # what a restart reads
    ck = cat.checkpoints["feb1-old"]
    assert (ck.backend, ck.clips_dir, ck.notes) == ("prerendered", folder, "March renders")
    assert list(cat.checkpoints)[-1] == "feb1-old" and cat.overlay == overlay.resolve()
    # the question it answers: does feb1 match the old renders exactly?
    sel = make_selection(cat, "paul_1", "names", None, ["feb1", "feb1-old"], "none")
    result = Comparer(cat, Renderer(cat)).compare(sel, out_dir=tmp_path / "out")
    assert result.verdict.verdict == "identical"


def test_a_zip_of_old_renders_is_unpacked_under_the_data_folder(demo_catalog, tmp_path):
    src = demo_catalog.checkpoints["apr24"].demo_dir
    z = tmp_path / "apr24.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted(src.rglob("*.flac"))[:5]:
            zf.write(f, f"apr24-renders/{f.relative_to(src)}")  # zips often wrap one folder
        zf.writestr("apr24-renders/readme.txt", "not audio: skipped")
    added = add_prerendered(demo_catalog, "apr24-old", zip_path=str(z))
    assert added.clips == 5 and len(added.missing) == 27
    assert added.clips_dir == Path(demo_catalog.settings.data_dir) / "imported" / "apr24-old" / "apr24-renders"
    assert load_catalog(demo_catalog.path).checkpoints["apr24-old"].clips_dir == added.clips_dir


def test_bad_additions_are_refused_and_leave_nothing_behind(demo_catalog, tmp_path):
    folder = old_renders(tmp_path, demo_catalog.checkpoints["feb1"].demo_dir)
    with pytest.raises(CatalogError, match="exists already"):
        add_prerendered(demo_catalog, "feb1", folder=str(folder))
    with pytest.raises(CatalogError, match="use letters, digits"):
        add_prerendered(demo_catalog, "feb1 (old)", folder=str(folder))
    with pytest.raises(CatalogError, match="not found on the server"):
        add_prerendered(demo_catalog, "x", folder=str(tmp_path / "nowhere"))
    with pytest.raises(CatalogError, match="no clips in the <reference>/<sentence>.<ext> layout"):
        add_prerendered(demo_catalog, "x", folder=str(folder / "surya_1"))
    (folder / "paul_1" / "names.flac").write_bytes(b"")
    with pytest.raises(CatalogError, match=r"unusable clip paul_1/names\.flac: zero-length file"):
        add_prerendered(demo_catalog, "x", folder=str(folder))
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../outside.flac", b"x")
    with pytest.raises(CatalogError, match="points outside the zip"):
        add_prerendered(demo_catalog, "y", zip_path=str(evil))
    assert not (Path(demo_catalog.settings.data_dir) / "imported" / "y").exists()
    assert not overlay_path(demo_catalog.path).exists()


def test_overlay_mistakes_name_the_file_and_line(demo_catalog_path):
    overlay_path(demo_catalog_path).write_text(
        "checkpoints:\n  feb1:\n    backend: prerendered\n    clips_dir: x\n  new1:\n    backend: prerendered\n"
        "    clip_dir: x\n"
    )
    with pytest.raises(CatalogError) as e:
        load_catalog(demo_catalog_path)
    text = str(e.value)
    assert "checkpoints.added.yaml:2: checkpoints.feb1 is already a checkpoint in the catalog" in text
    assert "checkpoints.added.yaml:7: checkpoints.new1.clip_dir" in text


def bump(path: Path) -> None:
    """Make sure a rewrite shows as a change even on a coarse-mtime file system."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_catalog_edits_are_picked_up_and_a_bad_edit_keeps_the_last_good_catalog(demo_catalog_path):
    live = LiveCatalog(load_catalog(demo_catalog_path))
    assert live.refresh() is False  # nothing changed
    text = demo_catalog_path.read_text()
    good = text.replace("sentences:\n", "sentences:\n  hello:\n    text: Hello there.\n", 1)
    demo_catalog_path.write_text(good)
    bump(demo_catalog_path)
    assert live.refresh() is True and "hello" in live.current.sentences and live.error is None
    demo_catalog_path.write_text(good.replace("temperature: 0.75", "temperature: -1"))
    bump(demo_catalog_path)
    assert live.refresh() is False
    assert "hello" in live.current.sentences  # the last good catalog stays
    assert "checkpoints.yaml:" in live.error and "temperature must be > 0, got -1" in live.error
    demo_catalog_path.write_text(text)
    bump(demo_catalog_path)
    assert live.refresh() is True and live.error is None and "hello" not in live.current.sentences


def test_the_app_follows_the_catalog_file(demo_catalog_path, tmp_path):
    cat = load_catalog(demo_catalog_path)
    ctx = AppContext.create(catalog=cat, votes_path=tmp_path / "v.csv", data_dir=tmp_path)
    renderer = ctx.services.renderer
    compare_ui.sync_catalog(ctx)
    folder = old_renders(tmp_path, cat.checkpoints["feb1"].demo_dir)
    add_prerendered(cat, "feb1-old", folder=str(folder))
    time.sleep(0.01)
    compare_ui.sync_catalog(ctx)
    assert "feb1-old" in ctx.catalog.checkpoints and renderer.catalog is ctx.catalog
    demo_catalog_path.write_text("checkpoints: [")
    bump(demo_catalog_path)
    compare_ui.sync_catalog(ctx)
    assert "feb1-old" in ctx.catalog.checkpoints  # a bad edit changes nothing in use
    note = compare_ui.catalog_note(ctx, None)
    assert note["visible"] and "last good catalog stays in use" in note["value"] and "not valid YAML" in note["value"]
    assert str(tmp_path) not in note["value"]
