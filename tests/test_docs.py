"""Every command-line subcommand and option is documented in README.md (as sqlite-utils does)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from workbench.cli import build_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subcommands(sub).items()})
    return found


SUBCOMMANDS = _subcommands(build_parser())


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_subcommand_and_its_options_are_in_the_readme(name):
    assert f"python -m workbench {name.split()[0]}" in README, f"README does not show `python -m workbench {name}`"
    missing = [o for o in _options(SUBCOMMANDS[name]) if o not in README]
    assert not missing, f"README does not mention {', '.join(missing)} of `python -m workbench {name}`"


def test_every_app_option_is_in_the_readme():
    import app

    missing = [o for o in _options(app.build_parser()) if o not in README]
    assert "python app.py" in README and not missing, f"README does not mention {', '.join(missing)} of app.py"
