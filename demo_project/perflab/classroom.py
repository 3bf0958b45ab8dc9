"""The instructor guide's generated parts: lesson times, day plans, hub sizing, the hub's links.

``notebooks/instructor-guide.md`` is written by hand except between its markers, which
``python -m perflab classroom`` rewrites (``--check`` only says whether they are stale). Every
figure there comes from somewhere a run or a lesson wrote it: lesson times from each lesson's
``**Time**`` estimate (``perflab.lesson_time``), run time and memory from
``notebooks/recorded/budget.json`` (``perflab budget --record``) and
``notebooks/recorded/hub.json`` (a recorded run of several learners on a real hub), the
nbgitpuller link and the Kubernetes image from ``[tool.perflab] repository``. ``perflab
notebooks``, ``perflab times`` and ``perflab budget --record`` call :func:`write_guide`, so the
guide moves with the lessons.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from perflab import budget, doctor, lesson_time
from perflab.docs_site import Settings, settings
from perflab.notebooks import NOTEBOOKS, lesson_paths, lesson_title
from perflab.paths import REPO_ROOT
from perflab.recorded import RECORDED_DIR

__all__ = [
    "GUIDE", "HUB_ALLOWANCE_MB", "HUB_RECORD", "LEARNER_COUNTS", "MEMORY_LIMIT", "OS_HEADROOM_MB",
    "SECTIONS", "TRACKS", "Lesson", "Sizing", "Track", "image_name", "lessons", "load_test_cores",
    "main", "nbgitpuller_link", "reading_cores", "render", "render_hub", "render_sizing",
    "render_timing", "sizing", "stale_sections", "write_guide",
]

GUIDE = NOTEBOOKS / "instructor-guide.md"
Z2JH_CONFIG = REPO_ROOT / "binder" / "z2jh-config.yaml"
HUB_RECORD = RECORDED_DIR / "hub.json"
#: What a hub host keeps for itself besides the hub: the OS, page cache, sshd (an assumption).
OS_HEADROOM_MB = 1024
#: The hub, its proxy and their services when no hub run is recorded: TLJH's own allowance
#: ("Estimate Memory / CPU / Disk needed" in its documentation), not a measurement of ours.
HUB_ALLOWANCE_MB = 128
#: A learner who reads and runs short cells keeps a core busy about this share of the time
#: (an assumption: a cell runs for seconds between minutes of reading).
READING_CORE_SHARE = 0.25
LEARNER_COUNTS = (10, 20, 30)
#: The per-learner memory limit on a hub: Binder's limit. The guarantee is the budget's limit.
MEMORY_LIMIT = "2G"
HUB_PLACEHOLDER = "https://hub.example.org"
SHARED_CHECKOUT = "/opt/django-perf-workshop"
_LOAD_TEST = re.compile(r"\blab\.load\(")
_REQUIRES = re.compile(r"^%%requires\s+(.+)$", re.MULTILINE)
_ON_POSTGRES = re.compile(r"\bsetup\([^)]*database=[\"']postgres")
#: Servers a lesson starts outside ``%%requires`` cells: ``use_caches(...)``, ``lab.service(...)``.
_STARTS = re.compile(r"\b(?:use_caches|service|servers)\(([^)]*)\)")
_SERVERS = ("memcached", "redis", "postgres", "nginx", "pgbouncer")
_IMAGE_LINE = re.compile(r"^(\s*name: )\S+(\s+# image: .*)$", re.MULTILINE)


@dataclass(frozen=True)
class Track:
    """A class format: days of lessons taught in order, with the teaching minutes of a day."""

    name: str
    minutes_per_day: int
    days: tuple[tuple[str, ...], ...]  # lesson numbers, "00" to "24"
    why: str


#: A day of teaching is 09:00-17:00 less an hour for lunch and two 15-minute breaks; a half day
#: is 09:00-12:30 less one break. The lessons are chosen for a theme, in an order that builds.
TRACKS = (
    Track("Half day", 195, (("00", "01", "02", "23"),),
          "the ORM alone: N+1, letting the database work, the quick wins"),
    Track("Full day", 390, (("00", "01", "02", "03", "04", "06", "23"),),
          "the database and the cache: the fixes most apps need first"),
    Track("Two days", 390, (("00", "01", "02", "03", "04", "06", "23"),
                            ("07", "08", "19", "21", "22", "24", "25")),
          "day 1 as the full day; day 2 serving under load, the HTTP layer, async, tests "
          "that keep the wins, and the capstone"),
)


@dataclass(frozen=True)
class Lesson:
    """What the guide needs from a lesson: its times, what it starts, whether it load-tests."""

    number: str
    name: str  # file name
    title: str
    time: lesson_time.LessonTime
    requires: tuple[str, ...]
    load_test: bool

    @property
    def teaching(self) -> int:
        return self.time.core - lesson_time.EXERCISE_MINUTES["core"]


def _source(cell: dict[str, Any]) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def _lesson(path: Path) -> Lesson:
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [_source(c) for c in nb["cells"] if c["cell_type"] == "code"]
    # A lesson whose lab runs on PostgreSQL needs it throughout, not only in gated cells.
    needs = ["postgres"] if any(_ON_POSTGRES.search(text) for text in code) else []
    for text in code:
        for match in _STARTS.finditer(text):
            needs += [name for name in re.findall(r"[\"'](\w+)[\"']", match.group(1))
                      if name in _SERVERS and name not in needs]
        for match in _REQUIRES.finditer(text):
            for spec in match.group(1).replace(",", " ").split():
                # A version gate (django>=6.1) is about the kernel, not something to install.
                name = "postgres" if spec == "postgresql" else spec
                if not re.search(r"[<>=!]", spec) and name not in needs:
                    needs.append(name)
    return Lesson(path.name[:2], path.name, lesson_title(nb), lesson_time.estimate(nb),
                  tuple(needs), any(_LOAD_TEST.search(text) for text in code))


def lessons(paths: list[Path] | None = None) -> list[Lesson]:
    """Return every lesson as the guide sees it, in order."""
    return [_lesson(path) for path in (paths if paths is not None else lesson_paths())]


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _track_rows(by_number: dict[str, Lesson]) -> list[str]:
    rows = ["| Format | Lessons (core parts) | Core minutes | A day holds | What it covers |",
            "|---|---|---:|---|---|"]
    for track in TRACKS:
        for day, numbers in enumerate(track.days, start=1):
            present = [n for n in numbers if n in by_number]
            minutes = sum(by_number[n].time.core for n in present)
            spare = track.minutes_per_day - minutes
            fits = (f"{track.minutes_per_day} min: {spare} to spare" if spare >= 0
                    else f"{track.minutes_per_day} min: **over by {-spare}**, move one lesson")
            name = track.name if len(track.days) == 1 else f"{track.name}, day {day}"
            why = track.why if day == 1 else "(continued)"
            rows.append(f"| {name} | {', '.join(present)} | {minutes} | {fits} | {why} |")
    return rows


def render_timing(found: list[Lesson], record: dict[str, Any] | None,
                  noted: set[str] | None = None) -> str:
    """Return the timing section: day plans, then a row per lesson, from the lessons' estimates."""
    by_number = {lesson.number: lesson for lesson in found}
    ran = {row["lesson"]: row for row in (record or {}).get("lessons", [])}
    core, stretch = lesson_time.EXERCISE_MINUTES["core"], lesson_time.EXERCISE_MINUTES["stretch"]
    lines = [
        "Each lesson's time is its `**Time**` estimate (prose at "
        f"{lesson_time.WORDS_PER_MINUTE} words a minute, code at "
        f"{lesson_time.CODE_LINES_PER_MINUTE} lines a minute, the cells' run time in a dry run, "
        f"{core} min for the core exercise and {stretch} min for the stretch one; the README's "
        "lesson table says how). Classroom time is the core: the optional part and the stretch "
        "exercise are for after the class.", "",
        *_track_rows(by_number), "",
        "Lessons outside the tracks are electives: swap one in for a lesson of about the same "
        "core time.", "",
    ]
    if record:
        s = record["source"]
        lines += [f"Run time and peak memory: the budget run of {s['date']} ({s['machine']}, "
                  f"{s['cpus']} CPUs, scale `{s['scale']}`), `notebooks/recorded/budget.json`.", ""]
    else:
        lines += ["Run time and peak memory: no recorded run yet. `make budget RECORD=1` on a "
                  "quiet machine records one and fills those columns.", ""]
    lines += ["| Lesson | Teaching | Exercise 1 | Optional + stretch | Servers and tools | "
              "Load test | Run (s) | Peak (MB) |",
              "|---|---:|---:|---:|---|---|---:|---:|"]
    for lesson in found:
        row = ran.get(lesson.name.removesuffix(".ipynb"))
        run = f"{row['seconds']:.0f}" if row else "-"
        peak = f"{row['peak_tree_mb']:.0f}" if row else "-"
        needs = ", ".join(f"`{name}`" for name in lesson.requires) or "-"
        # A new lesson shows up here at once; its notes below are written by hand, later.
        unnoted = " (no notes below yet)" if noted and lesson.number not in noted else ""
        lines.append(f"| [{lesson.number} · {lesson.title}]({lesson.name}){unnoted} | "
                     f"{lesson.teaching} | "
                     f"{core} | {lesson.time.optional} | {needs} | "
                     f"{'yes' if lesson.load_test else '-'} | {run} | {peak} |")
    total_core = sum(lesson.time.core for lesson in found)
    total_optional = sum(lesson.time.optional for lesson in found)
    lines += ["", f"All {len(found)} lessons: {total_core} min of core and {total_optional} min "
              "optional."]
    return "\n".join(lines)


@dataclass(frozen=True)
class Sizing:
    """The figures a hub is sized from, and where each came from."""

    learner_mb: float
    learner_source: str
    hub_mb: float
    hub_source: str
    headroom_mb: int = OS_HEADROOM_MB
    #: Cores a learner keeps busy running lessons back to back (assumed: one; a hub run says how
    #: many cores its learners kept busy, which the source adds).
    cores_per_learner: float = 1.0
    cores_source: str = "assumed: no hub run is recorded yet"

    def ram_mb(self, learners: int) -> float:
        """Return the RAM for ``learners`` all at their peak at once, hub and OS included."""
        return self.hub_mb + learners * self.learner_mb + self.headroom_mb

    def ram_gb(self, learners: int) -> int:
        """Return ``ram_mb`` rounded up to whole GB, as hosts are sold."""
        return math.ceil(self.ram_mb(learners) / 1024)


def reading_cores(learners: int, cores_per_learner: float = 1.0) -> int:
    """Return the cores for learners who read and run short cells, plus one for the hub and OS."""
    return math.ceil(learners * cores_per_learner * READING_CORE_SHARE) + 1


def load_test_cores(learners: int) -> int:
    """Return the cores for every learner running a load test at once, plus one for the hub."""
    return learners + 1


def sizing(budget_record: dict[str, Any] | None, hub_record: dict[str, Any] | None) -> Sizing:
    """Pick the per-learner memory (the largest recorded peak) and the hub's, and say whence.

    The hub run measures a few lessons per learner under a real hub; the budget run measures
    every lesson alone. A class meets the heavier of the two, so the larger peak is the one.
    """
    found: list[tuple[float, str]] = []
    if hub_record:
        ran = ", ".join(name[:2] for name in hub_record.get("lessons", []))
        found.append((max(hub_record["learner_peak_mb"]),
                      f"the largest learner peak of the hub run of {hub_record['date']} "
                      f"({hub_record['machine']}; {hub_record['learners']} learners at once"
                      + (f", lessons {ran}" if ran else "") + "), `notebooks/recorded/hub.json`"))
    if budget_record:
        found.append((max(row["peak_tree_mb"] for row in budget_record["lessons"]),
                      f"the largest lesson peak of the budget run of "
                      f"{budget_record['source']['date']}, whole process tree, "
                      "`notebooks/recorded/budget.json`"))
    if not found:
        found.append((budget.LIMIT_MB, f"no recorded run yet: the {budget.LIMIT_MB} MB limit "
                      "that `make test` holds every lesson to (an upper bound; `make budget "
                      "RECORD=1` records the real peaks)"))
    learner_mb, where = max(found)
    cores_source = "an assumption"
    if not hub_record:
        return Sizing(learner_mb, where, HUB_ALLOWANCE_MB,
                      "TLJH's documented allowance for the hub and its services, not a "
                      "measurement: no hub run is recorded yet", cores_source=cores_source)
    if "cores_busy" in hub_record:
        cores_source += (f"; in the hub run, {hub_record['learners']} learners running lessons "
                         f"at once kept {hub_record['cores_busy']:g} cores busy, "
                         f"{hub_record['machine'].split(', ')[1]} in all")
    return Sizing(learner_mb, where, hub_record["hub_mb"],
                  f"the hub and its proxy at their peak in the hub run ({hub_record['date']})",
                  cores_source=cores_source)


def render_sizing(size: Sizing, found: list[Lesson]) -> str:
    """Return the sizing section: RAM and cores for a class, with the arithmetic spelled out."""
    loads = ", ".join(lesson.number for lesson in found if lesson.load_test)
    lines = [
        f"- Per learner: **{size.learner_mb:.0f} MB**, {size.learner_source}. One lesson open "
        "at a time: each open lesson's kernel keeps its servers.",
        f"- The hub: **{size.hub_mb:.0f} MB**, {size.hub_source}.",
        f"- The host's own headroom: **{size.headroom_mb} MB** (an assumption: the OS, its page "
        "cache, sshd).",
        "- RAM = hub + learners x per-learner peak + headroom, every learner at their peak at "
        "once (the worst case: in a class working in step, it happens).",
        f"- Cores: a learner running the lessons back to back keeps {size.cores_per_learner:g} "
        f"core(s) busy ({size.cores_source}); one who reads between cells "
        f"runs them about {READING_CORE_SHARE:.0%} of the time (an assumption); plus one core "
        f"for the hub and the OS. The lessons with a load test ({loads}) each want a whole "
        "core while the test runs; when learners share cores, their requests per second come "
        "out lower and the tables flag them as unsteady.",
        f"- Disk: each learner's templates and database copies live in their home folder; "
        f"`make doctor` asks a learner's machine for {doctor.MIN_FREE_DISK_GB:g} GB free, and a "
        "hub wants as much per learner (an assumption, not a measurement).",
        "",
        "| Learners | RAM | Cores, reading | Cores, all load-testing at once |",
        "|---:|---:|---:|---:|",
    ]
    for count in LEARNER_COUNTS:
        lines.append(f"| {count} | {size.ram_gb(count)} GB ({size.ram_mb(count):,.0f} MB) | "
                     f"{reading_cores(count, size.cores_per_learner)} | "
                     f"{load_test_cores(count)} |")
    lines += ["", f"Per-learner limits on the hub: memory **{MEMORY_LIMIT}** (Binder's), "
              f"guaranteed **{budget.LIMIT_MB // 1024}G** on Kubernetes (every lesson fits in "
              f"{budget.LIMIT_MB} MB)."]
    return "\n".join(lines)


def image_name(s: Settings) -> str:
    """Return the Kubernetes image for the repository (registries want lower case names)."""
    return f"ghcr.io/{s.repository.lower()}"


def nbgitpuller_link(s: Settings, hub: str = HUB_PLACEHOLDER,
                     path: str = "notebooks/00-start-here.ipynb") -> str:
    """Return the link that clones the repository into a learner's home and opens ``path``."""
    folder = s.repository.split("/", 1)[1]
    query = urlencode({"repo": f"https://github.com/{s.repository}",
                       "urlpath": f"lab/tree/{folder}/{path}", "branch": s.branch})
    return f"{hub.rstrip('/')}/hub/user-redirect/git-pull?{query}"


def render_hub(s: Settings) -> str:
    """Return the hub section: the shared checkout, the learners' links, the Kubernetes image."""
    return "\n".join([
        f"From `[tool.perflab] repository` in `pyproject.toml` (`{s.repository}`, branch "
        f"`{s.branch}`). The shared checkout that the hub's Python environment installs (TLJH, "
        "step 3):", "",
        "```sh", f"sudo git clone --branch {s.branch} https://github.com/{s.repository} "
        f"{SHARED_CHECKOUT}", "```", "",
        "The link that gives each learner a copy of the lessons in their home folder and opens "
        f"lesson 00 (replace `{HUB_PLACEHOLDER}` with your hub's address):", "",
        "```text", nbgitpuller_link(s), "```", "",
        f"Without a hub: [lesson 00 on Binder]({s.binder('notebooks/00-start-here.ipynb')}). "
        f"The Kubernetes image: `{image_name(s)}` (`binder/z2jh-config.yaml` names the same).",
    ])


SECTIONS = ("classroom-timing", "classroom-sizing", "classroom-hub")


def render(paths: list[Path] | None = None, *, budget_path: Path = budget.RECORD,
           hub_path: Path = HUB_RECORD, s: Settings | None = None,
           noted: set[str] | None = None) -> dict[str, str]:
    """Return each generated section's text, by marker name."""
    found = lessons(paths)
    budget_record, hub_record = _read_json(budget_path), _read_json(hub_path)
    s = s or settings()
    return {
        "classroom-timing": render_timing(found, budget_record, noted),
        "classroom-sizing": render_sizing(sizing(budget_record, hub_record), found),
        "classroom-hub": render_hub(s),
    }


def _replace(text: str, sections: dict[str, str], where: str) -> str:
    for name, body in sections.items():
        start, end = f"<!-- {name}: start -->", f"<!-- {name}: end -->"
        pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
        if not pattern.search(text):
            raise ValueError(f"{where} has no {start} ... {end} section")
        text = pattern.sub(lambda _, b=body, a=start, z=end: f"{a}\n{b}\n{z}", text)
    return text


def _with_image(config: str, s: Settings) -> str:
    if not _IMAGE_LINE.search(config):
        raise ValueError("z2jh-config.yaml has no 'name: ...  # image: ...' line")
    return _IMAGE_LINE.sub(lambda m: f"{m.group(1)}{image_name(s)}{m.group(2)}", config)


def _planned(guide: Path, config: Path, **kwargs: Any) -> dict[Path, tuple[str, str]]:
    s = kwargs.get("s") or settings()
    old_guide, old_config = guide.read_text(encoding="utf-8"), config.read_text(encoding="utf-8")
    noted = set(re.findall(r"^### \[(\d\d) ·", old_guide, re.MULTILINE))
    sections = render(**{**kwargs, "s": s, "noted": noted})
    return {guide: (old_guide, _replace(old_guide, sections, guide.name)),
            config: (old_config, _with_image(old_config, s))}


def write_guide(guide: Path = GUIDE, config: Path = Z2JH_CONFIG, **kwargs: Any) -> list[Path]:
    """Rewrite the guide's generated sections and the Kubernetes image; return what changed."""
    changed = []
    for path, (old, new) in _planned(guide, config, **kwargs).items():
        if new != old:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def stale_sections(guide: Path = GUIDE, config: Path = Z2JH_CONFIG, **kwargs: Any) -> list[Path]:
    """Return the files :func:`write_guide` would change, changing nothing."""
    return [path for path, (old, new) in _planned(guide, config, **kwargs).items() if new != old]


def main(check: bool, report: Callable[[str], None] = print) -> int:
    """Rewrite the guide (or, with ``check``, say whether it is stale); return an exit code."""
    if check:
        stale = stale_sections()
        for path in stale:
            report(f"stale: {path.relative_to(REPO_ROOT)}: run `python -m perflab classroom`")
        return 1 if stale else 0
    for path in write_guide():
        report(f"instructor guide updated: {path.relative_to(REPO_ROOT)}")
    return 0
