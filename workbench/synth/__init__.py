"""Synthesis backends. One file per backend behind :func:`synthesize_for`."""

from __future__ import annotations

from ..errors import ModelUnavailable


def synthesize_for(renderer, req, plan: dict):
    """Synthesize ``req`` with the model backend named in ``plan``; ``(y, sr, provenance)``."""
    raise ModelUnavailable(f"{req.checkpoint}: model backend not available in this build")
