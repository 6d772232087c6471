"""Every option of every command says what it does and, when it has one, its default."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from ibcbench.cli import build_parser


def _parsers(
    parser: argparse.ArgumentParser, prog: str = "ibcbench"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{prog} {name}")


def _options() -> Iterator[tuple[str, argparse.Action]]:
    for prog, parser in _parsers(build_parser()):
        for action in parser._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            yield f"{prog} {'/'.join(action.option_strings)}", action


def _has_default(action: argparse.Action) -> bool:
    """An option whose value, when not given, is something other than 'off' or 'nothing'."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._VersionAction)):
        return False
    return action.default is not None and action.default is not argparse.SUPPRESS


def test_every_option_has_help() -> None:
    missing = [name for name, action in _options() if not (action.help or "").strip()]
    assert missing == []


def _shown(default: object) -> str:
    """How a help text writes a default: 300.0 as 300, a tuple as 1,4,8."""
    if isinstance(default, float):
        return f"{default:g}"
    if isinstance(default, (tuple, list)):
        return ",".join(str(x) for x in default)
    return str(default)


def test_every_option_with_a_default_says_it() -> None:
    """'(default: X)' in every option's help that has a default other than none or off."""
    silent = [
        f"{name} (default {action.default!r})"
        for name, action in _options()
        if _has_default(action)
        and action.default != []
        and f"default: {_shown(action.default)}" not in " ".join((action.help or "").split())
    ]
    assert silent == []


def test_an_option_that_collects_values_says_so_and_its_default() -> None:
    silent = [
        name
        for name, action in _options()
        if action.default == [] and "default: " not in (action.help or "")
    ]
    assert silent == []


def test_run_all_says_its_scale_differs_from_the_main_job() -> None:
    (action,) = [a for name, a in _options() if name == "ibcbench run-all --scale"]
    assert "default: tiny" in (action.help or "")
    assert "scripts/bench" in (action.help or "")
