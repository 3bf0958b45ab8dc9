"""Keep the lesson notebooks honest: generated navigation, outputs from one clean run.

``python -m perflab notebooks`` rewrites each lesson's navigation line from the lesson titles,
then executes every notebook top to bottom in a fresh kernel at the ``small`` scale and saves
the outputs. Nobody edits outputs by hand; this is the only way they change.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import lesson_time
from .errors import PerflabError
from .footprint import Footprint
from .paths import REPO_ROOT

__all__ = [
    "NAV_MARKER",
    "ExecutionReport",
    "execute_notebook",
    "lesson_paths",
    "record_times",
    "update_navigation",
    "update_times",
]

NOTEBOOKS = REPO_ROOT / "notebooks"
README = REPO_ROOT / "README.md"
NAV_MARKER = "<!-- navigation: generated -->"
CONTENTS_LINK = "[Contents](../README.md#lessons)"
# Binder guarantees 1 GB: a lesson's kernel and every server and worker it starts must fit in it.
MEMORY_LIMIT_MB = 1024
# The kernel's own peak. On Linux, VmHWM: getrusage's ru_maxrss carries over across exec, so a
# kernel started by a large process (a launcher, a test runner) would report that one's peak.
_PEAK_MEMORY_PROBE = (
    "import resource as _r, sys as _s\n"
    "try:\n"
    "    _kb = next(int(_l.split()[1]) for _l in open('/proc/self/status')"
    " if _l.startswith('VmHWM:'))\n"
    "except (OSError, StopIteration):\n"
    "    _kb = _r.getrusage(_r.RUSAGE_SELF).ru_maxrss // (1024 if _s.platform == 'darwin' else 1)\n"
    "print('PERFLAB_PEAK_RSS_KB', _kb)"
)


def lesson_paths(folder: Path = NOTEBOOKS) -> list[Path]:
    """Return the lesson notebooks in order (``NN-name.ipynb``)."""
    return sorted(p for p in folder.glob("[0-9][0-9]-*.ipynb"))


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _write(path: Path, nb: dict[str, Any]) -> None:
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def lesson_title(nb: dict[str, Any]) -> str:
    """Return the lesson's ``# Title`` (the first level-one heading)."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            match = re.search(r"^# (.+)$", _source(cell), re.MULTILINE)
            if match:
                return match.group(1).strip()
    raise PerflabError("A lesson needs a '# Title' heading in a markdown cell.")


def _short(path: Path) -> str:
    return path.name.split("-", 1)[0]


def update_navigation(paths: list[Path] | None = None) -> list[Path]:
    """Rewrite each lesson's first cell as ``< previous | Contents | next >``; return changes."""
    paths = paths if paths is not None else lesson_paths()
    titles = {p: lesson_title(_read(p)) for p in paths}
    changed = []
    for i, path in enumerate(paths):
        parts = []
        if i > 0:
            prev = paths[i - 1]
            parts.append(f"[< {_short(prev)} · {titles[prev]}]({prev.name})")
        parts.append(CONTENTS_LINK)
        if i + 1 < len(paths):
            nxt = paths[i + 1]
            parts.append(f"[{_short(nxt)} · {titles[nxt]} >]({nxt.name})")
        text = f"{NAV_MARKER}\n" + " | ".join(parts)
        nb = _read(path)
        first = nb["cells"][0] if nb["cells"] else None
        if first is not None and _source(first).startswith(NAV_MARKER):
            if _source(first) == text:
                continue
            first["source"] = text
        else:
            nb["cells"].insert(0, {"cell_type": "markdown", "metadata": {}, "source": text})
        _write(path, nb)
        changed.append(path)
    return changed


@dataclass
class ExecutionReport:
    """What one clean run of a notebook produced."""

    path: Path
    seconds: float
    peak_rss_mb: float
    errors: list[str]
    peak_tree_mb: float = 0.0  # with every process the kernel started, when sampled
    notebook: Any = None  # the executed notebook, for tests that read its outputs

    def outputs_of(self, tag: str) -> list[str]:
        """Return the text each cell tagged ``tag`` printed, in order."""
        texts = []
        for cell in self.notebook.cells:
            if tag in cell.metadata.get("tags", []):
                texts.append("".join(o.get("text", "") for o in cell.get("outputs", [])
                                     if o.get("output_type") == "stream"))
        return texts


def _tidy(nb: Any) -> None:
    """Hide solution sources and drop run-specific metadata so diffs show only real changes."""
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "solution" in tags:
            cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                output.get("metadata", {}).pop("execution", None)
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3",
    }
    nb.metadata.get("language_info", {}).pop("version", None)


def execute_notebook(
    path: Path,
    *,
    scale: str = "small",
    write: bool = True,
    timeout: int = 900,
    footprint: bool = False,
) -> ExecutionReport:
    """Run ``path`` top to bottom in a fresh kernel; save outputs unless ``write`` is False.

    ``footprint=True`` also samples the memory of the kernel and everything it starts
    (``peak_tree_mb``); sampling costs CPU, so runs whose timings are kept don't.
    """
    import time

    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    probe = nbformat.v4.new_code_cell(_PEAK_MEMORY_PROBE)
    nb.cells.append(probe)
    saved = {
        key: os.environ.get(key)
        for key in ("PERFLAB_SCALE", "JPY_SESSION_NAME", "PERFLAB_STRICT", "PERFLAB_QUICK")
    }
    # These timings are kept (committed or compared run against run): never the quick rounds.
    os.environ.pop("PERFLAB_QUICK", None)
    os.environ["PERFLAB_SCALE"] = scale
    # Outputs that get committed must come from the real servers: a lab that fell back to
    # SQLite or local memory would store "Skipped" lines where the lesson shows measurements.
    os.environ["PERFLAB_STRICT"] = "1"
    # What Jupyter Server tells a kernel, so setup() names the lab after the lesson here too.
    os.environ["JPY_SESSION_NAME"] = str(path)
    started = time.perf_counter()
    sampler = Footprint().start() if footprint else None
    try:
        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3", allow_errors=True,
            record_timing=True, resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()
    finally:
        if sampler is not None:
            sampler.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    seconds = time.perf_counter() - started
    nb.cells.pop()
    lesson_time.record_run(nb)  # this run's time per part, for the lesson's Time line
    peak_kb = 0
    for output in probe.get("outputs", []):
        match = re.search(r"PERFLAB_PEAK_RSS_KB (\d+)", output.get("text", ""))
        if match:
            peak_kb = int(match.group(1))
    errors = []
    for i, cell in enumerate(nb.cells):
        if "raises-exception" in cell.metadata.get("tags", []):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors.append(f"cell {i}: {output.get('ename')}: {output.get('evalue')}")
    report = ExecutionReport(
        path=path, seconds=seconds, peak_rss_mb=peak_kb / 1024, errors=errors, notebook=nb,
        peak_tree_mb=max(sampler.peak_mb, peak_kb / 1024) if sampler is not None else 0.0,
    )
    if write and not errors:
        save(report)
    return report


def save(report: ExecutionReport) -> None:
    """Write a clean run's outputs into its notebook (tidied: no timings, no kernel ids)."""
    import nbformat

    _tidy(report.notebook)
    lesson_time.write_time_line(report.notebook)
    nbformat.write(report.notebook, report.path)


def record_times(report: ExecutionReport) -> None:
    """Keep a dry run's time per part in its lesson, and its Time line, leaving outputs alone."""
    nb = _read(report.path)
    nb["metadata"].setdefault("perflab", {})["run_seconds"] = (
        report.notebook.metadata["perflab"]["run_seconds"]
    )
    lesson_time.write_time_line(nb)
    _write(report.path, nb)


def update_times(paths: list[Path], readme: Path = README) -> list[Path]:
    """Rewrite each lesson's Time line and the README's lesson table from the lessons."""
    changed = []
    lessons = [(path, _read(path)) for path in paths]
    for path, nb in lessons:
        if lesson_time.write_time_line(nb):
            _write(path, nb)
            changed.append(path)
    if lesson_time.write_readme_table(readme, lessons):
        changed.append(readme)
    return changed
