"""The vote CSV: format, validation, formula guard, changes, torn-row recovery, locking, crashes."""

from __future__ import annotations

import csv
import io
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.errors import VoteError
from workbench.votes import (
    COLUMNS,
    HEADER_BYTES,
    LEGACY_HEADERS,
    MAX_COMMENT_CHARS,
    REQUIRED_COLUMNS,
    BadVote,
    Vote,
    VoteStore,
    effective_votes,
    find_torn_tail,
    read_votes,
)

ROOT = Path(__file__).resolve().parents[1]


def make_vote(rater="ann", trial="t01", choice="A", a_side="A", **kw) -> Vote:
    base = dict(
        rater=rater,
        test_id="ab-00112233",
        trial_id=trial,
        reference="surya_1",
        sentence_id="pangram",
        checkpoint_a="feb1",
        checkpoint_b="apr27",
        preset_a="none",
        preset_b="none",
        a_side=a_side,
        choice=choice,
        reasons=["accent"],
        comment="",
        played_a_s=2.5,
        played_b_s=3.25,
        decision_s=9.0,
    )
    base.update(kw)
    return Vote.create(**base)


@pytest.fixture
def votes(tmp_path) -> VoteStore:
    return VoteStore(tmp_path / "votes" / "votes.csv")


# ---------------------------------------------------------------------------- format


def test_header_and_round_trip(votes):
    v1 = votes.append(make_vote(comment="crisp, but flat"))
    v2 = votes.append(make_vote(rater="bob", choice="none", reasons=["dull/flat", "accent"]))
    raw = votes.path.read_bytes()
    assert raw.startswith((",".join(COLUMNS) + "\r\n").encode())
    assert raw.endswith(b"\r\n")
    df = read_votes(votes.path)
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 2
    row = df.iloc[0]
    assert row["vote_id"] == v1.vote_id and row["comment"] == "crisp, but flat"
    assert row["time_utc"].endswith("Z") and row["time_utc"][10] == "T"
    assert row["played_a_s"] == pytest.approx(2.5) and row["decision_s"] == pytest.approx(9.0)
    assert df.iloc[1]["reasons"] == "accent;dull/flat"  # canonical order
    assert df.iloc[1]["winner"] == "tie"
    assert v2.app_version


@pytest.mark.parametrize(
    ("a_side", "choice", "winner"),
    [("A", "A", "feb1"), ("A", "B", "apr27"), ("B", "A", "apr27"), ("B", "B", "feb1"), ("B", "none", "tie")],
)
def test_winner_follows_side_and_choice(a_side, choice, winner):
    assert make_vote(a_side=a_side, choice=choice).winner == winner


def test_preset_comparison_winner_is_a_preset():
    v = make_vote(checkpoint_b="feb1", preset_a="none", preset_b="denoise", a_side="B", choice="A")
    assert v.winner == "denoise"


def test_missing_and_empty_files_give_empty_frames(tmp_path):
    for df in (read_votes(tmp_path / "absent.csv"), read_votes(_write(tmp_path / "e.csv", b""))):
        assert df.empty and list(df.columns) == list(COLUMNS)
    header_only = _write(tmp_path / "h.csv", (",".join(COLUMNS) + "\r\n").encode())
    assert read_votes(header_only).empty


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------- input checks


@pytest.mark.parametrize("comment", ['=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "'quoted", "''"])
def test_formula_injection_is_neutralised_and_round_trips(votes, comment):
    votes.append(make_vote(comment=comment, rater="=cmd|' /C calc'!A0", reference="-ref"))
    cells = list(csv.reader(io.StringIO(votes.path.read_text(encoding="utf-8"), newline="")))[1]
    assert all(not c or c[0] not in "=+-@\t\r" for c in cells)
    df = read_votes(votes.path)
    assert df.iloc[0]["rater"] == "=cmd|' /C calc'!A0"
    assert df.iloc[0]["comment"] == comment and df.iloc[0]["reference"] == "-ref"


def test_unicode_and_multiline_comments_survive(votes):
    text = 'Très naturel 👍 — 很好\nsecond line, "quoted", ok; עברית'
    votes.append(make_vote(comment=text))
    votes.append(make_vote(rater="zoë", comment="ok"))
    assert votes.path.read_bytes().endswith(b"\r\n")
    assert find_torn_tail(votes.path.read_bytes()) is None
    df = read_votes(votes.path)
    assert df.iloc[0]["comment"] == text and df.iloc[1]["rater"] == "zoë"


def test_comment_limit_and_bad_fields_are_refused():
    assert make_vote(comment="").comment == ""
    assert len(make_vote(comment="x" * MAX_COMMENT_CHARS).comment) == MAX_COMMENT_CHARS
    with pytest.raises(BadVote, match=r"100000 characters; the limit is 2000"):
        make_vote(comment="x" * 100_000)
    with pytest.raises(BadVote, match="unknown reason tag.*'boring'.*choose from: accent"):
        make_vote(reasons=["boring"])
    with pytest.raises(BadVote, match="choice must be one of A, B, none"):
        make_vote(choice="C")
    with pytest.raises(BadVote, match="rater name is empty"):
        make_vote(rater="  ")
    with pytest.raises(BadVote, match="played_a_s must be a finite number"):
        make_vote(played_a_s=-1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(comment=st.text(max_size=300), rater=st.text(min_size=1, max_size=20).filter(lambda s: s.strip()))
def test_any_text_round_trips(tmp_path_factory, comment, rater):
    from workbench.votes import _CONTROL, clean_comment

    if _CONTROL.search(rater) or "\n" in rater or "\r" in rater:
        return
    store = VoteStore(tmp_path_factory.mktemp("h") / "v.csv")
    store.append(make_vote(comment=comment, rater=rater))
    store.append(make_vote(comment=comment, rater=rater, trial="t02"))
    df = read_votes(store.path)
    assert list(df["comment"]) == [clean_comment(comment)] * 2
    assert list(df["rater"]) == [rater.strip()] * 2
    assert find_torn_tail(store.path.read_bytes()) is None


# ---------------------------------------------------------------------------- changing a vote


def test_changing_a_vote_appends_a_superseding_row(votes):
    first = votes.append(make_vote(choice="A"))
    with pytest.raises(BadVote, match="already has your vote"):
        votes.append(make_vote(choice="B"))  # a replay or second tab
    second = votes.append(make_vote(choice="B", supersedes=first.vote_id))
    with pytest.raises(BadVote, match="no longer the current one"):
        votes.append(make_vote(choice="none", supersedes=first.vote_id))  # stale
    votes.append(make_vote(trial="t02"))
    df = read_votes(votes.path)
    assert len(df) == 3  # history kept
    eff = effective_votes(df)
    assert list(eff["vote_id"]) == [second.vote_id, eff.iloc[1]["vote_id"]]
    assert votes.current("ann", "ab-00112233", "t01").vote_id == second.vote_id
    assert set(votes.effective_for("ann", "ab-00112233")) == {"t01", "t02"}


def test_superseding_needs_an_existing_vote(votes):
    with pytest.raises(BadVote, match="no longer the current"):
        votes.append(make_vote(supersedes="v0000000000000000"))
    assert not votes.path.exists() or read_votes(votes.path).empty


# ---------------------------------------------------------------------------- validation on read


def _good_file(tmp_path, n=3) -> tuple[Path, list[bytes]]:
    store = VoteStore(tmp_path / "good.csv")
    for i in range(n):
        store.append(make_vote(trial=f"t{i + 1:02d}", comment=f"c{i}"))
    lines = store.path.read_bytes().split(b"\r\n")
    return store.path, lines


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ls: ls.__setitem__(0, ls[0].replace(b"choice", b"pick")), r"row 1: .*lacks .*column choice"),
        (lambda ls: ls.__setitem__(2, ls[2] + b",extra"), r"row 3: has 29 fields, expected 28"),
        (lambda ls: ls.__setitem__(3, ls[3].replace(b",A,A,feb1,", b",A,X,feb1,")), r"row 4, column choice: 'X'"),
        (lambda ls: ls.__setitem__(2, ls[2].replace(b",A,A,feb1,", b",A,A,apr27,")), r"row 3, column winner"),
        (lambda ls: ls.__setitem__(2, ls[2].replace(b"Z,ann", b"Q,ann")), r"row 3, column time_utc"),
        (lambda ls: ls.__setitem__(2, ls[2].replace(b"accent", b"loud")), r"row 3, column reasons"),
        (lambda ls: ls.__setitem__(2, ls[2].replace(b"2.500", b"abc")), r"row 3, column played_a_s"),
        (lambda ls: ls.__setitem__(3, ls[1]), r"row 4, column vote_id: .* already used in row 2"),
    ],
)
def test_read_votes_names_row_and_column(tmp_path, edit, message):
    path, lines = _good_file(tmp_path)
    edit(lines)
    path.write_bytes(b"\r\n".join(lines))
    with pytest.raises(VoteError, match=message) as e:
        read_votes(path)
    assert str(path) in str(e.value)


def test_read_votes_rejects_unknown_supersedes(tmp_path):
    path, lines = _good_file(tmp_path)
    lines[2] = lines[2].replace(b",,0.1", b",vdeadbeefdeadbeef,0.1")
    path.write_bytes(b"\r\n".join(lines))
    with pytest.raises(VoteError, match="row 3, column supersedes: 'vdeadbeefdeadbeef' is not the vote_id"):
        read_votes(path)


# ---------------------------------------------------------------------------- torn rows


@pytest.mark.parametrize(
    "tail",
    [
        b"vabc,2026-01-01T00:00:00.000Z,ann,ab-001",  # cut mid-row
        b"vabc,2026-01-01T00:00:00.000Z,ann,ab-00112233,t09,surya_1,pangram,feb1,apr27,none,none,A,A,feb1,,"
        b'"first line\n',  # cut inside a quoted comment, right after a line break
        b"vabc,2026-01-01T00:00:00.000Z,ann\r\n",  # a short row that does end with a line break
        b"vabc,2026-01-01T00:00:00.000Z,ann,ab-00112233,t09,surya_1,pangram,feb1,apr27,none,none,A,A,feb1,,,1,1,1,,,"
        b"0.1\r",  # cut between the two bytes of the line end
    ],
)
def test_torn_last_row_is_set_aside_with_a_warning(tmp_path, caplog, tail):
    path, _ = _good_file(tmp_path)
    good = path.read_bytes()
    path.write_bytes(good + tail)
    with caplog.at_level(logging.WARNING, logger="workbench.votes"):
        store = VoteStore(path)
    assert path.read_bytes() == good
    assert len(store.recovered) == 1 and store.recovered[0].read_bytes() == tail
    assert store.recovered[0].name.startswith("good.csv.torn-")
    assert "incomplete" in caplog.text and str(store.recovered[0]) in caplog.text
    assert len(read_votes(path)) == 3
    store.append(make_vote(trial="t09"))  # appends cleanly after the recovery
    assert len(read_votes(path)) == 4


def test_intact_file_is_left_alone(tmp_path):
    path, _ = _good_file(tmp_path)
    before = path.read_bytes()
    store = VoteStore(path)
    assert store.recovered == [] and path.read_bytes() == before
    assert not list(tmp_path.glob("*.torn-*"))


def test_torn_header_is_set_aside(tmp_path):
    path = tmp_path / "v.csv"
    path.write_bytes(b"vote_id,time_u")
    store = VoteStore(path)
    assert path.read_bytes() == b"" and store.recovered
    store.append(make_vote())
    assert len(read_votes(path)) == 1


def test_a_file_that_is_not_a_vote_csv_is_refused_untouched(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_bytes(b"name,score\r\nx,1\r\n")
    with pytest.raises(VoteError, match="not the vote header.*pass another --votes path"):
        VoteStore(path)
    assert path.read_bytes() == b"name,score\r\nx,1\r\n"


def test_a_torn_row_left_by_another_process_is_recovered_before_appending(tmp_path):
    store = VoteStore(tmp_path / "v.csv")
    store.append(make_vote())
    with open(store.path, "ab") as f:  # another writer died mid-row
        f.write(b"vdead,2026-01-01T00:00:00.000Z,bob")
    store.append(make_vote(trial="t02"))
    df = read_votes(store.path)
    assert list(df["trial_id"]) == ["t01", "t02"]
    assert len(store.recovered) == 1


# ---------------------------------------------------------------------------- concurrency


def test_threads_never_lose_or_interleave_rows(votes):
    n_threads, per_thread = 16, 25
    errors = []

    def worker(k):
        try:
            for i in range(per_thread):
                votes.append(make_vote(rater=f"r{k}", trial=f"t{i:02d}", comment="é" * (i * 37 % 300)))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    df = read_votes(votes.path)
    assert len(df) == n_threads * per_thread
    assert df["vote_id"].is_unique
    assert len(df.groupby(["rater", "trial_id"])) == n_threads * per_thread


WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from tests.test_votes import make_vote
    import workbench.votes as votes
    mode, path, rater, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if mode == "torn":
        real = votes._write_all
        def slow(fd, payload):  # a write cut in two, as by a crash between two disk writes
            half = len(payload) // 2
            real(fd, payload[:half])
            print("HALF", flush=True)
            time.sleep(60)
            real(fd, payload[half:])
        votes._write_all = slow
    store = votes.VoteStore(path)
    for i in range(n):
        v = store.append(make_vote(rater=rater, trial=f"t{{i:03d}}", comment="x" * (i % 50)))
        print("ACK", v.vote_id, flush=True)
    """
)


def _writer(tmp_path, mode, path, rater, n) -> subprocess.Popen:
    script = tmp_path / "writer.py"
    if not script.exists():  # written once: rewriting it while another writer starts would empty it
        script.write_text(WRITER.format(root=str(ROOT)))
    return subprocess.Popen(
        [sys.executable, str(script), mode, str(path), rater, str(n)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


@pytest.mark.slow  # writer subprocesses
def test_processes_append_without_interleaving(tmp_path):
    path = tmp_path / "v.csv"
    procs = [_writer(tmp_path, "plain", path, f"p{k}", 40) for k in range(4)]
    acked = set()
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        acked |= {line.split()[1] for line in out.splitlines() if line.startswith("ACK")}
    df = read_votes(path)
    assert len(acked) == 160
    assert len(df) == 160 and set(df["vote_id"]) == acked


@pytest.mark.slow  # writer subprocesses, killed
def test_killed_writer_loses_nothing_acknowledged(tmp_path):
    """SIGKILL a writer at random points, twice mid-row: every acknowledged vote survives."""
    path = tmp_path / "v.csv"
    acked: set[str] = set()
    for round_, stop_after in enumerate((7, 23, 3)):
        p = _writer(tmp_path, "plain", path, f"k{round_}", 10_000)
        for line in p.stdout:
            if line.startswith("ACK"):
                acked.add(line.split()[1])
                if len(acked) >= stop_after * (round_ + 1):
                    break
        p.send_signal(signal.SIGKILL)
        p.wait()
    for round_ in range(2):  # killed between the two halves of a row
        p = _writer(tmp_path, "torn", path, f"t{round_}", 5)
        assert p.stdout.readline().strip() == "HALF"
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert not path.read_bytes().endswith(b"\r\n")
        store = VoteStore(path)  # restart: the torn row is set aside
        assert store.recovered and path.read_bytes().endswith(b"\r\n")
    df = read_votes(path)
    assert acked <= set(df["vote_id"])
    assert len(list(tmp_path.glob("v.csv.torn-*"))) == 2
    store.append(make_vote(rater="after", trial="t001"))
    assert len(read_votes(path)) == len(df) + 1


def test_append_is_durable_before_returning(votes, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    votes.append(make_vote())
    assert calls, "append returned without fsync"


def test_index_follows_other_writers(tmp_path):
    a = VoteStore(tmp_path / "v.csv")
    b = VoteStore(tmp_path / "v.csv")
    a.append(make_vote(trial="t01"))
    assert set(b.effective_for("ann", "ab-00112233")) == {"t01"}
    with pytest.raises(BadVote):
        b.append(make_vote(trial="t01"))
    assert a.count() == 1


# ---------------------------------------------------------------------------- older and hand-made files


def _rows_as_csv(columns, rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(columns)
    w.writerows(rows)
    return buf.getvalue()


def _legacy_rows(n=3):
    votes = [make_vote(trial=f"t{i:02d}", choice="AB"[i % 2]) for i in range(n)]
    return [[v.to_row()[c] for c in LEGACY_HEADERS[0]] for v in votes], votes


def test_minimal_columns_in_any_order_are_read_and_completed(tmp_path):
    _, votes = _legacy_rows(4)
    cols = list(reversed(REQUIRED_COLUMNS))
    rows = [[v.to_row()[c] for c in cols] for v in votes]
    path = tmp_path / "sheet.csv"
    path.write_text(_rows_as_csv(cols, rows))
    df = read_votes(path)
    assert list(df.columns) == list(COLUMNS)
    assert list(df["winner"]) == [v.winner for v in votes]  # derived from choice + a_side
    assert set(df["trial_kind"]) == {"test"} and set(df["rater_role"]) == {"rater"}
    assert set(df["repeat_of"]) == {""} and set(df["supersedes"]) == {""}


def test_missing_required_column_is_named(tmp_path):
    _, votes = _legacy_rows(2)
    cols = [c for c in REQUIRED_COLUMNS if c != "a_side"]
    path = tmp_path / "sheet.csv"
    path.write_text(_rows_as_csv(cols, [[v.to_row()[c] for c in cols] for v in votes]))
    with pytest.raises(VoteError, match=r"sheet.csv: row 1: the header lacks the required column a_side"):
        read_votes(path)


def test_a_bad_new_cell_is_named(tmp_path):
    v = make_vote()
    row = v.to_row()
    row["trial_kind"] = "bonus"
    path = tmp_path / "v.csv"
    path.write_text(_rows_as_csv(COLUMNS, [[row[c] for c in COLUMNS]]))
    with pytest.raises(VoteError, match=r"row 2, column trial_kind: 'bonus'"):
        read_votes(path)


def test_store_upgrades_a_file_with_the_older_header_once(tmp_path, caplog):
    rows, votes = _legacy_rows(3)
    rows[1][LEGACY_HEADERS[0].index("repeat_of")] = rows[0][0]  # a repeat of the first vote's trial
    path = tmp_path / "votes.csv"
    original = _rows_as_csv(LEGACY_HEADERS[0], rows).encode()
    path.write_bytes(original + b"torn,row")  # plus a last row cut short by a crash
    with caplog.at_level(logging.WARNING):
        store = VoteStore(path)
    assert path.read_bytes().startswith(HEADER_BYTES)
    backups = list(tmp_path.glob("votes.csv.pre-upgrade-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == original
    assert len(list(tmp_path.glob("votes.csv.torn-*"))) == 1
    df = store.read()
    assert list(df["vote_id"]) == [v.vote_id for v in votes]
    assert list(df["trial_kind"]) == ["test", "repeat", "test"]
    store.append(make_vote(trial="t99", trial_kind="control", take_a=2, take_b=1, fetched_a=1, fetched_b=3))
    VoteStore(path)  # opening again changes nothing
    assert len(list(tmp_path.glob("votes.csv.pre-upgrade-*"))) == 1
    last = read_votes(path).iloc[-1]
    got = (last.trial_kind, last.take_a, last.take_b, last.fetched_a, last.fetched_b)
    assert got == ("control", "2", "1", "1", "3")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("trial_kind", "bonus", "trial_kind must be one of"),
        ("take_a", 0, "take_a must be >= 1"),
        ("fetched_b", "x", "fetched_b must be a whole number"),
        ("rater_role", "root", "rater_role must be one of"),
    ],
)
def test_new_fields_are_validated(field, value, message):
    with pytest.raises(VoteError, match=message):
        make_vote(**{field: value})
