"""The workbench's error types: one root, one subclass per domain.

Every message is meant for a person: it names the file, field or value at fault and
says what to do. The UI shows them with ``gr.Error``; the CLI prints them and exits 1.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Root of every error the workbench raises on purpose."""


class CatalogError(WorkbenchError):
    """``checkpoints.yaml`` (or another catalog) is missing or invalid.

    ``problems`` holds every problem found, one ``file:line: message`` string each.
    """

    subject = "catalog"  # what the problems are in, for the message's first line

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        n = len(self.problems)
        head = "1 problem" if n == 1 else f"{n} problems"
        super().__init__(f"{head} in {self.subject}:\n" + "\n".join(f"  {p}" for p in self.problems))


class PlanError(CatalogError):
    """A blind-test plan (plan YAML or the admin form) is invalid; ``problems`` as above."""

    subject = "the test plan"


class AudioError(WorkbenchError):
    """An audio file or array cannot be used (unreadable, empty, silent, NaN, too long)."""


class ModelUnavailable(WorkbenchError):
    """A model (XTTS checkpoint, enhancer weights) cannot be loaded or run; says why."""


class RenderError(WorkbenchError):
    """A render request cannot be served (unknown id, no backend available)."""


class VoteError(WorkbenchError):
    """A vote cannot be recorded (bad trial, oversized comment, disk problem)."""


class AuthError(WorkbenchError):
    """Login, users file or role problems (e.g. a rater calling an admin function)."""


class VoteTableError(WorkbenchError):
    """A table of votes cannot be analysed (a required column is missing, a cell holds an
    impossible value). The message names the row and column. Not :class:`VoteError`, which
    is about storing votes.
    """
