"""The `sparse3d` command as a new user meets it, for every (sub)command found in the parser tree
(a new command is covered without editing this file): ``--help`` exits 0, says what the command does,
gives every option a help text and shows its default; a bad value ends in a one-line usage error
(exit code 2), never a traceback. Parsers run in-process; one subprocess runs the installed script."""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

import sparse3d
from sparse3d.cli import build_parser, main
from sparse3d.utils.argtypes import default_worth_showing

BAD = "not-a-number"


def walk(parser: argparse.ArgumentParser,
         path: Tuple[str, ...] = ()) -> Iterator[Tuple[Tuple[str, ...], argparse.ArgumentParser]]:
    """(command words, parser) of ``parser`` and every sub-parser below it (aliases once)."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield from walk(sub, path + (name,))


def _has_subcommands(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


COMMANDS = list(walk(build_parser()))
LEAVES = [(path, p) for path, p in COMMANDS if not _has_subcommands(p)]


def _id(path: Tuple[str, ...]) -> str:
    return " ".join(("sparse3d",) + path)


def _user_actions(parser: argparse.ArgumentParser) -> List[argparse.Action]:
    return [a for a in parser._actions
            if not isinstance(a, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction))]


def _help_entries(text: str) -> List[Tuple[str, str]]:
    """(invocation, help text) of each argument entry of a ``--help`` output, whitespace collapsed."""
    entries: List[List[str]] = []
    current = None
    for line in text.splitlines():
        if re.match(r"^  \S", line):
            inv, _, rest = line.strip().partition("  ")
            current = [inv, rest]
            entries.append(current)
        elif current is not None and line.startswith("    ") and line.strip():
            current[1] += " " + line.strip()
        else:
            current = None
    return [(inv, " ".join(h.split())) for inv, h in entries]


def _shown(default) -> List[str]:
    """Ways a help text may write ``default``."""
    out = [str(default)]
    if isinstance(default, float):
        out.append(f"{default:g}")
    if isinstance(default, (list, tuple)):
        out += [",".join(map(str, default)), " ".join(map(str, default)), "x".join(map(str, default))]
    return out


def _run(argv: List[str], capsys) -> Tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    out, err = capsys.readouterr()
    return e.value.code, out, err


@pytest.mark.parametrize("path,parser", COMMANDS, ids=[_id(p) for p, _ in COMMANDS])
def test_help(path, parser, capsys):
    code, out, err = _run(list(path) + ["--help"], capsys)
    assert code == 0, err
    assert out.startswith(f"usage: {_id(path)}"), out[:200]
    assert parser.description and parser.description.split()[0] in out, \
        f"`{_id(path)} --help` does not say what the command does (no description)"
    entries = _help_entries(out)
    problems = []
    for action in _user_actions(parser):
        name = action.option_strings[-1] if action.option_strings else (action.metavar or action.dest)
        if not action.help or action.help == argparse.SUPPRESS:
            problems.append(f"{name}: no help text")
            continue
        if not action.option_strings or not default_worth_showing(action.default):
            continue
        mine = [h for inv, h in entries if inv.startswith("-") and name in re.split(r"[ ,]+", inv)]
        assert len(mine) == 1, (name, entries)
        after = mine[0].lower().partition("default")[2]
        if not mine[0].lower().count("default") or not any(s.lower() in after for s in _shown(action.default)):
            problems.append(f"{name}: default {action.default!r} not shown in {mine[0]!r}")
    assert not problems, f"`{_id(path)} --help`:\n" + "\n".join(problems)


def _bad_values(parser: argparse.ArgumentParser) -> List[Tuple[List[str], str]]:
    """(argv tail, argument name) of each value the parser must reject: every option that takes a
    typed value or a choice, and a first positional with a type or choices."""
    cases = []
    positionals = [a for a in _user_actions(parser) if not a.option_strings]
    for action in _user_actions(parser):
        if action.nargs == 0 or (not action.option_strings and action is not positionals[0]):
            continue
        rejects = action.choices is not None
        if not rejects and action.type not in (None, str):
            try:
                action.type(BAD)
            except Exception:  # any error: argparse must turn it into a usage error (else: traceback)
                rejects = True
        if rejects:
            name = action.option_strings[-1] if action.option_strings else action.dest
            cases.append(([name, BAD] if action.option_strings else [BAD], name))
    # no typed option: an unknown option must be rejected (after a value for each positional, so that the
    # missing positionals are not what argparse complains about)
    fill = ["x" for a in positionals if a.nargs in (None, 1, "+")]
    return cases or [(fill + ["--no-such-option"], "--no-such-option")]


BAD_CASES = [(path, argv, name) for path, p in LEAVES for argv, name in _bad_values(p)]


@pytest.mark.parametrize("path,argv,name", BAD_CASES, ids=[f"{_id(p)} {' '.join(a)}" for p, a, _ in BAD_CASES])
def test_bad_value_is_a_usage_error(path, argv, name, capsys):
    code, out, err = _run(list(path) + argv, capsys)
    assert code == 2, (code, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    if name == "--no-such-option":  # argparse reports leftover arguments from the top-level parser
        assert lines[-1] == "sparse3d: error: unrecognized arguments: --no-such-option", err
        return
    assert lines[0].startswith(f"usage: {_id(path)}"), err
    assert re.match(rf"^{re.escape(_id(path))}: error: .*{re.escape(name)}", lines[-1]), err
    assert BAD in lines[-1], f"the error should repeat the bad value: {lines[-1]!r}"


def test_every_leaf_has_a_bad_value_case():
    assert {p for p, _, _ in BAD_CASES} == {p for p, _ in LEAVES}


def test_no_command_is_a_usage_error(capsys):
    code, _, err = _run([], capsys)
    assert code == 2 and "usage: sparse3d" in err and "error:" in err


def test_version_in_process(capsys):
    code, out, _ = _run(["--version"], capsys)
    assert code == 0 and out.strip() == f"sparse3d {sparse3d.__version__}"


def test_installed_script_version():
    script = Path(sys.executable).parent / "sparse3d"
    if not script.is_file():
        pytest.skip(f"the console script {script} is not installed (pip install -e . installs it)")
    run = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"sparse3d {sparse3d.__version__}"


@pytest.mark.parametrize("conv,good,bad,message", [
    ("positive_int", ("3", 3), "0", "expected an integer >= 1, got 0"),
    ("nonneg_int", ("0", 0), "-1", "expected an integer >= 0, got -1"),
    ("positive_float", ("0.5", 0.5), "inf", "expected a number > 0, got inf"),
    ("nonneg_float", ("0", 0.0), "-0.1", "expected a number >= 0, got -0.1"),
    ("fraction", ("0", 0.0), "1", "expected a number in [0, 1), got 1.0"),
    ("unit_fraction", ("1", 1.0), "0", "expected a number in (0, 1], got 0.0"),
    ("probability", ("1", 1.0), "1.5", "expected a number in [0, 1], got 1.5"),
    ("int_triple", ("32x32x64", (32, 32, 64)), "32,32", "expected three integers >= 1 like 32,32,64, got '32,32'"),
    ("device", ("cuda:1", "cuda:1"), "gpu0", "expected a torch device such as cpu, cuda or cuda:1, got 'gpu0'"),
])
def test_argtypes(conv, good, bad, message):
    from sparse3d.utils import argtypes
    f = getattr(argtypes, conv)
    assert f(good[0]) == good[1]
    with pytest.raises(argparse.ArgumentTypeError) as e:
        f(bad)
    assert str(e.value) == message


def test_help_formatter_shows_defaults_once():
    from sparse3d.utils.argtypes import polish_help
    p = argparse.ArgumentParser(prog="x")
    sub = p.add_subparsers().add_parser("cmd", help="do a thing")
    sub.add_argument("--a", type=int, default=3, help="plain")
    sub.add_argument("--b", type=int, default=4, help="stated (default 4)")
    sub.add_argument("--c", default=None, help="none")
    sub.add_argument("--d", action="store_true", help="flag")
    polish_help(p)
    text = " ".join(sub.format_help().split())
    assert "Do a thing." in text
    assert "plain (default: 3)" in text and "stated (default 4) " in text and "(default: 4)" not in text
    assert "none --d" in text and "(default: None)" not in text and "(default: False)" not in text


@pytest.mark.parametrize("group", ["predict", "eval", "demo"])
def test_old_form_without_task_word_runs_completion(group, capsys):
    """`sparse3d predict --checkpoint ...` (before segmentation arrived) still means the completion task,
    with a notice that names the new form."""
    code, _, err = _run([group, "--device", BAD], capsys)
    assert code == 2
    assert f"running `sparse3d {group} completion`" in err
    assert f"sparse3d {group} completion: error:" in err


def test_group_help_lists_every_task(capsys):
    for group in ("train", "predict", "eval", "demo"):
        code, out, _ = _run([group, "--help"], capsys)
        assert code == 0 and "completion" in out and "segmentation" in out, (group, out)
