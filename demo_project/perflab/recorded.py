"""Figures a lesson shows but cannot measure in this kernel, kept as a labelled, dated record.

A lesson about Django 6.1's fetch modes runs on a 5.2 kernel by default: there the live cells
say what they need and run nothing. ``lab.record(name, *measurements)`` in a cell that does run
(on 6.1) keeps what it measured; ``lab.recorded(name)`` shows it anywhere, labelled with the
versions, machine and date it came from, never as this run's figures. The record is a JSON file
in ``notebooks/recorded/``, committed with the lessons.

``lab.record`` writes only when asked (``PERFLAB_RECORD=1``, as ``python -m perflab record``
sets it). Otherwise it checks the live run against the record: query counts are facts, and a
count that changed means the record is stale, which is an error. Timings are not compared: they
are another machine's. ``perflab verify`` skips recorded figures (``"recorded": true``).
"""

from __future__ import annotations

import html
import json
import os
import platform
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perflab.errors import PerflabError
from perflab.formatting import format_ms
from perflab.paths import REPO_ROOT

if TYPE_CHECKING:
    from perflab.measure import Measurement

__all__ = ["RECORDED_DIR", "Recorded", "load", "record"]

RECORDED_DIR = REPO_ROOT / "notebooks" / "recorded"


@dataclass(frozen=True)
class Recorded:
    """Hold a record: where and when it was measured, and each measurement's figures."""

    name: str
    title: str
    source: dict[str, Any]
    measurements: list[dict[str, Any]]

    @property
    def provenance(self) -> str:
        s = self.source
        return (
            f"Recorded {s['date']} with Django {s['django']} and Python {s['python']} on "
            f"{s['machine']} ({s['cpus']} CPUs), scale {s['scale']!r}, {s['database']}; "
            "not this run's figures."
        )

    def __str__(self) -> str:
        lines = [f"{self.title} (recorded)", self.provenance]
        for m in self.measurements:
            lines.append(f"  {m['label']}: {m['query_count']} queries, "
                         f"best {format_ms(m['min_ms'])} ms, median {format_ms(m['median_ms'])} ms")
            lines += [f"    {group}" for group in m["similar"]]
        return "\n".join(lines)

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> tuple[dict[str, str], dict[str, Any]]:
        e = html.escape
        rows = "".join(
            f"<tr><td>{e(m['label'])}</td><td>{m['query_count']}</td>"
            f"<td>{format_ms(m['min_ms'])}</td><td>{format_ms(m['median_ms'])}</td>"
            f"<td>{'<br>'.join(e(g) for g in m['similar']) or '-'}</td></tr>"
            for m in self.measurements
        )
        table = (
            f"<table class='perflab-recorded'><caption>{e(self.title)} <b>(recorded)</b>"
            f"</caption><thead><tr><th>label</th><th>queries</th><th>best ms</th><th>median ms</th>"
            f"<th>similar queries</th></tr></thead><tbody>{rows}</tbody></table>"
            f"<p><i>{e(self.provenance)}</i></p>"
        )
        return (
            {"text/html": table, "text/plain": str(self)},
            {"perflab": [{"recorded": True, "name": self.name, "source": self.source}]},
        )


def _path(name: str) -> Path:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise PerflabError(
            f"A record's name is lowercase letters, digits and dashes, not {name!r}."
        )
    return RECORDED_DIR / f"{name}.json"


def _shown(path: Path) -> str:
    try:
        return path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def load(name: str) -> Recorded:
    """Return the committed record ``name``; a clear error if there is none."""
    path = _path(name)
    if not path.exists():
        raise PerflabError(
            f"No recorded figures named {name!r} ({_shown(path)} is missing). "
            "Run the lesson where they can be measured with `python -m perflab record`."
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    return Recorded(data["name"], data["title"], data["source"], data["measurements"])


def record(
    name: str, measurements: list[Measurement], *, title: str, scale: str, database: str
) -> Recorded:
    """Write the record (``PERFLAB_RECORD=1``) or check this run's query counts against it."""
    import django

    taken = Recorded(
        name=name,
        title=title,
        source={
            "date": datetime.now(UTC).date().isoformat(),
            "django": django.get_version(),
            "python": platform.python_version(),
            "machine": f"{platform.system()} {platform.machine()}",
            "cpus": os.cpu_count(),
            "scale": scale,
            "database": database,
        },
        measurements=[
            {
                "label": m.label,
                "query_count": m.query_count,
                "median_ms": round(m.median_ms, 4),
                "min_ms": round(m.min_ms, 4),
                "max_ms": round(m.max_ms, 4),
                "similar": [str(group) for group in m.similar_groups],
            }
            for m in measurements
        ],
    )
    path = _path(name)
    if os.environ.get("PERFLAB_RECORD") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"name": name, "title": title, "source": taken.source,
                "measurements": taken.measurements}
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"Recorded {len(measurements)} measurements in {_shown(path)}.",
              file=sys.stderr)
        return taken
    committed = load(name)
    counts = {m["label"]: m["query_count"] for m in committed.measurements}
    live = {m["label"]: m["query_count"] for m in taken.measurements}
    if counts != live:
        raise PerflabError(
            f"The recorded figures {name!r} no longer match this run's query counts "
            f"(recorded {counts}, now {live}): record them again with `python -m perflab record`."
        )
    return committed
