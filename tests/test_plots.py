"""Figures: test what is drawn (collections, lines, labels, limits), not pixels."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from workbench import analysis, audio, plots

SR = 24000


def tone(freq: float, seconds: float, lead: float = 0.0) -> np.ndarray:
    return np.concatenate([np.zeros(int(lead * SR), np.float32), audio.sine(freq, sr=SR, seconds=seconds)])


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    return [tone(150.0, 1.0, lead=0.2), tone(200.0, 1.5, lead=0.5)]


@pytest.fixture(scope="module")
def analysed(clips) -> list[analysis.ClipAnalysis]:
    return [analysis.analyse(y, sr=SR, embed=False) for y in clips]


def fills(ax) -> list[PolyCollection]:
    """The labelled filled areas (envelopes) of an axis."""
    return [c for c in ax.collections if isinstance(c, PolyCollection) and not c.get_label().startswith("_")]


def voiced_bars(ax) -> list[PolyCollection]:
    return [c for c in ax.collections if c.get_label().startswith("_voiced")]


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def assert_drawn_inside(fig: Figure, name: str) -> None:
    """Nothing an axes draws (title, labels, tick labels, legend, texts) runs off the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()  # laid out as when saved
    renderer, box = fig.canvas.get_renderer(), fig.bbox
    for ax in fig.axes:
        b = ax.get_tightbbox(renderer)
        inside = b.x0 >= box.x0 - 1 and b.x1 <= box.x1 + 1 and b.y0 >= box.y0 - 1 and b.y1 <= box.y1 + 1
        assert inside, f"{name}: {ax.get_title()!r} draws at {b.bounds}, outside the figure {box.bounds}"


def test_waveform_overlay_draws_one_envelope_per_clip(clips):
    fig = plots.waveform_overlay(clips, sr=SR, labels=["a", "b"], width_px=400, title="raw")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    polys = fills(ax)
    assert [p.get_label() for p in polys] == ["a", "b"]
    assert legend_texts(ax) == ["a", "b"]
    # decimated: ~2 points per bin, not one per sample
    for p in polys:
        assert len(p.get_paths()[0].vertices) <= 2 * 400 + 8
    assert ax.get_ylim() == (-1.0, 1.0)
    assert ax.get_xlabel() == "time (s)" and ax.get_title() == "raw"
    assert ax.get_xlim()[1] >= 2.0 - 0.05  # the longer clip's end


def test_overlay_envelope_spans_the_signal(clips):
    ax = plots.waveform_overlay(clips[:1], sr=SR, labels=["a"], width_px=200).axes[0]
    verts = fills(ax)[0].get_paths()[0].vertices
    assert verts[:, 1].max() == pytest.approx(0.5, abs=1e-3)
    assert verts[:, 1].min() == pytest.approx(-0.5, abs=1e-3)
    assert verts[:, 0].min() >= 0 and verts[:, 0].max() <= 1.2


def test_overlay_applies_time_maps(clips, analysed):
    maps = analysis.align(analysed, mode="trimmed")
    ax = plots.waveform_overlay(clips, sr=SR, labels=["a", "b"], time_maps=maps, width_px=300).axes[0]
    starts = [p.get_paths()[0].vertices[:, 0].min() for p in fills(ax)]
    # each clip's leading silence is moved before 0
    assert starts[0] == pytest.approx(-0.2, abs=0.02)
    assert starts[1] == pytest.approx(-0.5, abs=0.02)


def test_overlay_uses_the_axis_width_when_drawing_into_an_ax(clips):
    fig = Figure(figsize=(4, 2), dpi=100)
    ax = fig.add_subplot()
    assert plots.waveform_overlay(clips[:1], sr=SR, labels=["a"], ax=ax) is fig
    n_points = len(fills(ax)[0].get_paths()[0].vertices)
    assert n_points <= 2 * plots.axis_width_px(ax) + 8 < 2 * 400


def test_overlay_checks_its_arguments(clips):
    with pytest.raises(ValueError, match="labels"):
        plots.waveform_overlay(clips, sr=SR, labels=["only one"])
    with pytest.raises(ValueError, match="time maps"):
        plots.waveform_overlay(clips, sr=SR, labels=["a", "b"], time_maps=[])


def test_difference_of_identical_clips_is_flat_and_says_identical(clips):
    fig = plots.difference_plot(clips[0], clips[0].copy(), sr=SR, labels=("feb1", "revert"))
    ax = fig.axes[0]
    assert ax.get_title() == "feb1 vs revert: identical"
    verts = fills(ax)[0].get_paths()[0].vertices
    assert np.all(verts[:, 1] == 0)


def test_difference_shows_the_verdict_and_the_difference(clips):
    a = clips[0]
    b = a * np.float32(0.5)
    ax = plots.difference_plot(a, b, sr=SR, labels=("a", "b")).axes[0]
    assert ax.get_title().startswith("a vs b: different (max |diff| 0.25")
    assert ax.get_ylim()[1] == pytest.approx(0.25 * 1.1, rel=0.01)
    assert legend_texts(ax) == ["a − b"]


def test_difference_undoes_the_lag_of_an_aligned_match(clips):
    a = clips[0]
    delayed = np.concatenate([np.zeros(1000, np.float32), a])
    match = analysis.match_verdict(a, delayed, sr=SR, align=True)
    ax = plots.difference_plot(a, delayed, sr=SR, match=match).axes[0]
    assert "identical" in ax.get_title() and "1000 samples" in ax.get_title()
    assert np.all(fills(ax)[0].get_paths()[0].vertices[:, 1] == 0)


def test_spectrograms_share_one_colour_scale(analysed):
    mels = [a.mel_db for a in analysed]
    fig = plots.spectrograms(mels, sr=SR, hop_length=240, labels=["a", "b"], dynamic_range_db=70)
    images = [im for ax in fig.axes for im in ax.images if isinstance(im, AxesImage)]
    assert len(images) == 2
    top = max(float(m.max()) for m in mels)
    assert all(im.get_clim() == pytest.approx((top - 70, top)) for im in images)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["a", "b"]
    assert len(fig.axes) == 3  # two spectrograms and the colour bar
    assert fig.axes[2].get_ylabel() == "dB"
    # x extent is each clip's duration
    assert images[1].get_extent()[1] == pytest.approx(2.0, abs=0.02)


def test_spectrogram_time_offsets_shift_the_images(analysed):
    fig = plots.spectrograms([analysed[0].mel_db], sr=SR, hop_length=240, labels=["a"], time_offsets=[-0.2])
    assert fig.axes[0].images[0].get_extent()[0] == pytest.approx(-0.2)


def test_pitch_plot_in_hz_and_semitones(analysed):
    tracks = [a.f0 for a in analysed]
    ax = plots.pitch_plot(tracks, labels=["a", "b"]).axes[0]
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["a", "b"]
    assert np.nanmedian(lines[0].get_ydata()) == pytest.approx(150.0, abs=0.5)
    assert np.nanmedian(lines[1].get_ydata()) == pytest.approx(200.0, abs=0.5)
    assert ax.get_yscale() == "log"
    lo, hi = ax.get_ylim()
    assert lo < 150 and hi > 200
    # voiced regions: one bar collection per clip, one bar per voiced run
    bars = voiced_bars(ax)
    assert [b.get_label() for b in bars] == ["_voiced a", "_voiced b"]
    assert len(bars[1].get_paths()) == len(tracks[1].voiced_spans()) == 1

    ax = plots.pitch_plot(tracks, labels=["a", "b"], unit="semitones").axes[0]
    for ln in ax.get_lines()[:2]:
        assert np.nanmedian(ln.get_ydata()) == pytest.approx(0.0, abs=0.05)
    assert "semitones" in ax.get_ylabel()
    with pytest.raises(ValueError, match="unit"):
        plots.pitch_plot(tracks, labels=["a", "b"], unit="cents")


def test_pitch_figure_has_hz_and_semitone_panels(analysed):
    maps = analysis.align(analysed, mode="trimmed")
    fig = plots.pitch_figure([a.f0 for a in analysed], labels=["a", "b"], time_maps=maps)
    assert [ax.get_ylabel() for ax in fig.axes] == ["F0 (Hz)", "F0 (semitones re median)"]
    first_voiced = np.nanmin(
        fig.axes[0].get_lines()[1].get_xdata()[np.isfinite(fig.axes[0].get_lines()[1].get_ydata())]
    )
    assert first_voiced == pytest.approx(0.0, abs=0.03)


def test_energy_plot(analysed):
    contours = [(a.energy_times, a.energy_db) for a in analysed]
    ax = plots.energy_plot(contours, labels=["a", "b"], floor_db=-70).axes[0]
    assert [ln.get_label() for ln in ax.get_lines()] == ["a", "b"]
    assert ax.get_ylim()[0] == -70
    # a 0.5-amplitude sine sits at -9 dBFS
    assert np.median(ax.get_lines()[0].get_ydata()[30:100]) == pytest.approx(-9.03, abs=0.2)


def test_enhancement_diff_plot_shows_waveforms_spectra_and_their_difference(clips):
    plain = clips[1]
    louder = plain * np.float32(1.5)
    fig = plots.enhancement_diff_plot(plain, louder, sr=SR, labels=("none", "loud"))
    wave_ax, spec_ax, diff_ax = fig.axes
    assert [p.get_label() for p in fills(wave_ax)] == ["none", "loud"]
    assert [ln.get_label() for ln in spec_ax.get_lines()] == ["none", "loud"]
    delta = diff_ax.get_lines()[0].get_ydata()
    assert np.nanmedian(delta) == pytest.approx(20 * np.log10(1.5), abs=0.05)
    assert spec_ax.get_xscale() == "log"


def test_colours_put_the_reference_first():
    assert plots.colors_for(3, reference_first=True)[0] == plots.REFERENCE_COLOR
    assert len(set(plots.colors_for(5))) == 5


def test_save_png_writes_a_png(tmp_path, clips):
    path = plots.save_png(plots.waveform_overlay(clips, sr=SR, labels=["a", "b"]), tmp_path / "sub" / "o.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # a subprocess
def test_plots_never_touch_pyplot(tmp_path):
    """Figures are plain Figure objects: no global pyplot state, no plt.show()."""
    code = (
        "import sys, numpy as np; from workbench import plots;"
        "plots.save_png(plots.waveform_overlay([np.ones(100, np.float32) * 0.1], sr=100, labels=['a']), 'x.png');"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=env)
    assert (tmp_path / "x.png").is_file()


def test_spectrum_overlay_draws_each_spectrum_and_the_differences_to_the_first():
    bright = audio.sine(3000, sr=SR, seconds=1.0) + audio.sine(200, sr=SR, seconds=1.0)
    dull = audio.sine(200, sr=SR, seconds=1.0)
    spectra = [
        analysis.average_spectrum(analysis.power_spectrogram(y, sr=SR), sr=SR) for y in (bright, dull, bright * 0.5)
    ]
    fig = plots.spectrum_overlay(spectra, sr=SR, labels=["feb1", "apr24", "quiet"])
    top, bottom = fig.axes
    assert [line.get_label() for line in top.get_lines()] == ["feb1", "apr24", "quiet"]
    diffs = {line.get_label(): line for line in bottom.get_lines() if line.get_label() in ("apr24", "quiet")}
    assert set(diffs) == {"apr24", "quiet"}  # the first clip has no difference line of its own
    f, d = diffs["quiet"].get_data()
    assert np.nanmedian(d) == pytest.approx(-6.0, abs=0.3)  # half the amplitude is 6 dB less everywhere
    f, d = diffs["apr24"].get_data()
    at_3k = np.argmin(np.abs(np.asarray(f) - 3000))
    assert d[at_3k] < -30  # the dull clip lacks the 3 kHz tone
    assert "Difference to feb1" in bottom.get_title() and bottom.get_xlim()[1] == SR / 2


def test_envelope_pyramid_keeps_every_peak_and_matches_the_exact_envelope(tmp_path):
    rng = np.random.default_rng(1)
    y = (0.1 * rng.standard_normal(4096 * 175)).astype(np.float32)  # 29.9 s, a whole number of coarse blocks
    y[123_457] = 0.97  # one-sample spikes must survive any decimation
    y[600_001] = -0.95
    pyr = analysis.EnvelopePyramid.build(y, sr=SR)
    assert [pyr.block(k) for k in range(3)] == [16, 64, 256] and len(pyr.levels[0][0]) == len(y) // 16
    t, lo, hi = pyr.envelope(1000)
    assert len(t) <= 1000 and hi.max() == pytest.approx(0.97) and lo.min() == pytest.approx(-0.95)
    # columns made of whole blocks agree with a scan of every sample
    n_cols = 175
    t, lo, hi = pyr.envelope(n_cols)
    t2, lo2, hi2 = analysis.envelope(y, sr=SR, n_bins=n_cols)
    assert np.allclose(lo, lo2) and np.allclose(hi, hi2) and np.allclose(t, t2)
    # zoom: only the range, exact from the samples when columns are finer than a block
    t, lo, hi = pyr.envelope(800, t0=5.0, t1=5.1, y=y)
    assert t[0] >= 5.0 and t[-1] <= 5.1 and len(t) == 800
    t, lo, hi = pyr.envelope(100, t0=5.1443, t1=5.1445)
    assert len(t) >= 1 and abs(t[0] - 5.1444) < 0.001  # no samples given: the finest level's blocks
    loaded = analysis.EnvelopePyramid.load(pyr.save(tmp_path / "p.env.npz"))
    assert loaded.n == pyr.n and all(np.array_equal(a[0], b[0]) for a, b in zip(loaded.levels, pyr.levels, strict=True))


def test_overlay_draws_from_pyramids_and_zooms(clips):
    pyramids = [analysis.EnvelopePyramid.build(y, sr=SR) for y in clips]
    fig = plots.waveform_overlay(clips, sr=SR, labels=["a", "b"], pyramids=pyramids, time_range=(0.4, 0.9))
    ax = fig.axes[0]
    assert ax.get_xlim() == (0.4, 0.9)
    polys = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(polys) == 2
    xs = polys[1].get_paths()[0].vertices[:, 0]
    assert xs.min() >= 0.39 and xs.max() <= 0.91  # only the zoomed range was read


def test_narrow_figures_are_drawn_for_a_phone_and_desktop_figures_stay_as_they_were(analysed, clips):
    """``narrow=True``: 4.2 inches wide (text about as large as the page's on a phone), taller
    than a desktop figure of the same kind, spectrograms stacked; the default is unchanged."""
    contours = [(a.energy_times, a.energy_db) for a in analysed]
    spectra = [analysis.average_spectrum(a.power, sr=SR, mask=a.speech) for a in analysed]
    tracks = [a.f0 for a in analysed]
    mels = [a.mel_db for a in analysed]
    kinds = {
        "overlay": lambda **kw: plots.waveform_overlay(clips, sr=SR, labels=["a", "b"], title="Waveforms", **kw),
        "difference": lambda **kw: plots.difference_plot(clips[0], clips[0], sr=SR, **kw),
        "spectrograms": lambda **kw: plots.spectrograms(mels, sr=SR, hop_length=240, labels=["a", "b"], **kw),
        "pitch": lambda **kw: plots.pitch_figure(tracks, labels=["a", "b"], **kw),
        "energy": lambda **kw: plots.energy_plot(contours, labels=["a", "b"], **kw),
        "spectrum": lambda **kw: plots.spectrum_overlay(spectra, sr=SR, labels=["a", "b"], **kw),
        "enhancement": lambda **kw: plots.enhancement_diff_plot(clips[0], clips[0] * 0.5, sr=SR, **kw),
    }
    for name, draw in kinds.items():
        wide, narrow = draw(), draw(narrow=True)
        if name != "spectrograms":  # its desktop width grows with the number of clips
            assert wide.get_figwidth() == pytest.approx(plots.WIDE_IN), name
        assert narrow.get_figwidth() == pytest.approx(plots.NARROW_IN), name
        w_ratio = wide.get_figheight() / wide.get_figwidth()
        assert narrow.get_figheight() / narrow.get_figwidth() > 2 * w_ratio, name  # taller for its width
        assert len(narrow.axes) == len(wide.axes), name  # the same panels, only laid out for the width
        assert_drawn_inside(wide, name)
        assert_drawn_inside(narrow, f"{name} (narrow)")
    # desktop spectrograms side by side; phone ones one above the other, each with its time axis
    wide, narrow = kinds["spectrograms"](), kinds["spectrograms"](narrow=True)
    w0, w1 = (ax.get_position() for ax in wide.axes[:2])
    n0, n1 = (ax.get_position() for ax in narrow.axes[:2])
    assert w0.y0 == pytest.approx(w1.y0) and w1.x0 > w0.x1
    assert n0.x0 == pytest.approx(n1.x0) and n1.y1 < n0.y0
    assert narrow.axes[1].get_xlabel() == "time (s)" and narrow.axes[0].get_xlabel() == ""
    # legends: at most 2 columns on a phone
    three = plots.energy_plot([contours[0]] * 3, labels=["a", "b", "c"], narrow=True)
    assert three.axes[0].get_legend()._ncols == 2
