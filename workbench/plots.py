"""Figures for comparing clips, built from :mod:`workbench.analysis` results.

Every function takes an optional ``ax`` (or ``axes``) to draw into and returns the
:class:`matplotlib.figure.Figure`; none calls ``plt.show()`` or touches pyplot's global
state (figures are plain ``Figure`` objects, rendered by Agg when saved), so they work in a
server, a test and a notebook alike. Long signals are drawn as min/max envelopes at
the axis' pixel width (:func:`workbench.analysis.envelope`), never sample by sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from . import analysis
from .analysis import F0Track, MatchResult, TimeMap

#: colour of the reference recording; checkpoints take the tab10 colours in order
REFERENCE_COLOR = "#555555"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
DPI = 100
#: width (inches) of the comparison figures: 12 on a desktop; ``narrow=True`` draws them
#: 4.2 wide for a phone, so at its ~330 px wide column the text is about as large as the
#: page's (a 12-inch figure squeezed into it shrinks 10 pt labels to 4 px), and taller,
#: with panels stacked instead of side by side
WIDE_IN, NARROW_IN = 12.0, 4.2
#: pixels per inch when saving a narrow figure: sharp on a phone's 2-3x screen
NARROW_DPI = 200


def colors_for(n: int, *, reference_first: bool = False) -> list[str]:
    """``n`` distinct colours; with ``reference_first`` the first is the reference's grey."""
    out = [REFERENCE_COLOR] if reference_first and n else []
    out += [PALETTE[i % len(PALETTE)] for i in range(n - len(out))]
    return out


def _figure(width_in: float, height_in: float, nrows: int = 1, ncols: int = 1, **kw) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _figure_of(ax: Axes) -> Figure:
    """The figure that holds ``ax`` (this module draws no subfigures)."""
    return cast(Figure, ax.figure)


def _ax_or_new(ax: Axes | None, width_in: float = WIDE_IN, height_in: float = 3.2) -> tuple[Figure, Axes]:
    if ax is not None:
        return _figure_of(ax), ax
    fig, axes = _figure(width_in, height_in)
    return fig, axes[0, 0]


def _legend_cols(n: int, narrow: bool) -> int:
    """Legend columns: up to 5 in a row on a wide figure, 2 on a narrow one."""
    return max(1, min(n, 2 if narrow else 5))


def _wrap_titles(fig: Figure) -> None:
    """Let long titles wrap at the figure's edge instead of running off a narrow figure."""
    for ax in fig.axes:
        ax.title.set_wrap(True)


def axis_width_px(ax: Axes) -> int:
    """Width of ``ax`` in pixels at the figure's dpi (the envelope resolution)."""
    fig = _figure_of(ax)
    return max(16, int(round(ax.get_position().width * fig.get_figwidth() * fig.dpi)))


def _maps(time_maps: Sequence[TimeMap] | None, n: int) -> list[TimeMap | None]:
    if time_maps is None:
        return [None] * n
    if len(time_maps) != n:
        raise ValueError(f"got {len(time_maps)} time maps for {n} signals")
    return list(time_maps)


def _apply(tm: TimeMap | None, t: Any) -> Any:
    """Times ``t`` (s, a float or an array) through the alignment map ``tm`` (None: unchanged)."""
    return t if tm is None else tm(t)


def _source_time(tm: TimeMap | None, t: float) -> float:
    """The clip's own time shown at display time ``t`` (time maps only ever move forward)."""
    if tm is None:
        return t
    if t < tm.dst_s[0]:
        return float(t - tm.dst_s[0] + tm.src_s[0])
    if t > tm.dst_s[-1]:
        return float(t - tm.dst_s[-1] + tm.src_s[-1])
    return float(np.interp(t, tm.dst_s, tm.src_s))


def waveform_overlay(
    signals: Sequence[np.ndarray],
    *,
    sr: int,
    labels: Sequence[str],
    time_maps: Sequence[TimeMap] | None = None,
    colors: Sequence[str] | None = None,
    width_px: int | None = None,
    title: str | None = None,
    ax: Axes | None = None,
    pyramids: Sequence[analysis.EnvelopePyramid | None] | None = None,
    time_range: tuple[float, float] | None = None,
    narrow: bool = False,
) -> Figure:
    """Several waveforms on one time axis, each as a translucent min/max envelope.

    Parameters
    ----------
    signals : sequence of np.ndarray, each shape ``(n_i,)``, all at ``sr`` Hz
    sr : sample rate (Hz)
    labels : legend label per signal
    time_maps : per-signal :class:`~workbench.analysis.TimeMap` placing it on the shared
        axis (see :func:`workbench.analysis.align`); identity when None
    colors : per-signal colours (default :func:`colors_for`)
    width_px : envelope bins per signal (default: the axis' width in pixels)
    title : axis title
    ax : draw here instead of a new 12 x 3.2 inch figure
    pyramids : per-signal :class:`~workbench.analysis.EnvelopePyramid` (or None); when
        given, the envelope is read from it instead of scanning every sample
    time_range : ``(t0, t1)`` seconds on the shared axis to show (zoom); default all
    narrow : a new figure 4.2 x 3.2 inches instead (for a phone, see :data:`NARROW_IN`)

    Returns
    -------
    Figure
        One filled envelope (a ``PolyCollection``) per signal, labelled for the legend.
    """
    if ax is None:
        # fixed margins instead of constrained layout: one axis needs no solver, and the
        # overlay is redrawn on every zoom (the solver was a third of the drawing time)
        fig = Figure(figsize=(NARROW_IN if narrow else WIDE_IN, 3.2), dpi=DPI)
        ax = fig.add_subplot()
        if narrow:
            fig.subplots_adjust(left=0.17, right=0.97, bottom=0.15, top=0.84)
        else:
            fig.subplots_adjust(left=0.065, right=0.99, bottom=0.15, top=0.9)
    else:
        fig = _figure_of(ax)
    n = len(signals)
    if len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for {n} signals")
    colors = list(colors) if colors is not None else colors_for(n)
    width_px = width_px or axis_width_px(ax)
    pyramids = list(pyramids) if pyramids is not None else [None] * n
    for y, label, tm, color, pyr in zip(signals, labels, _maps(time_maps, n), colors, pyramids, strict=True):
        if time_range is None and pyr is None:
            t, lo, hi = analysis.envelope(y, sr=sr, n_bins=width_px)
        else:
            pyr = pyr or analysis.EnvelopePyramid.build(y, sr=sr)
            t0, t1 = (
                (None, None)
                if time_range is None
                else (_source_time(tm, time_range[0]), _source_time(tm, time_range[1]))
            )
            t, lo, hi = pyr.envelope(width_px, t0=t0 or 0.0, t1=t1, y=y)
        ax.fill_between(_apply(tm, t), lo, hi, color=color, alpha=0.45, linewidth=0.4, label=label)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    ax.set_ylim(-1.0, 1.0)
    ax.axhline(0.0, color="0.7", linewidth=0.5, zorder=0)
    ax.margins(x=0.01)
    if time_range is not None:
        ax.set_xlim(*time_range)
    if n:
        ax.legend(loc="upper right", fontsize="small", ncols=_legend_cols(n, narrow))
    if title:
        ax.set_title(title, wrap=narrow)
    return fig


def difference_plot(
    a: np.ndarray,
    b: np.ndarray,
    *,
    sr: int,
    labels: tuple[str, str] = ("a", "b"),
    match: MatchResult | None = None,
    width_px: int | None = None,
    ax: Axes | None = None,
    narrow: bool = False,
) -> Figure:
    """The sample difference ``a - b`` over time, with the exact-match verdict as title.

    Parameters
    ----------
    a, b : np.ndarray, shapes ``(n,)`` and ``(m,)`` at ``sr`` Hz
    sr : sample rate (Hz)
    labels : names of ``a`` and ``b``
    match : result of :func:`workbench.analysis.match_verdict`; its lag is undone on
        ``b`` before subtracting, and its verdict is shown (computed here when None)
    width_px : envelope resolution (default: axis width in pixels)
    ax : draw here instead of a new figure
    narrow : a new figure 4.2 inches wide and taller (for a phone)

    Returns
    -------
    Figure
        A filled min/max envelope of the difference, symmetric y limits.
    """
    fig, ax = _ax_or_new(ax, NARROW_IN if narrow else WIDE_IN, 3.2 if narrow else 2.6)
    if match is None:
        match = analysis.match_verdict(a, b, sr=sr)
    b = analysis.shift(np.asarray(b, dtype=np.float32), match.lag_samples)
    n = max(len(a), len(b))
    d = np.zeros(n, dtype=np.float32)
    d[: len(a)] += a
    d[: len(b)] -= b
    t, lo, hi = analysis.envelope(d, sr=sr, n_bins=width_px or axis_width_px(ax))
    color = "#2ca02c" if match.verdict == "identical" else "#d62728"
    ax.fill_between(t, lo, hi, color=color, alpha=0.7, linewidth=0.4, label=f"{labels[0]} − {labels[1]}")
    lim = max(float(np.max(np.abs(d))), 1e-6) * 1.1
    ax.set_ylim(-lim, lim)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("difference")
    ax.margins(x=0.01)
    ax.legend(loc="upper right", fontsize="small")
    ax.set_title(f"{labels[0]} vs {labels[1]}: {match.describe()}", wrap=narrow)
    return fig


def _mel_ticks(n_mels: int, sr: int) -> tuple[list[float], list[str]]:
    import librosa

    centres = librosa.mel_frequencies(n_mels=n_mels + 2, fmin=0.0, fmax=sr / 2)[1:-1]
    pos, lab = [], []
    for f in (250, 500, 1000, 2000, 4000, 8000, 16000):
        if f < sr / 2:
            pos.append(float(np.interp(f, centres, np.arange(n_mels))))
            lab.append(f"{f // 1000}k" if f >= 1000 else str(f))
    return pos, lab


def spectrograms(
    mels: Sequence[np.ndarray],
    *,
    sr: int,
    hop_length: int,
    labels: Sequence[str],
    time_offsets: Sequence[float] | None = None,
    dynamic_range_db: float = 80.0,
    axes: Sequence[Axes] | None = None,
    narrow: bool = False,
) -> Figure:
    """Log-mel spectrograms side by side (stacked when ``narrow``) with one shared colour scale.

    Parameters
    ----------
    mels : sequence of np.ndarray, each ``(n_mels, n_frames_i)`` in dB re 1.0
        (:func:`workbench.analysis.log_mel`)
    sr : sample rate (Hz); hop_length : frame hop (samples)
    labels : title per spectrogram
    time_offsets : per-spectrogram shift of the time axis (s), e.g. ``-leading silence``
    dynamic_range_db : colour range below the loudest value over all spectrograms
    axes : one axis per spectrogram (default: a new figure, one column each)
    narrow : a new figure 4.2 inches wide with one row per spectrogram (for a phone)

    Returns
    -------
    Figure
        One image per spectrogram, all with the same ``clim``, and one colour bar.
    """
    n = len(mels)
    if axes is None and narrow:
        # each on its own time axis, as side by side on a desktop (clips differ in length)
        fig, grid = _figure(NARROW_IN, 0.6 + 2.0 * max(n, 1), max(n, 1), 1, sharey=True)
        axes = list(grid[:, 0])
    elif axes is None:
        fig, grid = _figure(max(4.0, 3.6 * n), 3.2, 1, max(n, 1), sharey=True)
        axes = list(grid[0])
    else:
        fig = _figure_of(axes[0])
    vmax = max(float(np.max(m)) for m in mels) if n else 0.0
    vmin = vmax - dynamic_range_db
    offsets = list(time_offsets) if time_offsets is not None else [0.0] * n
    img = None
    for m, label, ax, off in zip(mels, labels, axes, offsets, strict=True):
        dur = m.shape[1] * hop_length / sr
        img = ax.imshow(
            m,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=vmin,
            vmax=vmax,
            extent=(off, off + dur, -0.5, m.shape[0] - 0.5),
            interpolation="nearest",
        )
        ax.set_title(label, fontsize="medium")
        if not narrow or ax is axes[-1]:  # stacked: one time label, at the bottom
            ax.set_xlabel("time (s)")
        pos, lab = _mel_ticks(m.shape[0], sr)
        ax.set_yticks(pos, lab)
    if img is not None:
        for ax in axes if narrow else axes[:1]:
            ax.set_ylabel("Hz (mel scale)" if narrow else "frequency (Hz, mel scale)")
        fig.colorbar(img, ax=list(axes), label="dB", shrink=0.9, pad=0.01)
    return fig


def pitch_plot(
    tracks: Sequence[F0Track],
    *,
    labels: Sequence[str],
    unit: str = "Hz",
    time_maps: Sequence[TimeMap] | None = None,
    colors: Sequence[str] | None = None,
    ax: Axes | None = None,
    narrow: bool = False,
) -> Figure:
    """F0 contours overlaid, with each clip's voiced regions as bars along the bottom.

    Parameters
    ----------
    tracks : :class:`~workbench.analysis.F0Track` per clip
    labels : legend label per clip
    unit : ``Hz`` (log axis) or ``semitones`` (relative to each clip's own median F0,
        so contours of different voices compare by shape: flat vs inflected)
    time_maps : per-clip time maps onto the shared axis; identity when None
    colors : per-clip colours
    ax : draw here instead of a new figure
    narrow : a new figure 4.2 inches wide (for a phone); a legend of 2 columns

    Returns
    -------
    Figure
        One line per clip (NaN gaps where unvoiced) and one bar collection per clip.
    """
    if unit not in ("Hz", "semitones"):
        raise ValueError(f"unit must be 'Hz' or 'semitones', got {unit!r}")
    fig, ax = _ax_or_new(ax, NARROW_IN if narrow else WIDE_IN, 3.0)
    n = len(tracks)
    colors = list(colors) if colors is not None else colors_for(n)
    bar = 0.025
    all_values: list[np.ndarray] = []
    for i, (tr, label, tm, color) in enumerate(zip(tracks, labels, _maps(time_maps, n), colors, strict=True)):
        t = _apply(tm, tr.times)
        if unit == "Hz":
            values = tr.f0_hz
        else:
            voiced = tr.f0_hz[tr.voiced]
            ref = float(np.median(voiced)) if voiced.size else 100.0
            values = analysis.hz_to_semitones(tr.f0_hz, ref_hz=ref)
        ax.plot(t, values, color=color, linewidth=1.4, label=label)
        all_values.append(values[np.isfinite(values)])
        spans = [(float(_apply(tm, s)), float(_apply(tm, e) - _apply(tm, s))) for s, e in tr.voiced_spans()]
        ax.broken_barh(
            spans,
            (0.01 + i * (bar + 0.005), bar),
            facecolors=color,
            alpha=0.8,
            transform=ax.get_xaxis_transform(),
            label=f"_voiced {label}",  # leading underscore: not in the legend
        )
    # room below the data for the voiced-region bars
    finite = [v for v in all_values if v.size]
    if finite:
        values = np.concatenate(finite)
        lo, hi = float(values.min()), float(values.max())
        if unit == "Hz":
            lo, hi = np.log(lo), np.log(hi)
        span = max(hi - lo, 0.05 if unit == "Hz" else 1.0)
        lo, hi = lo - span * (0.1 + 0.035 * n) / 0.8, hi + span * 0.1
        if unit == "Hz":
            lo, hi = np.exp(lo), np.exp(hi)
        ax.set_ylim(lo, hi)
    if unit == "Hz":
        from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

        ax.set_yscale("log")
        ax.set_ylabel("F0 (Hz)")
        ax.yaxis.set_major_locator(FixedLocator([50, 60, 70, 80, 90, 100, 120, 150, 200, 250, 300, 400, 500, 600]))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_ylabel("F0 (st re median)" if narrow else "F0 (semitones re median)")
        ax.axhline(0.0, color="0.7", linewidth=0.5, zorder=0)
    ax.set_xlabel("time (s)" if narrow else "time (s)   bars: voiced regions")
    ax.margins(x=0.01)
    if n:
        ax.legend(loc="upper right", fontsize="small", ncols=_legend_cols(n, narrow))
    return fig


def pitch_figure(
    tracks: Sequence[F0Track],
    *,
    labels: Sequence[str],
    time_maps: Sequence[TimeMap] | None = None,
    colors: Sequence[str] | None = None,
    narrow: bool = False,
) -> Figure:
    """Two stacked pitch panels sharing the time axis: Hz (top) and semitones (bottom).

    ``narrow``: 4.2 x 6.4 inches instead of 12 x 5.6 (for a phone).
    """
    fig, grid = _figure(NARROW_IN if narrow else WIDE_IN, 6.4 if narrow else 5.6, 2, 1, sharex=True)
    for ax, unit in ((grid[0, 0], "Hz"), (grid[1, 0], "semitones")):
        pitch_plot(tracks, labels=labels, unit=unit, time_maps=time_maps, colors=colors, ax=ax, narrow=narrow)
    grid[0, 0].set_xlabel("")
    return fig


def energy_plot(
    contours: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    labels: Sequence[str],
    time_maps: Sequence[TimeMap] | None = None,
    colors: Sequence[str] | None = None,
    floor_db: float = -80.0,
    ax: Axes | None = None,
    narrow: bool = False,
) -> Figure:
    """Energy (short-time RMS) contours overlaid.

    Parameters
    ----------
    contours : per clip ``(times, level_db)`` as from :func:`workbench.analysis.energy_contour`
    labels : legend label per clip
    time_maps : per-clip time maps; identity when None
    colors : per-clip colours
    floor_db : lower y limit (dBFS)
    ax : draw here instead of a new figure
    narrow : a new figure 4.2 inches wide and taller (for a phone)
    """
    fig, ax = _ax_or_new(ax, NARROW_IN if narrow else WIDE_IN, 3.2 if narrow else 2.6)
    n = len(contours)
    colors = list(colors) if colors is not None else colors_for(n)
    top = floor_db + 10
    for (t, level), label, tm, color in zip(contours, labels, _maps(time_maps, n), colors, strict=True):
        ax.plot(_apply(tm, t), level, color=color, linewidth=1.0, label=label)
        top = max(top, float(np.max(level)))
    ax.set_ylim(floor_db, top + 3)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("RMS level (dBFS)")
    ax.margins(x=0.01)
    if n:
        ax.legend(loc="upper right", fontsize="small", ncols=_legend_cols(n, narrow))
    return fig


def spectrum_overlay(
    spectra: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    sr: int,
    labels: Sequence[str],
    colors: Sequence[str] | None = None,
    first: int = 0,
    axes: Sequence[Axes] | None = None,
    narrow: bool = False,
) -> Figure:
    """Long-term average spectra of several clips, and each one's difference to one clip.

    Parameters
    ----------
    spectra : per clip ``(freqs_hz, level_db)`` from :func:`workbench.analysis.average_spectrum`
    sr : sample rate (Hz); the x axis ends at ``sr / 2``
    labels : legend label per clip
    colors : per-clip colours (default :func:`colors_for`)
    first : index of the clip the differences are taken to (its own line is left out)
    axes : two axes (spectra, differences); default a new 12 x 5.6 inch figure
    narrow : a new 4.2 x 6.4 inch figure instead (for a phone); long titles wrap

    Returns
    -------
    Figure
        Top: one line per clip (dB vs Hz, log frequency). Bottom: ``level - level[first]``
        in dB per other clip, only where either is within 70 dB of its peak (audible), with
        a zero line: below zero = less energy there than the first clip.
    """
    n = len(spectra)
    if len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for {n} spectra")
    if axes is None:
        fig, grid = _figure(NARROW_IN if narrow else WIDE_IN, 6.4 if narrow else 5.6, 2, 1, sharex=True)
        axes = [grid[0, 0], grid[1, 0]]
    else:
        fig = _figure_of(axes[0])
    colors = list(colors) if colors is not None else colors_for(n)
    top, bottom = axes
    for (freqs, level), label, color in zip(spectra, labels, colors, strict=True):
        top.semilogx(freqs[1:], level[1:], color=color, linewidth=1.2, label=label)
    f0, l0 = spectra[first]
    for i, ((freqs, level), label, color) in enumerate(zip(spectra, labels, colors, strict=True)):
        if i == first or len(level) != len(l0):
            continue
        audible = np.maximum(level, l0) > max(float(np.max(level)), float(np.max(l0))) - 70
        bottom.semilogx(freqs[1:], np.where(audible, level - l0, np.nan)[1:], color=color, linewidth=1.1, label=label)
    bottom.axhline(0.0, color="0.5", linewidth=0.8)
    top.set_title("Long-term average spectrum (speech frames)")
    top.set_ylabel("average level (dB)")
    top.legend(loc="lower left", fontsize="small", ncols=_legend_cols(n, narrow))
    bottom.set_title(f"Difference to {labels[first]} (dB): below 0 = less energy at that frequency")
    bottom.set_ylabel("dB")
    bottom.set_xlabel("frequency (Hz)")
    bottom.set_xlim(50, sr / 2)
    if narrow:
        _wrap_titles(fig)
    return fig


def enhancement_diff_plot(
    plain: np.ndarray,
    enhanced: np.ndarray,
    *,
    sr: int,
    labels: tuple[str, str] = ("none", "enhanced"),
    axes: Sequence[Axes] | None = None,
    narrow: bool = False,
) -> Figure:
    """The same clip without and with a preset: waveforms overlaid, and both long-term spectra.

    Parameters
    ----------
    plain, enhanced : np.ndarray, shapes ``(n,)`` and ``(m,)`` at ``sr`` Hz
    sr : sample rate (Hz)
    labels : names of the two versions
    axes : two axes (waveforms, spectra); default a new figure
    narrow : a new 4.2 x 6.4 inch figure instead of 12 x 5.6 (for a phone)

    Returns
    -------
    Figure
        Left/top: overlaid envelopes. Right/bottom: long-term average spectra (dB vs Hz,
        log frequency) of both and their difference on a twin axis.
    """
    if axes is None:
        fig, grid = _figure(NARROW_IN if narrow else WIDE_IN, 6.4 if narrow else 5.6, 2, 1)
        axes = [grid[0, 0], grid[1, 0]]
    else:
        fig = _figure_of(axes[0])
    colors = colors_for(2)
    waveform_overlay([plain, enhanced], sr=sr, labels=list(labels), colors=colors, ax=axes[0], narrow=narrow)
    spec_ax = axes[1]
    levels = []
    for y, label, color in zip((plain, enhanced), labels, colors, strict=True):
        y = np.asarray(y, dtype=np.float32)
        power = analysis.power_spectrogram(y, sr=sr)
        _, level = analysis.energy_contour(y, sr=sr)
        freqs, ltas = analysis.average_spectrum(power, sr=sr, mask=analysis.speech_mask(level))
        spec_ax.semilogx(freqs[1:], ltas[1:], color=color, linewidth=1.2, label=label)
        levels.append(ltas)
    diff_ax = spec_ax.twinx()
    audible = np.maximum(levels[0], levels[1]) > max(float(np.max(levels[0])), float(np.max(levels[1]))) - 70
    delta = np.where(audible, levels[1] - levels[0], np.nan)[1:]
    diff_ax.semilogx(freqs[1:], delta, color="0.3", linewidth=0.9, linestyle="--", label="difference")
    if np.isfinite(delta).any():
        lo, hi = float(np.nanmin(delta)), float(np.nanmax(delta))
        mid, half = (lo + hi) / 2, max((hi - lo) / 2 + 1.0, 6.0)
        diff_ax.set_ylim(mid - half, mid + half)
    diff_ax.ticklabel_format(axis="y", useOffset=False)
    diff_ax.set_ylabel(f"{labels[1]} − {labels[0]} (dB, dashed)", color="0.3")
    spec_ax.set_xlabel("frequency (Hz)")
    spec_ax.set_ylabel("average level (dB)")
    spec_ax.set_xlim(50, sr / 2)
    spec_ax.legend(loc="lower left", fontsize="small")
    return fig


def save_png(fig: Figure, path: str | Path, *, dpi: int | None = None) -> Path:
    """Write ``fig`` as PNG to ``path`` (folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # zlib level 1: a third of the default's encoding time for files about 1.2x larger (served locally)
    fig.savefig(path, format="png", dpi=dpi or fig.dpi, pil_kwargs={"compress_level": 1})
    return path


# --------------------------------------------------------------------------- Results figures
# Built from a :class:`workbench.stats.Summary` (the Results tab and the HTML report).


def _no_data(ax: Axes, text: str = "No votes yet") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color="#666", transform=ax.transAxes)
    ax.set_axis_off()


def _pct(x: float) -> str:
    return "—" if not np.isfinite(x) else f"{100 * x:.0f}%"


def verdict_figure(summary, ax: Axes | None = None) -> Figure:
    """Each pair's preference with the interval its verdict uses (forest plot; green = settled)."""
    p = summary.pairs
    fig, ax = _ax_or_new(ax, 7, 1.2 + 0.55 * max(1, len(p)))
    if p.empty or not (p["used"] > 0).any():
        _no_data(ax)
        return fig
    y = np.arange(len(p))[::-1]
    rate = p["win_rate"].to_numpy(float)
    lo, hi = p["verdict_low"].to_numpy(float), p["verdict_high"].to_numpy(float)
    colors = ["#2b7a3d" if s else "#444" for s in p["settled"]]
    ax.axvline(0.5, color="#999", ls="--", lw=1)
    ax.hlines(y, lo, hi, colors=colors, lw=3, alpha=0.6)
    ax.scatter(rate, y, c=colors, s=60, zorder=3)
    ax.set_yticks(y, [f"{a} vs {b}" for a, b in zip(p["item_a"], p["item_b"], strict=True)])
    for yi, r in zip(y, p.itertuples(index=False), strict=True):
        ax.annotate(
            f"{r.wins_a}–{r.wins_b}–{r.ties}  n_eff {r.n_eff:.1f}  {r.verdict}",
            (1.01, yi),
            xycoords=("axes fraction", "data"),
            va="center",
            fontsize=9,
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, len(p) - 0.4)
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set_xlabel("share of decisive votes for the first item, with the verdict's interval; green = settled")
    ax.set_title("Head to head")
    return fig


def ranking_figure(summary, ax: Axes | None = None) -> Figure:
    """Bradley-Terry strengths (log scale) with cluster-bootstrap intervals, tiers top down."""
    r = summary.ranking
    fig, ax = _ax_or_new(ax, 7, 1.5 + 0.7 * max(1, len(r)))
    if r.empty:
        _no_data(ax)
        return fig
    y = np.arange(len(r))[::-1]
    s = r["strength"].to_numpy(float)
    lo, hi = r["ci_low"].to_numpy(float), r["ci_high"].to_numpy(float)
    color = [PALETTE[(int(t) - 1) % len(PALETTE)] for t in r["tier"]]
    ax.axvline(1.0, color="#999", ls="--", lw=1)
    ok = np.isfinite(lo) & np.isfinite(hi)
    ax.hlines(y[ok], lo[ok], hi[ok], colors=np.asarray(color)[ok], lw=3, alpha=0.6)
    ax.scatter(s, y, c=color, s=60, zorder=3)
    ax.set_xscale("log")
    _log_ticks(ax, np.concatenate([s, lo, hi]))
    mixed = r["kind"].nunique() > 1
    labels = [
        f"{row.item}{'*' if row.preliminary else ''}{' (' + row.kind + ')' if mixed else ''}\n"
        f"tier {row.tier}; these raters: {row.tier_these}"
        for row in r.itertuples(index=False)
    ]
    ax.set_yticks(y, labels)
    ax.set_ylim(-0.6, len(r) - 0.4)
    ax.set_xlabel("Bradley-Terry strength (geometric mean 1)\n95% cluster-bootstrap interval")
    ax.set_title("Ranking, best first (* preliminary)")
    return fig


def _log_ticks(ax: Axes, values: np.ndarray) -> None:
    """Readable ticks (1, 1.5, 2, 3, ...) on a log x axis spanning ``values``."""
    from matplotlib.ticker import FixedLocator, NullLocator

    v = values[np.isfinite(values) & (values > 0)]
    if not v.size:
        return
    lo, hi = v.min() / 1.05, v.max() * 1.05
    nice = sorted({m * 10.0**e for e in range(-3, 4) for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)})
    ticks = [t for t in nice if lo <= t <= hi]
    while len(ticks) > 8:
        ticks = ticks[::2]
    if len(ticks) < 2:
        return
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(lambda x, _: f"{x:g}")


def score_heatmap(summary, ax: Axes | None = None) -> Figure:
    """Items x references coloured by score (blue: wins there, red: loses there)."""
    hm = summary.heatmap
    refs = list(dict.fromkeys(hm["level"])) if not hm.empty else []
    items = summary.items
    # at least 4 in wide: the two-line title fits over one reference
    fig, ax = _ax_or_new(ax, max(4.0, 1.8 + 1.3 * len(refs)), 1.3 + 0.6 * max(1, len(items)))
    if hm.empty:
        _no_data(ax)
        return fig
    grid = np.full((len(items), len(refs)), np.nan)
    for r in hm.itertuples(index=False):
        grid[items.index(r.item), refs.index(r.level)] = r.score
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="RdBu", vmin=0, vmax=1, aspect="auto")
    for r in hm.itertuples(index=False):
        i, j = items.index(r.item), refs.index(r.level)
        ax.text(
            j,
            i,
            f"{r.score:.0%}\n{r.wins}–{r.losses}–{r.ties}",
            ha="center",
            va="center",
            fontsize=9,
            color="white" if abs(r.score - 0.5) > 0.3 else "black",
        )
    ax.set_xticks(range(len(refs)), refs, rotation=30, ha="right")
    ax.set_yticks(range(len(items)), items)
    ax.set_title("Score by reference (exploratory)\n(wins + ties/2) / votes")
    fig.colorbar(im, ax=ax, shrink=0.8, format=lambda v, _: f"{v:.0%}")
    return fig


def reasons_chart(summary, ax: Axes | None = None) -> Figure:
    """Reason tags: votes each item won (right) and lost (left) that gave the tag (counts, no tests)."""
    rs = summary.reasons
    tags = list(dict.fromkeys(rs["tag"])) if not rs.empty else []
    items = summary.items
    fig, ax = _ax_or_new(ax, 7, 1.2 + 0.5 * max(1, len(tags)) * max(1, min(len(items), 3)) / 1.5)
    if rs.empty:
        _no_data(ax, "No reason tags yet")
        return fig
    h = 0.8 / max(1, len(items))
    base = np.arange(len(tags))[::-1].astype(float)
    for k, it in enumerate(items):
        sub = rs[rs["item"] == it].set_index("tag")
        won = np.array([sub["won"].get(t, 0) for t in tags], float)
        lost = np.array([sub["lost"].get(t, 0) for t in tags], float)
        y = base + 0.4 - h * (k + 0.5)
        c = PALETTE[k % len(PALETTE)]
        ax.barh(y, won, height=h, color=c, label=it)
        ax.barh(y, -lost, height=h, color=c, alpha=0.45)
    ax.axvline(0, color="#333", lw=1)
    ax.set_yticks(base, tags)
    ax.xaxis.set_major_formatter(lambda v, _: f"{abs(v):g}")
    ax.set_xlabel("← votes lost with this tag   |   votes won with this tag →")
    ax.legend(loc="best", fontsize=9)
    ax.set_title("Reason tags (ticked after the vote: descriptive counts)")
    return fig


def results_figures(summary) -> dict[str, Figure]:
    """Every Results chart: ``{"win_rates", "ranking", "heatmap", "reasons"}`` -> Figure."""
    return {
        "win_rates": verdict_figure(summary),
        "ranking": ranking_figure(summary),
        "heatmap": score_heatmap(summary),
        "reasons": reasons_chart(summary),
    }
