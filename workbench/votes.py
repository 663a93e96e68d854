"""The vote store: one CSV file, the system of record of every blind A/B verdict.

One row per vote, appended under an exclusive lock (:func:`workbench.fsutil.file_lock`:
a thread lock plus ``fcntl.flock`` on ``<votes>.lock``), written, flushed and fsynced before :meth:`VoteStore.append`
returns, so a vote the rater saw as "saved" survives a crash or power loss. Rows are
never rewritten: changing a vote appends a new row whose ``supersedes`` names the row
it replaces, and only the latest row per ``(rater, test_id, trial_id)`` counts
(:func:`effective_votes`).

Columns (in this order, see :data:`COLUMNS`): ``vote_id, time_utc, rater, test_id,
trial_id, reference, sentence_id, checkpoint_a, checkpoint_b, preset_a, preset_b,
a_side, choice, winner, reasons, comment, played_a_s, played_b_s, decision_s,
repeat_of, supersedes, app_version, trial_kind, take_a, take_b, fetched_a, fetched_b,
rater_role``.

- ``checkpoint_a/_b`` and ``preset_a/_b`` are the trial's canonical pair (plan order,
  not screen order); ``a_side`` is the screen slot (``A``/``B``) where ``checkpoint_a``
  played; ``choice`` is the preferred slot (``A``, ``B`` or ``none``); ``winner`` is the
  winning checkpoint (the winning preset when a plan compares presets of one
  checkpoint) or ``tie``.
- ``reasons`` joins tags from :data:`REASONS` with ``;``.
- ``played_a_s``/``played_b_s``: seconds listened to each slot; ``decision_s``: seconds
  from trial shown to vote.
- ``time_utc``: ISO 8601 with ``Z``.
- ``trial_kind``: ``test`` (counts toward the preference), ``repeat`` (a replay of the
  trial named in ``repeat_of``: feeds self-consistency, not the preference), ``control``
  (the same clip on both sides: measures how often a rater "prefers" one of two
  identical clips) or ``training`` (practice at the start, never counted).
- ``take_a``/``take_b``: the take (seed index, from 1) of the clip that played for
  ``checkpoint_a``/``checkpoint_b``; empty when unknown.
- ``fetched_a``/``fetched_b``: how many times the server delivered the audio of screen
  slot A/B for this trial before the vote (recorded by the server, not the browser);
  empty when unknown.
- ``rater_role``: ``rater`` or ``admin`` (admins' votes are left out of results by default).

Reading (:func:`read_votes`) accepts any file that has :data:`REQUIRED_COLUMNS` in any
order, for example votes collected in a spreadsheet; the other columns are derived
(``winner`` from ``choice`` and ``a_side``, ``trial_kind`` from ``repeat_of``) or left
empty. The store upgrades a file written with an older header in place, once, keeping a
copy of the original beside it.

Spreadsheet formula injection: a cell starting with ``= + - @`` (or tab / carriage
return) is written with a leading apostrophe and read back without it. So that the round
trip is exact, a cell that itself starts with an apostrophe gets one more.

Records end with ``\\r\\n`` (RFC 4180); line breaks inside a comment are stored as a
bare ``\\n`` inside quotes, so a complete file always ends with ``\\r\\n``. A last row
cut short by a crash (no line end, open quote or wrong field count) is moved to a side
file ``<votes>.torn-<UTC time>`` with a logged warning when the store opens, never
silently dropped.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd

from .errors import VoteError
from .fsutil import file_lock, fsync_dir

log = logging.getLogger(__name__)


class BadVote(VoteError):
    """A vote refused for what the rater sent or did (bad input, stale or repeated answer).

    Its message names no checkpoint, preset, path or key, so the rater may see it.
    """


Pathlike = str | Path
Seconds = float

#: the CSV header, in order (contract shared with stats and the Results tab)
COLUMNS: tuple[str, ...] = (
    "vote_id",
    "time_utc",
    "rater",
    "test_id",
    "trial_id",
    "reference",
    "sentence_id",
    "checkpoint_a",
    "checkpoint_b",
    "preset_a",
    "preset_b",
    "a_side",
    "choice",
    "winner",
    "reasons",
    "comment",
    "played_a_s",
    "played_b_s",
    "decision_s",
    "repeat_of",
    "supersedes",
    "app_version",
    "trial_kind",
    "take_a",
    "take_b",
    "fetched_a",
    "fetched_b",
    "rater_role",
)
#: optional columns of the older header that a reader derives or leaves empty (see :func:`read_votes`)
_DERIVED = ("winner", "repeat_of", "supersedes")
#: the columns a vote file must have (any order); the others are derived or left empty
REQUIRED_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS[: COLUMNS.index("app_version") + 1] if c not in _DERIVED)
#: headers written by earlier versions of the store (upgraded in place when the store opens)
LEGACY_HEADERS: tuple[tuple[str, ...], ...] = (COLUMNS[: COLUMNS.index("app_version") + 1],)
#: what a trial is for (see the module docstring)
TRIAL_KINDS: tuple[str, ...] = ("test", "repeat", "control", "training")
#: who voted
ROLES: tuple[str, ...] = ("rater", "admin")
#: reason tags a rater can tick (stored ";"-joined in ``reasons``)
REASONS: tuple[str, ...] = (
    "accent",
    "inflection",
    "naturalness",
    "dull/flat",
    "artifacts",
    "speaker similarity",
    "pronunciation",
)
#: screen slots
SIDES: tuple[str, ...] = ("A", "B")
#: what a rater can answer: a slot, or no preference
CHOICES: tuple[str, ...] = ("A", "B", "none")
#: ``winner`` when the rater had no preference
TIE = "tie"
#: longest comment accepted (characters)
MAX_COMMENT_CHARS = 2000
#: longest rater name / id accepted (characters)
MAX_NAME_CHARS = 64
#: numeric columns (seconds, >= 0)
NUMERIC = ("played_a_s", "played_b_s", "decision_s")
#: first characters a spreadsheet would run as a formula
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_GUARD = "'"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
#: unpaired UTF-16 surrogates: a str may hold them (JSON "\ud800"), UTF-8 cannot encode them
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
_LINE_END = b"\r\n"


def new_vote_id() -> str:
    """A fresh random vote id (``v`` + 16 hex digits)."""
    return "v" + secrets.token_hex(8)


def utc_now() -> str:
    """Current time as ISO 8601 UTC with milliseconds and ``Z``."""
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def derive_winner(
    *, checkpoint_a: str, checkpoint_b: str, preset_a: str, preset_b: str, a_side: str, choice: str
) -> str:
    """The ``winner`` cell for a vote: a checkpoint (or preset) name, or ``tie``.

    ``choice`` is the screen slot the rater preferred; ``a_side`` is the slot where
    ``checkpoint_a`` played. When both sides share one checkpoint, the plan compares
    presets and the winner is a preset name.
    """
    if a_side not in SIDES:
        raise BadVote(f"a_side must be A or B, got {a_side!r}")
    if choice not in CHOICES:
        raise BadVote(f"choice must be one of {', '.join(CHOICES)}, got {choice!r}")
    if choice == "none":
        return TIE
    first_won = choice == a_side
    if checkpoint_a == checkpoint_b:
        return preset_a if first_won else preset_b
    return checkpoint_a if first_won else checkpoint_b


def clean_comment(text: str | None) -> str:
    """Normalise a comment: line breaks to ``\\n``, other control characters and unpaired
    surrogates (not encodable text) dropped, trimmed.

    Raises :class:`VoteError` when it is not text or longer than :data:`MAX_COMMENT_CHARS`.
    """
    if text is not None and not isinstance(text, str):
        raise BadVote(f"the comment must be text, got {type(text).__name__}")
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    text = _SURROGATE.sub("", _CONTROL.sub("", text)).strip()
    if len(text) > MAX_COMMENT_CHARS:
        raise BadVote(
            f"the comment has {len(text)} characters; the limit is {MAX_COMMENT_CHARS}: "
            "shorten it (the key points are enough) and vote again"
        )
    return text


def check_name(value: str, what: str = "rater name") -> str:
    """Validate a short identifier cell (rater, ids): 1..64 printable characters, no line breaks."""
    if value is not None and not isinstance(value, str):
        raise BadVote(f"{what} must be text, got {type(value).__name__}")
    value = (value or "").strip()
    if not value:
        raise BadVote(f"{what} is empty")
    if len(value) > MAX_NAME_CHARS:
        raise BadVote(f"{what} has {len(value)} characters; the limit is {MAX_NAME_CHARS}")
    if _CONTROL.search(value) or "\n" in value or _SURROGATE.search(value):
        raise BadVote(f"{what} {value!r} contains control characters, line breaks or broken (unpaired) characters")
    return value


def normalize_reasons(reasons: Iterable[str] | str | None) -> tuple[str, ...]:
    """Reason tags in :data:`REASONS` order; raises :class:`VoteError` for an unknown tag."""
    if reasons is None:
        return ()
    if isinstance(reasons, str):
        reasons = [r for r in reasons.split(";") if r.strip()]
    got = {str(r).strip() for r in reasons}
    unknown = sorted(got - set(REASONS))
    if unknown:
        raise BadVote(f"unknown reason tag(s) {', '.join(map(repr, unknown))}; choose from: {', '.join(REASONS)}")
    return tuple(r for r in REASONS if r in got)


@dataclass(frozen=True)
class Vote:
    """One row of the vote CSV (see the module docstring for each column's meaning)."""

    vote_id: str
    time_utc: str
    rater: str
    test_id: str
    trial_id: str
    reference: str
    sentence_id: str
    checkpoint_a: str
    checkpoint_b: str
    preset_a: str
    preset_b: str
    a_side: str  # screen slot where checkpoint_a played: A | B
    choice: str  # preferred slot: A | B | none
    winner: str  # derived: checkpoint (or preset) name, or "tie"
    reasons: tuple[str, ...]
    comment: str
    played_a_s: Seconds
    played_b_s: Seconds
    decision_s: Seconds
    repeat_of: str = ""
    supersedes: str = ""
    app_version: str = ""
    trial_kind: str = "test"
    take_a: str = ""  # take number as text ("" = unknown)
    take_b: str = ""
    fetched_a: str = ""  # server-counted deliveries of slot A's audio ("" = unknown)
    fetched_b: str = ""
    rater_role: str = "rater"

    @classmethod
    def create(
        cls,
        *,
        rater: str,
        test_id: str,
        trial_id: str,
        reference: str,
        sentence_id: str,
        checkpoint_a: str,
        checkpoint_b: str,
        preset_a: str,
        preset_b: str,
        a_side: str,
        choice: str,
        reasons: Iterable[str] | str | None = (),
        comment: str | None = "",
        played_a_s: Seconds = 0.0,
        played_b_s: Seconds = 0.0,
        decision_s: Seconds = 0.0,
        repeat_of: str = "",
        supersedes: str = "",
        app_version: str | None = None,
        trial_kind: str | None = None,
        take_a: int | str | None = None,
        take_b: int | str | None = None,
        fetched_a: int | None = None,
        fetched_b: int | None = None,
        rater_role: str = "rater",
    ) -> Vote:
        """A new vote with a fresh id and time, validated; ``winner`` is derived."""
        if app_version is None:
            from . import __version__ as app_version
        winner = derive_winner(
            checkpoint_a=checkpoint_a,
            checkpoint_b=checkpoint_b,
            preset_a=preset_a,
            preset_b=preset_b,
            a_side=a_side,
            choice=choice,
        )
        vote = cls(
            vote_id=new_vote_id(),
            time_utc=utc_now(),
            rater=check_name(rater),
            test_id=check_name(test_id, "test_id"),
            trial_id=check_name(trial_id, "trial_id"),
            reference=reference,
            sentence_id=sentence_id,
            checkpoint_a=checkpoint_a,
            checkpoint_b=checkpoint_b,
            preset_a=preset_a,
            preset_b=preset_b,
            a_side=a_side,
            choice=choice,
            winner=winner,
            reasons=normalize_reasons(reasons),
            comment=clean_comment(comment),
            played_a_s=_seconds(played_a_s, "played_a_s"),
            played_b_s=_seconds(played_b_s, "played_b_s"),
            decision_s=_seconds(decision_s, "decision_s"),
            repeat_of=repeat_of or "",
            supersedes=supersedes or "",
            app_version=str(app_version),
            trial_kind=_trial_kind(trial_kind, repeat_of or ""),
            take_a=_count(take_a, "take_a", minimum=1),
            take_b=_count(take_b, "take_b", minimum=1),
            fetched_a=_count(fetched_a, "fetched_a"),
            fetched_b=_count(fetched_b, "fetched_b"),
            rater_role=_role(rater_role),
        )
        return vote

    def to_row(self) -> dict[str, str]:
        """The vote as CSV cells (unguarded strings, numbers with 3 decimals)."""
        d = asdict(self)
        d["reasons"] = ";".join(self.reasons)
        for k in NUMERIC:
            d[k] = f"{float(d[k]):.3f}"
        return {k: str(d[k]) for k in COLUMNS}

    @property
    def key(self) -> tuple[str, str, str]:
        """``(rater, test_id, trial_id)``: at most one effective vote per key."""
        return (self.rater, self.test_id, self.trial_id)


assert tuple(f.name for f in fields(Vote)) == COLUMNS


def _trial_kind(kind: str | None, repeat_of: str) -> str:
    if kind is None or kind == "":
        return "repeat" if repeat_of else "test"
    if kind not in TRIAL_KINDS:
        raise BadVote(f"trial_kind must be one of {', '.join(TRIAL_KINDS)}, got {kind!r}")
    return kind


def _role(role: str | None) -> str:
    role = role or "rater"
    if role not in ROLES:
        raise BadVote(f"rater_role must be one of {', '.join(ROLES)}, got {role!r}")
    return role


def _count(value, name: str, *, minimum: int = 0) -> str:
    """A whole number >= ``minimum`` as text, or ``""`` for unknown (None or empty)."""
    if value is None or value == "":
        return ""
    try:
        v = int(str(value).strip())
    except ValueError:
        raise BadVote(f"{name} must be a whole number, got {value!r}") from None
    if v < minimum:
        raise BadVote(f"{name} must be >= {minimum}, got {value!r}")
    return str(v)


def _seconds(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise BadVote(f"{name} must be a number of seconds, got {value!r}") from None
    if not (v >= 0) or v == float("inf"):
        raise BadVote(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return round(v, 3)


# ---------------------------------------------------------------------------- encoding


def guard_cell(value: str) -> str:
    """Neutralise spreadsheet formulas: prefix ``'`` to cells starting with ``= + - @``, tab, CR or ``'``."""
    if value and (value[0] in _FORMULA_START or value[0] == _GUARD):
        return _GUARD + value
    return value


def unguard_cell(value: str) -> str:
    """Inverse of :func:`guard_cell`."""
    if value.startswith(_GUARD) and len(value) > 1 and (value[1] in _FORMULA_START or value[1] == _GUARD):
        return value[1:]
    return value


def encode_row(row: dict[str, str]) -> bytes:
    """One CSV record (guarded cells, ``\\r\\n`` line end) as UTF-8 bytes."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).writerow(
        [guard_cell(row[c].replace("\r\n", "\n").replace("\r", "\n")) for c in COLUMNS]
    )
    return buf.getvalue().encode("utf-8")


HEADER_BYTES = (",".join(COLUMNS) + "\r\n").encode("ascii")


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """``(row number, cells)`` for each CSV record; row 1 is the header (spreadsheet numbering)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    row = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise VoteError(f"row {row + 1}: not valid CSV ({e})") from None
        row += 1
        yield row, cells


def _last_boundary(data: bytes, end: int) -> int:
    """Offset just after the last record-ending ``\\n`` before ``end`` (0 if none).

    A ``\\n`` ends a record when the number of ``"`` before it is even (it is not inside
    a quoted cell).
    """
    quotes_total = data.count(b'"', 0, end)
    pos = end
    while True:
        nl = data.rfind(b"\n", 0, pos)
        if nl < 0:
            return 0
        quotes_after = data.count(b'"', nl + 1, end)
        if (quotes_total - quotes_after) % 2 == 0:
            return nl + 1
        pos = nl


def find_torn_tail(data: bytes, n_fields: int = len(COLUMNS)) -> int | None:
    """Where an incomplete last record starts in CSV bytes ``data``, or None when intact.

    Incomplete means: the file does not end with a record-ending line break, or its last
    record does not have exactly ``n_fields`` fields.
    """
    if not data:
        return None
    if data.endswith(b"\n"):
        last_end = len(data)
        if _last_boundary(data, last_end) != last_end:  # the final \n is inside quotes
            return _last_boundary(data, last_end)
        start = _last_boundary(data, last_end - 1)
        if start == 0:
            return None  # only the header; checked separately
        try:
            cells = next(csv.reader(io.StringIO(data[start:].decode("utf-8"), newline=""), strict=True))
        except (csv.Error, UnicodeDecodeError, StopIteration):
            return start
        return None if len(cells) == n_fields else start
    return _last_boundary(data, len(data))


# ---------------------------------------------------------------------------- reading


def _empty_frame() -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype="float64" if c in NUMERIC else "object") for c in COLUMNS})
    return df


def read_votes(path: Pathlike) -> pd.DataFrame:
    """Read and validate the vote CSV into a DataFrame with :data:`COLUMNS`.

    Text columns are ``str`` (empty cells are ``""``), :data:`NUMERIC` columns are
    float seconds; formula guards are removed; rows keep file order. A missing or empty
    file gives an empty frame with the columns.

    Raises
    ------
    VoteError
        naming the file, the row (spreadsheet numbering: the header is row 1) and the
        column of the first malformed cell.
    """
    path = Path(path)
    if not path.exists():
        return _empty_frame()
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise VoteError(f"{path}: not UTF-8 text (byte {e.start}); restore the file from a backup") from None
    except OSError as e:
        raise VoteError(f"{path}: cannot read: {e}") from None
    if not text.strip():
        return _empty_frame()
    return _parse(text, str(path))


def _header_map(cells: list[str]) -> list[str]:
    """Column names of a header row; raises naming a missing required or repeated column."""
    names = [c.strip().lstrip("\ufeff") for c in cells]
    dupes = sorted({c for c in names if c and names.count(c) > 1})
    if dupes:
        raise VoteError(f"row 1: column {dupes[0]!r} appears more than once in the header")
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise VoteError(
            f"row 1: the header lacks the required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}; a vote file needs: {', '.join(REQUIRED_COLUMNS)} (any order)"
        )
    return names


def _complete(rec: dict[str, str]) -> None:
    """Fill the optional columns a file did not have (derived or empty), in place."""
    for c in COLUMNS:
        rec.setdefault(c, "")
    if rec.get("_no_winner"):
        try:
            rec["winner"] = derive_winner(
                checkpoint_a=rec["checkpoint_a"],
                checkpoint_b=rec["checkpoint_b"],
                preset_a=rec["preset_a"],
                preset_b=rec["preset_b"],
                a_side=rec["a_side"],
                choice=rec["choice"],
            )
        except VoteError:
            rec["winner"] = ""  # a_side/choice are reported by the validation
    if not rec["trial_kind"]:
        rec["trial_kind"] = "repeat" if rec["repeat_of"] else "test"
    if not rec["rater_role"]:
        rec["rater_role"] = "rater"


def _parse(text: str, name: str) -> pd.DataFrame:
    rows: list[list[str]] = []
    seen: dict[str, tuple[int, tuple[str, str, str]]] = {}
    header: list[str] = []
    try:
        for row_no, cells in _records(text):
            if row_no == 1:
                header = _header_map(cells)
                continue
            if not cells:
                continue  # a blank line
            if len(cells) != len(header):
                raise VoteError(
                    f"row {row_no}: has {len(cells)} fields, expected {len(header)} "
                    "(an incomplete last row is set aside when the app starts; otherwise fix the row)"
                )
            rec = {h: unguard_cell(c) for h, c in zip(header, cells, strict=True) if h in COLUMNS}
            if "winner" not in rec:
                rec["_no_winner"] = "1"
            _complete(rec)
            rec.pop("_no_winner", None)
            _validate_record(rec, row_no, seen)
            rows.append([rec[c] for c in COLUMNS])
    except VoteError as e:
        raise VoteError(f"{name}: {e}") from None
    if not rows:
        return _empty_frame()
    df = pd.DataFrame(rows, columns=list(COLUMNS), dtype="object")
    for c in NUMERIC:
        df[c] = df[c].astype("float64")
    return df


def _validate_record(rec: dict[str, str], row_no: int, seen: dict) -> None:
    def bad(col: str, why: str):
        raise VoteError(f"row {row_no}, column {col}: {why}")

    for col in ("vote_id", "rater", "test_id", "trial_id"):
        if not rec[col].strip():
            bad(col, "is empty")
    if rec["vote_id"] in seen:
        bad("vote_id", f"{rec['vote_id']!r} already used in row {seen[rec['vote_id']][0]}")
    if not _TIME.match(rec["time_utc"]):
        bad("time_utc", f"{rec['time_utc']!r} is not ISO 8601 UTC like 2026-05-01T12:00:00.000Z")
    if rec["a_side"] not in SIDES:
        bad("a_side", f"{rec['a_side']!r} is not A or B")
    if rec["choice"] not in CHOICES:
        bad("choice", f"{rec['choice']!r} is not one of {', '.join(CHOICES)}")
    want = derive_winner(
        checkpoint_a=rec["checkpoint_a"],
        checkpoint_b=rec["checkpoint_b"],
        preset_a=rec["preset_a"],
        preset_b=rec["preset_b"],
        a_side=rec["a_side"],
        choice=rec["choice"],
    )
    if rec["winner"] != want:
        bad("winner", f"{rec['winner']!r} does not follow from a_side/choice (expected {want!r})")
    try:
        normalize_reasons(rec["reasons"])
    except VoteError as e:
        bad("reasons", str(e))
    if rec["trial_kind"] not in TRIAL_KINDS:
        bad("trial_kind", f"{rec['trial_kind']!r} is not one of {', '.join(TRIAL_KINDS)}")
    if rec["rater_role"] not in ROLES:
        bad("rater_role", f"{rec['rater_role']!r} is not one of {', '.join(ROLES)}")
    for col, minimum in (("take_a", 1), ("take_b", 1), ("fetched_a", 0), ("fetched_b", 0)):
        if rec[col] and not (rec[col].isdigit() and int(rec[col]) >= minimum):
            bad(col, f"{rec[col]!r} is not a whole number >= {minimum} (or empty)")
    for col in NUMERIC:
        try:
            v = float(rec[col])
        except ValueError:
            bad(col, f"{rec[col]!r} is not a number of seconds")
        if not (v >= 0) or v == float("inf"):
            bad(col, f"{rec[col]!r} must be a finite number >= 0")
    key = (rec["rater"], rec["test_id"], rec["trial_id"])
    sup = rec["supersedes"]
    if sup:
        if sup not in seen:
            bad("supersedes", f"{sup!r} is not the vote_id of an earlier row")
        if seen[sup][1] != key:
            bad("supersedes", f"{sup!r} is a vote of another rater, test or trial (row {seen[sup][0]})")
    seen[rec["vote_id"]] = (row_no, key)


def effective_votes(df: pd.DataFrame) -> pd.DataFrame:
    """Only the votes that count: the latest row per ``(rater, test_id, trial_id)``.

    Superseded rows (changed votes) are dropped; file order is kept; the index is reset.
    """
    if df.empty:
        return df.copy()
    superseded = set(df["supersedes"][df["supersedes"] != ""])
    keep = ~df["vote_id"].isin(superseded)
    latest = ~df.duplicated(subset=["rater", "test_id", "trial_id"], keep="last")
    return df[keep & latest].reset_index(drop=True)


# ---------------------------------------------------------------------------- the store


@dataclass(frozen=True)
class VoteRef:
    """What the store remembers about a rater's effective vote on one trial."""

    vote_id: str
    time_utc: str
    choice: str
    row: int  # spreadsheet row number in the CSV


class VoteStore:
    """Append-only, locked, fsynced vote CSV. Thread- and process-safe.

    Opening the store checks the file (header, torn last row) and builds an in-memory
    index of effective votes per ``(rater, test_id, trial_id)``; the index reloads when
    another process changed the file.
    """

    def __init__(self, path: Pathlike):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._index: dict[tuple[str, str], dict[str, VoteRef]] = {}  # (rater, test_id) -> trial_id -> vote
        self._ids: dict[str, tuple[str, str, str]] = {}
        self._rows = 0  # data rows in the file
        self._size = -1  # file size the index reflects (-1: not loaded)
        self.recovered: list[Path] = []  # side files written by recover()
        self.recover()

    # -------------------------------------------------------------- locking / recovery

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with ExitStack() as stack:
            try:
                stack.enter_context(file_lock(self.lock_path))
            except OSError as e:
                raise VoteError(
                    f"{self.lock_path}: cannot open the vote lock file ({e}); "
                    "check that the votes folder exists, is writable and has free space"
                ) from e
            yield

    def recover(self) -> Path | None:
        """Check the file; set an incomplete last row aside into a side file.

        Returns the side file written (None when the file was intact). Raises
        :class:`VoteError` when the file is not a vote CSV at all (nothing is changed).
        """
        with self._locked():
            return self._recover_locked()

    def _recover_locked(self) -> Path | None:
        if not self.path.exists():
            return None
        data = self.path.read_bytes()
        if not data:
            return None
        header_end = data.find(b"\n")
        first_line = data[: header_end + 1].rstrip(b"\r\n").removeprefix(b"\xef\xbb\xbf")
        legacy = next((h for h in LEGACY_HEADERS if first_line == ",".join(h).encode("ascii")), None)
        if header_end >= 0 and legacy is not None:
            cut = find_torn_tail(data, len(legacy))
            if cut is not None and cut >= header_end + 1:
                self._set_aside(data, cut, why="the last row was incomplete (probably a crash while writing)")
                data = data[:cut]
            self._upgrade_locked(data, legacy)
            return None
        if header_end < 0 or first_line != HEADER_BYTES.rstrip(b"\r\n"):
            if HEADER_BYTES.startswith(data):  # a header cut short: nothing was ever acknowledged
                return self._set_aside(data, 0, why="the header was incomplete")
            raise VoteError(
                f"{self.path}: the first line is not the vote header ({', '.join(COLUMNS[:4])}, ...); "
                "this is not a vote file: pass another --votes path or move the file away"
            )
        cut = find_torn_tail(data)
        if cut is None or cut < header_end + 1:
            return None
        return self._set_aside(data, cut, why="the last row was incomplete (probably a crash while writing)")

    def _upgrade_locked(self, data: bytes, legacy: tuple[str, ...]) -> None:
        """Rewrite a file with an older header under the current one (new cells derived or
        empty), atomically; the original is kept as ``<votes>.pre-upgrade-<UTC time>``.
        """
        text = data.decode("utf-8")
        out = [HEADER_BYTES]
        for row_no, cells in _records(text):
            if row_no == 1 or not cells:
                continue
            rec = dict(zip(legacy, cells, strict=False))
            _complete(rec)
            out.append(encode_row({c: rec[c] for c in COLUMNS}))
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        backup = self.path.with_name(f"{self.path.name}.pre-upgrade-{stamp}")
        tmp = self.path.with_name(f".{self.path.name}.upgrade.tmp")
        try:
            backup.write_bytes(data)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                _write_all(fd, b"".join(out))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as e:
            raise VoteError(
                f"{self.path}: written by an older version and cannot be upgraded now ({e}); "
                "make the votes folder writable and restart"
            ) from e
        fsync_dir(self.path.parent)
        log.warning("%s: upgraded to the current vote columns; the original is kept as %s", self.path, backup)
        self._size = -1

    def _set_aside(self, data: bytes, cut: int, *, why: str) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        side = self.path.with_name(f"{self.path.name}.torn-{stamp}")
        n = 1
        while side.exists():
            n += 1
            side = self.path.with_name(f"{self.path.name}.torn-{stamp}-{n}")
        try:
            with open(side, "wb") as f:
                f.write(data[cut:])
                f.flush()
                os.fsync(f.fileno())
            with open(self.path, "r+b") as f:
                f.truncate(cut)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise VoteError(
                f"{self.path}: {why}, and it cannot be set aside now ({e}); "
                "make the votes folder writable (free some space) and restart"
            ) from e
        fsync_dir(self.path.parent)
        log.warning(
            "%s: %s; moved its %d bytes to %s; the rows before it are intact",
            self.path,
            why,
            len(data) - cut,
            side,
        )
        self.recovered.append(side)
        self._size = -1
        return side

    # -------------------------------------------------------------- index

    def _refresh_locked(self) -> None:
        size = self.path.stat().st_size if self.path.exists() else 0
        if size == self._size:
            return
        if self._size >= 0 and size > 0:
            # Another process appended (or crashed mid-row): check the tail first.
            with open(self.path, "rb") as f:
                f.seek(max(0, size - 2))
                if f.read() != _LINE_END:
                    self._recover_locked()
                    size = self.path.stat().st_size
        df = read_votes(self.path)
        self._index.clear()
        self._ids.clear()
        for i, r in enumerate(df.itertuples(index=False), start=2):
            key = (r.rater, r.test_id, r.trial_id)
            self._index.setdefault(key[:2], {})[key[2]] = VoteRef(r.vote_id, r.time_utc, r.choice, i)
            self._ids[r.vote_id] = key
        self._rows = len(df)
        self._size = size

    def effective_for(self, rater: str, test_id: str) -> dict[str, VoteRef]:
        """``{trial_id: VoteRef}`` of ``rater``'s effective votes in ``test_id``."""
        with self._locked():
            self._refresh_locked()
            return dict(self._index.get((rater, test_id), {}))

    def current(self, rater: str, test_id: str, trial_id: str) -> VoteRef | None:
        """The effective vote of ``rater`` on a trial, or None."""
        with self._locked():
            self._refresh_locked()
            return self._index.get((rater, test_id), {}).get(trial_id)

    def count(self) -> int:
        """Number of data rows (all votes, superseded ones included)."""
        with self._locked():
            self._refresh_locked()
            return self._rows

    def read(self) -> pd.DataFrame:
        """Every row, validated (see :func:`read_votes`)."""
        with self._locked():
            return read_votes(self.path)

    # -------------------------------------------------------------- writing

    def append(self, vote: Vote) -> Vote:
        """Append ``vote`` durably; returns it once it is on disk (fsynced).

        A vote on a trial the rater already answered must name the current effective
        vote in ``supersedes`` (that is how a vote is changed); otherwise, or when
        ``supersedes`` names a stale vote, :class:`VoteError` is raised and nothing is
        written. The check and the write happen under one lock, so two tabs of one rater
        cannot both answer the same trial.
        """
        data = encode_row(vote.to_row())
        with self._locked():
            self._refresh_locked()
            if vote.vote_id in self._ids:
                raise BadVote(f"vote {vote.vote_id} is already recorded")
            prev = self._index.get((vote.rater, vote.test_id), {}).get(vote.trial_id)
            if vote.supersedes and (prev is None or prev.vote_id != vote.supersedes):
                raise BadVote("the vote you are changing is no longer the current one; reload the page and try again")
            if prev is not None and vote.supersedes != prev.vote_id:
                raise BadVote(
                    "this trial already has your vote; to change it use 'Change previous vote' "
                    "(the page may be out of date: reload it)"
                )
            new_file = not self.path.exists() or self.path.stat().st_size == 0
            payload = (HEADER_BYTES if new_file else b"") + data
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as e:
                raise VoteError(f"{self.path}: could not save the vote ({e}); check the disk and vote again") from e
            start: int | None = None
            try:
                start = os.fstat(fd).st_size
                _write_all(fd, payload)
                os.fsync(fd)
            except OSError as e:
                # Not acknowledged, so not kept: a partial row (disk full mid-write) or a
                # whole row whose fsync failed would otherwise stay and count on reload.
                self._size = -1
                if start is not None:
                    self._cut_back(fd, start)
                raise VoteError(f"{self.path}: could not save the vote ({e}); check the disk and vote again") from e
            finally:
                os.close(fd)
            if new_file:
                fsync_dir(self.path.parent)
            self._rows += 1
            ref = VoteRef(vote.vote_id, vote.time_utc, vote.choice, self._rows + 1)
            self._index.setdefault((vote.rater, vote.test_id), {})[vote.trial_id] = ref
            self._ids[vote.vote_id] = vote.key
            self._size = (self._size if self._size > 0 else 0) + len(payload)
        return vote

    def _cut_back(self, fd: int, size: int) -> None:
        """Truncate the vote file to ``size`` bytes after a failed append (best effort, logged)."""
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError as e:
            log.error(
                "%s: could not remove the bytes of a vote that failed to save (from byte %d: %s); "
                "an incomplete row is set aside on the next start, a complete one would count: check the file's end",
                self.path,
                size,
                e,
            )


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        n = os.write(fd, view)
        view = view[n:]
