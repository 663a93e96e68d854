"""Post-processing chains: schema, order, per-step cache, failing / hanging / silent commands, check.

The commands are real programs: small Python scripts in tests/programs/ run with this
interpreter, and Debian's sox where it is installed.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from workbench import analysis, audio
from workbench.catalog import load_catalog, parse_catalog, preset_availability
from workbench.enhance import StepCache, StepFailed, apply_preset
from workbench.errors import CatalogError

SR = 24000
PROGRAMS = Path(__file__).resolve().parent / "programs"
PY = sys.executable

#: tests that run command steps (subprocesses): not in the fast tier
runs_commands = pytest.mark.slow


def prog(name: str, *args: str) -> str:
    """A YAML flow list: run tests/programs/<name> with this Python on {input} {output} + args."""
    items = [PY, str(PROGRAMS / name), "{input}", "{output}", *args]
    return "[" + ", ".join(f'"{a}"' for a in items) + "]"


def catalog_with(tmp_path: Path, presets: str):
    """A demo-free catalog whose enhancements section is ``presets`` (YAML, indented 2)."""
    text = textwrap.dedent(
        """\
        settings:
          cache_dir: cache
        checkpoints:
          c:
            backend: prerendered
            clips_dir: clips
        references:
          r:
            audio: r.wav
        sentences:
          s:
            text: Hello.
        enhancements:
        """
    ) + textwrap.indent(textwrap.dedent(presets), "  ")
    path = tmp_path / "checkpoints.yaml"
    path.write_text(text)
    return load_catalog(path)


@pytest.fixture
def voice() -> np.ndarray:
    """1.5 s of a speech-like harmonic signal at 24 kHz."""
    t = np.arange(int(1.5 * SR)) / SR
    y = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 10)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def dominant_hz(y: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.argmax(spec) * SR / len(y))


# ---------------------------------------------------------------------------- schema and check


def test_steps_parse_with_paths_resolved_and_the_catalog_folder_as_cwd(tmp_path):
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "G.pth").write_bytes(b"weights")
    cat = catalog_with(
        tmp_path,
        f"""\
        softvc:
          steps:
            - type: command
              argv: {prog("lowpass.py")}
              timeout_s: 30
              files: [svc/G.pth]
            - type: loudness
              target_lufs: -20
        """,
    )
    p = cat.enhancement("softvc")
    cmd, loud = p.chain()
    assert cmd.type == "command" and cmd.files == (tmp_path / "svc" / "G.pth",) and cmd.cwd == tmp_path
    assert loud.target_lufs == -20 and p.loudness_target == -20 and not p.uses_enhancer
    assert preset_availability(p).ok and "command python" in preset_availability(p).reason
    flat = cat.enhancement("none").chain()
    assert [s.type for s in flat] == ["loudness"] and flat[0].target_lufs == -23


@pytest.mark.parametrize(
    "preset, message",
    [
        (
            "steps:\n  - type: loudness\n  - type: command\n    argv: [sox, '{input}', '{output}']",
            r"steps must be the last step|loudness step must be the last step",
        ),
        ("target_lufs: -20\nsteps:\n  - type: loudness", r"give either steps or target_lufs, not both"),
        ("steps:\n  - type: command\n    argv: [sox, '{input}', out.wav]", r"argv must contain \{output\}"),
        ("steps:\n  - type: reverb", r"steps\.0 .*'resemble-enhance', 'command', 'loudness'"),
        ("steps:\n  - type: resemble-enhance", r"needs denoise: true and/or enhance: true"),
    ],
)
def test_bad_chains_are_reported_with_file_and_line(tmp_path, preset, message):
    text = textwrap.indent(f"bad:\n{textwrap.indent(preset, '  ')}\n", "  ")
    with pytest.raises(CatalogError, match=message) as e:
        parse_catalog(
            "checkpoints:\n  c:\n    backend: prerendered\n    clips_dir: x\nreferences:\n  r:\n    audio: r.wav\n"
            f"sentences:\n  s:\n    text: Hi.\nenhancements:\n{text}",
            path=tmp_path / "cat.yaml",
        )
    assert "cat.yaml:1" in str(e.value)


def test_the_none_preset_may_not_run_commands(tmp_path):
    with pytest.raises(CatalogError, match="enhancements.none must not denoise, enhance or run commands"):
        catalog_with(tmp_path, f"none:\n  steps:\n    - type: command\n      argv: {prog('lowpass.py')}\n")


def test_check_reports_a_command_not_found_or_not_executable(tmp_path, capsys):
    (tmp_path / "tools").mkdir()
    script = tmp_path / "tools" / "convert.sh"
    script.write_text('#!/bin/sh\ncp "$1" "$2"\n')
    script.chmod(0o644)
    catalog_with(
        tmp_path,
        """\
        missing:
          steps:
            - type: command
              argv: [no-such-svc-program, infer, "{input}", -o, "{output}"]
        noexec:
          steps:
            - type: command
              argv: [tools/convert.sh, "{input}", "{output}"]
        """,
    )
    from workbench.cli import main as cli

    assert cli(["check", "--config", str(tmp_path / "checkpoints.yaml")]) == 0
    out = capsys.readouterr().out
    assert "missing" in out and "command 'no-such-svc-program': not found on PATH" in out
    assert f"{script} is not executable" in out
    script.chmod(0o755)
    cat = load_catalog(tmp_path / "checkpoints.yaml")
    assert preset_availability(cat.enhancement("noexec")).ok


# ---------------------------------------------------------------------------- running chains


@runs_commands
def test_steps_run_in_order(tmp_path, voice):
    cat = catalog_with(
        tmp_path,
        f"""\
        up:
          steps:
            - {{type: command, argv: {prog("tag.py", "300")}}}
            - {{type: command, argv: {prog("tag.py", "1200")}}}
        down:
          steps:
            - {{type: command, argv: {prog("tag.py", "1200")}}}
            - {{type: command, argv: {prog("tag.py", "300")}}}
        """,
    )
    up, info = apply_preset(voice, SR, cat.enhancement("up"))
    down, _ = apply_preset(voice, SR, cat.enhancement("down"))
    tag = int(0.1 * SR)
    assert len(up) == len(voice) + 2 * tag
    assert dominant_hz(up[-tag:]) == pytest.approx(1200, abs=15)
    assert dominant_hz(up[-2 * tag : -tag]) == pytest.approx(300, abs=15)
    assert dominant_hz(down[-tag:]) == pytest.approx(300, abs=15)
    assert [c["step"] for c in info["chain"]] == [f"up step {i} (command {Path(PY).name})" for i in (1, 2)]


@runs_commands
def test_each_step_is_cached_so_changing_the_last_step_reuses_the_rest(tmp_path, voice):
    (tmp_path / "model.bin").write_bytes(b"v1")
    chain = """\
        post:
          steps:
            - {{type: command, argv: {lp}, files: [model.bin]}}
            - {{type: command, argv: {tag}}}
            - {{type: loudness, target_lufs: {lufs}}}
        """
    lp, tag = prog("lowpass.py", "2000"), prog("tag.py", "300")
    cache = StepCache(tmp_path / "steps")

    def run(lufs=-23, tag=tag):
        cat = catalog_with(tmp_path, chain.format(lp=lp, tag=tag, lufs=lufs))
        before = dict(cache.stats)
        y, info = apply_preset(voice, SR, cat.enhancement("post"), cache=cache)
        return y, info, {k: cache.stats[k] - before[k] for k in before}

    first, info, delta = run()
    assert delta == {"hits": 0, "stored": 2} and [c["cached"] for c in info["chain"]] == [False, False, False]
    assert info["loudness_out_lufs"] == pytest.approx(-23, abs=0.3)
    assert analysis.spectral_centroid(analysis.power_spectrogram(first, sr=SR), sr=SR) < analysis.spectral_centroid(
        analysis.power_spectrogram(voice, sr=SR), sr=SR
    )  # the low-pass ran
    again, _, delta = run(lufs=-20)  # only the last step changed
    assert delta == {"hits": 2, "stored": 0}
    assert np.allclose(again, first * 10 ** (3 / 20), atol=1e-4)
    _, _, delta = run(tag=prog("tag.py", "500"))  # the second command changed: the first is reused
    assert delta == {"hits": 1, "stored": 1}
    (tmp_path / "model.bin").write_bytes(b"v2")  # a hashed file changed: that step runs again ...
    _, info, delta = run()
    # ... and gives the same samples (the program ignores the file), so the next step is a hit
    assert delta == {"hits": 1, "stored": 1} and [c["cached"] for c in info["chain"]] == [False, True, False]


@runs_commands
def test_a_failing_command_reports_exit_status_and_the_last_stderr_lines(tmp_path, voice):
    cat = catalog_with(tmp_path, f"bad:\n  steps:\n    - type: command\n      argv: {prog('fail.py')}\n")
    with pytest.raises(StepFailed) as e:
        apply_preset(voice, SR, cat.enhancement("bad"))
    msg = str(e.value)
    assert "bad step 1 (command " in msg and "exited with status 3" in msg
    assert "problem line 8" in msg and "problem line 4" in msg and "problem line 3" not in msg


@pytest.mark.slow  # waits for a subprocess timeout
def test_a_hanging_command_is_stopped_at_its_timeout_with_its_children(tmp_path, voice):
    pidfile = tmp_path / "pids"
    cat = catalog_with(
        tmp_path,
        f"""\
        slow:
          steps:
            - type: command
              argv: [{PY}, {PROGRAMS / "hang.py"}, {pidfile}, "{{input}}", "{{output}}"]
              timeout_s: 2
        """,
    )
    t0 = time.monotonic()
    with pytest.raises(StepFailed, match=r"did not finish within 2 s and was stopped") as e:
        apply_preset(voice, SR, cat.enhancement("slow"))
    assert time.monotonic() - t0 < 60  # not the program's 120 s
    assert "working..." in str(e.value)
    for pid in map(int, pidfile.read_text().split()):
        status = Path(f"/proc/{pid}/status")
        if status.exists():  # a zombie waiting for init is dead too
            assert "State:\tZ" in status.read_text(), f"process {pid} still running"


@runs_commands
def test_a_command_that_writes_nothing_is_an_error(tmp_path, voice):
    cat = catalog_with(tmp_path, f"quiet:\n  steps:\n    - type: command\n      argv: {prog('nothing.py')}\n")
    with pytest.raises(StepFailed, match=r"(?s)exited 0 but wrote nothing to \{output\}.*nothing written"):
        apply_preset(voice, SR, cat.enhancement("quiet"))


@runs_commands
def test_a_missing_program_fails_per_clip_with_the_reason(tmp_path, voice):
    cat = catalog_with(
        tmp_path, "gone:\n  steps:\n    - type: command\n      argv: [no-such-tool, '{input}', '{output}']\n"
    )
    with pytest.raises(StepFailed, match="'no-such-tool': not found on PATH"):
        apply_preset(voice, SR, cat.enhancement("gone"))


@runs_commands
@pytest.mark.skipif(shutil.which("sox") is None, reason="sox not installed (apt-get install sox)")
def test_sox_as_a_chain_step(tmp_path, voice):
    cat = catalog_with(
        tmp_path,
        """\
        quieter:
          steps:
            - type: command
              argv: [sox, "{input}", "{output}", gain, "-6"]
            - type: loudness
              target_lufs: null
        """,
    )
    y, info = apply_preset(voice, SR, cat.enhancement("quieter"))
    assert len(y) == len(voice)
    assert np.allclose(y, voice * 10 ** (-6 / 20), atol=2e-4)  # 24-bit WAV in, sox's gain out
    assert info["loudness_in_lufs"] == pytest.approx(audio.loudness(voice, SR) - 6, abs=0.05)
    assert info["chain"][0]["step"] == "quieter step 1 (command sox)"


# ---------------------------------------------------------------------------- in the renderer


@pytest.fixture
def chain_catalog(demo_catalog_path):
    """The demo catalog plus chain presets: low-pass, the same with another loudness, a failing one."""
    (demo_catalog_path.parent / "svc.pth").write_bytes(b"model v1")
    lp = prog("lowpass.py", "1500")
    demo_catalog_path.write_text(
        demo_catalog_path.read_text()
        + textwrap.indent(
            textwrap.dedent(
                f"""
                lp:
                  steps:
                    - {{type: command, argv: {lp}, files: [svc.pth]}}
                    - {{type: loudness, target_lufs: -23}}
                lp-louder:
                  steps:
                    - {{type: command, argv: {lp}, files: [svc.pth]}}
                    - {{type: loudness, target_lufs: -20}}
                broken:
                  steps:
                    - {{type: command, argv: {prog("fail.py")}}}
                """
            ),
            "  ",
        )
    )
    return demo_catalog_path


@runs_commands
def test_a_chain_renders_through_the_cache_and_reuses_its_steps(chain_catalog):
    from workbench.render import Renderer, RenderRequest

    r = Renderer(load_catalog(chain_catalog))
    first = r.render(RenderRequest("feb1", "surya_1", "pangram", enhancement="lp"))
    assert [c["cached"] for c in first.provenance["chain"]] == [False, False]
    steps = sorted((r.cache_dir / "steps").rglob("*.wav"))
    assert len(steps) == 1
    louder = r.render(RenderRequest("feb1", "surya_1", "pangram", enhancement="lp-louder"))
    assert louder.key != first.key and louder.provenance["chain"][0]["cached"] is True
    assert sorted((r.cache_dir / "steps").rglob("*.wav")) == steps  # nothing new computed
    a, b = first.load()[0], louder.load()[0]
    assert np.allclose(b, a * 10 ** (3 / 20), atol=1e-3)
    (chain_catalog.parent / "svc.pth").write_bytes(b"model v2")  # a hashed file changed: new clip key
    assert r.plan(RenderRequest("feb1", "surya_1", "pangram", enhancement="lp")).key != first.key


@runs_commands
def test_a_cluster_node_refuses_a_chain_whose_files_differ_from_the_heads(chain_catalog, tmp_path, monkeypatch):
    from workbench.cluster import RenderWorker
    from workbench.errors import ModelUnavailable
    from workbench.render import Renderer, RenderRequest

    plan = Renderer(load_catalog(chain_catalog)).plan(RenderRequest("feb1", "surya_1", "pangram", enhancement="lp"))
    node = RenderWorker.__new__(RenderWorker)  # the node's checks, without starting Ray
    node.node, node.cache = "node-b (127.0.0.3)", tmp_path / "worker-cache"
    here = tmp_path / "node"
    here.mkdir()
    monkeypatch.setenv("WORKBENCH_PATH_MAP", f"{chain_catalog.parent}={here}")  # the catalog folder lives here
    with pytest.raises(ModelUnavailable, match=r"node node-b .* preset 'lp', step 1 \(python.*cannot read its files"):
        node._localize(plan, None)
    (here / "svc.pth").write_bytes(b"model v2")  # retrained on this node only
    with pytest.raises(ModelUnavailable, match=r"step 1 \(python.*differ from the head's"):
        node._localize(plan, None)
    (here / "svc.pth").write_bytes(b"model v1")  # the head's copy
    local = node._localize(plan, None)
    assert local.preset.steps[0].files == (here / "svc.pth",) and local.preset.steps[0].cwd == here
    assert local.key == plan.key and plan.preset.steps[0].files == (chain_catalog.parent / "svc.pth",)


@runs_commands
def test_a_failing_step_fails_its_clips_and_the_batch_goes_on(chain_catalog, tmp_path):
    from workbench.render import Renderer, expand_matrix, render_batch

    r = Renderer(load_catalog(chain_catalog))
    reqs = expand_matrix(r.catalog, checkpoints="feb1", references="surya_1", sentences="pangram,names",
                         enhancements="broken,lp")  # fmt: skip
    manifest, rows = render_batch(r, reqs, tmp_path / "out")
    status = {(row["sentence"], row["enhancement"]): row for row in rows}
    assert [status[(s, "lp")]["status"] for s in ("pangram", "names")] == ["ok", "ok"]
    for s in ("pangram", "names"):
        row = status[(s, "broken")]
        assert row["status"] == "failed" and "StepFailed" in row["error"]
        assert "exited with status 3" in row["error"] and "problem line 8" in row["error"]


def test_the_commented_softvc_example_in_the_catalog_is_valid(tmp_path):
    root = Path(__file__).resolve().parents[1]
    lines = (root / "checkpoints.yaml").read_text().splitlines()
    start = lines.index("  # softvc:")
    text = "\n".join(line.replace("  # ", "  ", 1) if n >= start else line for n, line in enumerate(lines))
    preset = parse_catalog(text, path=root / "checkpoints.yaml").enhancement("softvc")
    assert [s.type for s in preset.chain()] == ["resemble-enhance", "command", "loudness"]
    svc = preset.chain()[1]
    assert svc.argv[0].endswith("/svc") and "{output}" in svc.argv and len(svc.files) == 2
