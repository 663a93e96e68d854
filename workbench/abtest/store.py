"""The one store of blind-test plans and rater schedules, behind one lock.

``<folder>/<test_id>.json`` holds a plan; ``<folder>/<test_id>.schedules.jsonl`` one
line per rater (arrival slot, seed and order) written when they first start. Every
write (save, status change, delete, a new schedule) happens under one lock per folder:
a thread lock shared by every :class:`PlanStore` opened on that folder in this process
(the Blind A/B tab and the Results tab open their own) plus ``flock`` on
``<folder>/.lock`` for other processes. Reads need no lock: files are replaced
atomically and schedules are append-only.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import VoteError, WorkbenchError
from ..fsutil import file_lock, write_json_atomic
from ..votes import BadVote
from .plan import STATUSES, TestPlan, check_test_id
from .schedule import RaterSchedule, draw_schedule, schedule_from_dict

log = logging.getLogger(__name__)
Pathlike = str | Path


@dataclass
class _Shared:
    """What every PlanStore on one folder shares in this process."""

    plans: dict = field(default_factory=dict)  # test_id -> ((mtime_ns, size), TestPlan)
    schedules: dict = field(default_factory=dict)  # (test_id, rater) -> RaterSchedule


_shared: dict[str, _Shared] = {}
_shared_guard = threading.Lock()


class PlanStore:
    """Test plans as JSON files in one folder, plus each rater's recorded schedule."""

    def __init__(self, folder: Pathlike):
        self.folder = Path(folder)
        key = os.path.abspath(self.folder)
        with _shared_guard:
            self._s = _shared.setdefault(key, _Shared())

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's lock (re-entrant in one thread; ``flock`` across processes)."""
        with file_lock(self.folder / ".lock"):
            yield

    def _path(self, test_id: str) -> Path:
        return self.folder / f"{check_test_id(test_id)}.json"

    def save(self, plan: TestPlan) -> TestPlan:
        with self.locked():
            write_json_atomic(self._path(plan.test_id), plan.to_dict(), indent=1)
        return plan

    def get(self, test_id: str) -> TestPlan:
        """The stored plan (re-read only when its file changed)."""
        path = self._path(test_id)
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            hit = self._s.plans.get(test_id)
            if hit is not None and hit[0] == stamp:
                return hit[1]
            plan = TestPlan.from_dict(json.loads(path.read_text(encoding="utf-8")))
            self._s.plans[test_id] = (stamp, plan)
            return plan
        except FileNotFoundError:
            raise BadVote(f"unknown test {test_id!r}; pick a test from the list") from None
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise VoteError(f"{path}: not a valid test plan ({e}); restore it or delete it") from None

    def list(self, status: str | None = None) -> list[TestPlan]:
        """Every stored plan (newest first), optionally only those with ``status``."""
        plans = []
        if self.folder.is_dir():
            for p in self.folder.glob("ab-*.json"):
                try:
                    plan = self.get(p.stem)
                except WorkbenchError as e:
                    log.warning("%s", e)
                    continue
                if status is None or plan.status == status:
                    plans.append(plan)
        return sorted(plans, key=lambda p: (p.created_utc, p.test_id), reverse=True)

    def set_status(self, test_id: str, status: str) -> TestPlan:
        if status not in STATUSES:
            raise VoteError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        with self.locked():
            return self.save(replace(self.get(test_id), status=status))

    def delete(self, test_id: str) -> TestPlan:
        """Remove a test from the lists: its plan and schedules move to ``<folder>/deleted/``.

        Votes are never touched (the CSV keeps every row, with the trial's checkpoints).
        """
        with self.locked():
            plan = self.get(test_id)
            bin_ = self.folder / "deleted"
            bin_.mkdir(exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            for src in (self._path(test_id), self.folder / f"{test_id}.schedules.jsonl"):
                if src.exists():
                    os.replace(src, bin_ / f"{src.name}.{stamp}")
            self._s.plans.pop(test_id, None)
            for key in [k for k in self._s.schedules if k[0] == test_id]:
                del self._s.schedules[key]
            return plan

    def schedule(self, plan: TestPlan, rater: str) -> RaterSchedule:
        """The rater's recorded schedule; on first use drawn for the next free slot and recorded."""
        key = (plan.test_id, rater)
        hit = self._s.schedules.get(key)
        if hit is not None:
            return hit
        with self.locked():
            hit = self._s.schedules.get(key)
            if hit is not None:
                return hit
            path = self.folder / f"{plan.test_id}.schedules.jsonl"
            raters: set[str] = set()
            if path.exists():
                with open(path, encoding="utf-8") as f:
                    for line in f:
                        try:
                            d = json.loads(line)
                        except ValueError:
                            continue  # a line cut short by a crash: drawn again below
                        if d.get("rater") == rater:
                            sched = schedule_from_dict(plan, d)
                            self._s.schedules[key] = sched
                            return sched
                        raters.add(d.get("rater"))
            sched = draw_schedule(plan, rater, slot=len(raters))
            rec = {**sched.to_dict(), "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, (json.dumps(rec) + "\n").encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            self._s.schedules[key] = sched
            return sched

    def raters(self, test_id: str) -> builtins.list[str]:  # `list` here is the method above
        """Raters who started ``test_id``, in arrival order."""
        path = self.folder / f"{check_test_id(test_id)}.schedules.jsonl"
        out: list[str] = []
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    name = json.loads(line).get("rater")
                except ValueError:
                    continue
                if name and name not in out:
                    out.append(name)
        return out
