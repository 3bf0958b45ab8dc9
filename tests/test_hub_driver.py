"""The hub test's driver (tests/hub/drive.py): its pure parts, without a hub, root or users."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

DRIVER = Path(__file__).parent / "hub" / "drive.py"


@pytest.fixture(scope="module")
def drive() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hub_drive", DRIVER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["hub_drive"] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def _stream(text: str, name: str = "stdout") -> dict[str, str]:
    return {"output_type": "stream", "name": name, "text": text}


def _cell(source: str, outputs: list[dict[str, str]], tags: tuple[str, ...] = ()) -> dict:
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)})
    cell["outputs"] = [nbformat.v4.new_output(**o) for o in outputs]
    return cell


def test_consecutive_stream_messages_merge_as_nbval_merges_them(drive) -> None:
    outputs = [_stream("a\n"), _stream("b  \n"), _stream("oops\n", "stderr"), _stream("c\n")]
    assert drive.coalesce_outputs(outputs) == [
        ("stdout", "a\nb"), ("stderr", "oops"), ("stdout", "c")]


def test_a_checked_cell_that_prints_otherwise_is_a_failure(drive) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [_cell("print(101)", [_stream("101\n")], ("nbval-check-output",)),
                _cell("print(1)", [_stream("1\n")])]
    cells = drive.committed_cells(nb)
    ran_same = [[("stdout", "101")], [("stdout", "something else")]]
    assert drive.mismatched_cells(cells, ran_same) == []  # the unchecked cell may differ
    ran_other = [[("stdout", "100")], [("stdout", "1")]]
    (problem,) = drive.mismatched_cells(cells, ran_other)
    assert "code cell 1 (checked)" in problem and "'101'" in problem and "'100'" in problem


def test_an_error_in_an_unchecked_cell_is_a_failure(drive) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [_cell("1 / 0", []), _cell("x", [], ("raises-exception",))]
    cells = drive.committed_cells(nb)
    errors = [[("error", "ZeroDivisionError: division by zero")], [("error", "NameError: x")]]
    (problem,) = drive.mismatched_cells(cells, errors)
    assert problem.startswith("code cell 1: ZeroDivisionError")


def test_attack_rows_keep_an_empty_detail_that_printing_stripped(drive) -> None:
    printed = ("HUB-ATTACK-EXIT 0\nunix:/x (A's own settings)\tfound and attacked\tOK\n"
               "unix /x\tconnect\tREFUSED\tPermissionError: denied\nnot a row")
    assert drive.attack_report_rows(printed) == [
        ["unix:/x (A's own settings)", "found and attacked", "OK", ""],
        ["unix /x", "connect", "REFUSED", "PermissionError: denied"]]


def test_ram_is_the_hub_plus_every_learner_at_peak_plus_the_os(drive) -> None:
    assert drive.ram_mb(learners=10, learner_peak_mb=700, hub_mb=170) == 170 + 7000 + 1024


def test_sizing_lines_scale_ram_and_run_all_waits_with_the_room(drive) -> None:
    lines = drive.sizing_lines(learner_peak_mb=700, learner_pss_mb=500, hub_mb=0, cpu_s=20,
                               counts=(10,), cores=(4,))
    # 10 x 700 + 1024 = 8024 MB; 10 x 500 + 1024 = 6024 MB; 10 x 20 CPU-seconds over 4 cores.
    assert lines[1] == "   10 learners at once: 7.8 GB (5.9 GB counting shared pages once)"
    assert lines[-1] == "   10 learners: 50 s on 4 cores"


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not an exact pin"
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_the_hub_pins_add_to_the_lock_and_never_repin_it() -> None:
    # uv installs the lock and these together: a second pin of a locked package would fight it.
    root = Path(__file__).parent.parent
    hub = _pins(root / "tests" / "hub" / "requirements-hub.txt")
    lock = _pins(root / "requirements.txt")
    assert hub["jupyterhub"].startswith("5.")
    assert sorted(set(hub) & set(lock)) == []
