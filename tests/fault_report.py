"""The fault suite's figures: every fault test records (figure, target, measured, ok), they are printed at the end
of every run, and ``--faults-report DIR`` also writes them as ``faults.md`` and ``faults.json`` (the README links
``benchmarks/faults.md``, written by a long run: ``pytest -m faults --faults-report benchmarks``).

Fault tests carry the ``faults`` marker. A plain run (CI) runs them in their short variant; ``-m faults`` selects
only them, in their long variant (more trials, more objects), still bounded in time and talking only to loopback.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Figure:
    test: str
    figure: str
    target: str
    measured: str
    ok: bool


_FIGURES: list[Figure] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--faults-report", metavar="DIR", default=None,
                     help="write the fault suite's figures to DIR/faults.md and DIR/faults.json")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: a fault-suite test (short in a plain run, long with -m faults)")


def long_variant(config: pytest.Config) -> bool:
    return "faults" in (config.getoption("markexpr") or "")


class Recorder:
    def __init__(self, test: str, long: bool) -> None:
        self.test, self.long = test, long

    def add(self, figure: str, target: str, measured: object, ok: bool) -> None:
        _FIGURES.append(Figure(self.test, figure, target, str(measured), bool(ok)))


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Recorder:
    """Where a fault test records its figures; ``figures.long`` says which variant runs."""
    return Recorder(request.node.name, long_variant(request.config))


def _table() -> str:
    rows = ["| test | figure | target | measured | ok |", "|---|---|---|---|---|"]
    rows += [f"| {f.test} | {f.figure} | {f.target} | {f.measured} | {'yes' if f.ok else '**no**'} |" for f in _FIGURES]
    return "\n".join(rows)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("fault suite figures")
    terminalreporter.write_line(_table())
    out = config.getoption("--faults-report")
    if out:
        _write(Path(out), long_variant(config))


def _write(path: Path, long: bool) -> None:
    """Merge this run's rows into DIR/faults.json (a test that ran replaces its old rows), so long runs of single
    files add up to one table; then write faults.md from it."""
    path.mkdir(parents=True, exist_ok=True)
    variant = "long (-m faults)" if long else "short (plain run)"
    stamp = f"{time.strftime('%Y-%m-%d', time.gmtime())}, {variant}"
    store = path / "faults.json"
    old = json.loads(store.read_text()) if store.exists() else []
    ran = {f.test for f in _FIGURES}
    rows = [r for r in old if r["test"] not in ran] + [{**asdict(f), "run": stamp} for f in _FIGURES]
    store.write_text(json.dumps(rows, indent=2) + "\n")
    head = ("# Fault suite figures\n\nWritten by `pytest -m faults --faults-report benchmarks` (the long variant; a "
            "run of some files replaces only their rows). Targets are the issue's; every row is measured in the run "
            f"named in its last column ({platform.machine()}, Python {platform.python_version()}).\n\n")
    table = ["| test | figure | target | measured | ok | run |", "|---|---|---|---|---|---|"]
    table += [f"| {r['test']} | {r['figure']} | {r['target']} | {r['measured']} | {'yes' if r['ok'] else '**no**'} "
              f"| {r.get('run', '')} |" for r in rows]
    (path / "faults.md").write_text(head + "\n".join(table) + "\n")
