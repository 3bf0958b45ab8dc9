"""The instructor guide: times, sizing and links rendered from the lessons and the records."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import nbformat
import pytest
import yaml

from perflab import budget, classroom, lesson_time, notebooks
from perflab.__main__ import main as perflab_main
from perflab.docs_site import Settings, settings

REPO_ROOT = Path(__file__).resolve().parents[1]
SETTINGS = Settings("someone/django-perf-workshop", "teach")
GUIDE_TEXT = "".join(
    f"before {name}\n<!-- {name}: start -->\nold\n<!-- {name}: end -->\n"
    for name in classroom.SECTIONS
) + "after\n"
CONFIG_TEXT = "singleuser:\n  image:\n    name: old/image  # image: rewritten\n    tag: main\n"
HUB = {"machine": "Linux x86_64", "date": "2026-12-01", "learners": 3, "lessons": ["08"],
       "learner_peak_mb": [600, 700, 650], "hub_mb": 300, "seconds": 95}
BUDGET = {"source": {"date": "2026-12-02", "machine": "Linux x86_64", "cpus": 2,
                     "python": "3.11.9", "scale": "small", "limit_mb": 1024},
          "lessons": [{"lesson": "01-one", "seconds": 41.6, "peak_tree_mb": 812,
                       "peak_kernel_mb": 300, "errors": 0}]}


def _lesson(folder: Path, name: str, *code: str, words: int = 100) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# {name.title()}\n\n**Time**: old"))
    nb.cells.append(nbformat.v4.new_markdown_cell(" ".join(["word"] * words)))
    nb.cells += [nbformat.v4.new_code_cell(source) for source in code]
    nb.metadata["perflab"] = {"run_seconds": {"core": 60.0, "optional": 0.0}}
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def course(tmp_path: Path) -> dict[str, Path]:
    """Two lessons, a guide and a Kubernetes config in a temporary folder."""
    (tmp_path / "guide.md").write_text(GUIDE_TEXT)
    (tmp_path / "z2jh.yaml").write_text(CONFIG_TEXT)
    return {
        "one": _lesson(tmp_path, "01-one", "%%requires postgresql\nx = 1",
                       "%%requires django>=6.1\ny = 2"),
        "two": _lesson(tmp_path, "02-two", "lab.load(server, ['/'], users=5)"),
        "guide": tmp_path / "guide.md",
        "config": tmp_path / "z2jh.yaml",
        "none": tmp_path / "absent.json",
    }


def _write(course: dict[str, Path], **kwargs) -> list[Path]:
    return classroom.write_guide(
        course["guide"], course["config"], paths=[course["one"], course["two"]],
        budget_path=kwargs.get("budget_path", course["none"]),
        hub_path=kwargs.get("hub_path", course["none"]), s=SETTINGS,
    )


def test_the_committed_guide_is_current() -> None:
    assert perflab_main(["classroom", "--check"]) == 0, (
        "notebooks/instructor-guide.md is stale: run `python -m perflab classroom`"
    )


def test_the_guide_is_stale_once_a_lesson_s_time_changes(course) -> None:
    assert _write(course) == [course["guide"], course["config"]]
    kwargs = {"paths": [course["one"], course["two"]], "budget_path": course["none"],
              "hub_path": course["none"], "s": SETTINGS}
    assert classroom.stale_sections(course["guide"], course["config"], **kwargs) == []
    _lesson(course["guide"].parent, "02-two", words=100 + 20 * lesson_time.WORDS_PER_MINUTE)
    assert classroom.stale_sections(course["guide"], course["config"], **kwargs) == [
        course["guide"]]


def test_only_the_text_between_the_markers_is_rewritten(course) -> None:
    _write(course)
    text = course["guide"].read_text()
    assert "\nold\n" not in text
    assert text.startswith("before classroom-timing\n") and text.endswith("\nafter\n")
    assert "name: ghcr.io/someone/django-perf-workshop  # image: rewritten" in (
        course["config"].read_text())


def test_each_lesson_row_shows_its_estimate_what_it_needs_and_its_budget_run(course, tmp_path):
    budget_path = tmp_path / "budget.json"
    budget_path.write_text(json.dumps(BUDGET))
    _write(course, budget_path=budget_path)
    text = course["guide"].read_text()
    time = lesson_time.estimate(json.loads(course["one"].read_text()))
    teaching = time.core - lesson_time.EXERCISE_MINUTES["core"]
    assert (f"| [01 · 01-One](01-one.ipynb) | {teaching} | 10 | {time.optional} | `postgres` | - "
            "| 42 | 812 |") in text
    assert "| [02 · 02-Two](02-two.ipynb) |" in text and "| - | yes | - | - |" in text
    assert "the budget run of 2026-12-02" in text


def test_without_records_the_guide_says_so_and_how_to_make_one(course) -> None:
    _write(course)
    text = course["guide"].read_text()
    assert "no recorded run yet" in text and "make budget RECORD=1" in text
    assert "no hub run is recorded yet" in text


def test_the_nbgitpuller_link_is_built_from_the_repository_setting() -> None:
    link = classroom.nbgitpuller_link(SETTINGS, "https://hub.example.edu/")
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://hub.example.edu/hub/user-redirect/git-pull")
    assert parse_qs(parts.query) == {
        "repo": ["https://github.com/someone/django-perf-workshop"],
        "urlpath": ["lab/tree/django-perf-workshop/notebooks/00-start-here.ipynb"],
        "branch": ["teach"],
    }


def test_the_committed_guide_links_the_configured_repository() -> None:
    guide = classroom.GUIDE.read_text()
    assert classroom.nbgitpuller_link(settings()) in guide


def test_ram_is_the_hub_plus_each_learner_s_peak_plus_headroom() -> None:
    size = classroom.sizing(None, HUB)
    assert (size.learner_mb, size.hub_mb) == (700, 300)  # the largest learner of the hub run
    assert size.ram_mb(10) == 300 + 10 * 700 + classroom.OS_HEADROOM_MB
    assert size.ram_gb(10) == 9  # 8,324 MB, rounded up to whole GB
    assert "| 10 | 9 GB (8,324 MB) | 4 | 11 |" in classroom.render_sizing(size, [])


def test_a_learner_is_sized_for_the_heaviest_lesson_either_run_saw() -> None:
    size = classroom.sizing(BUDGET, HUB)  # the budget's 812 MB lesson beats the hub's 700
    assert (size.learner_mb, size.hub_mb) == (812, 300)
    assert "budget run" in size.learner_source
    assert classroom.sizing(BUDGET, {**HUB, "learner_peak_mb": [900]}).learner_mb == 900


def test_the_cores_a_hub_run_kept_busy_are_reported_not_taken_for_a_learner_s() -> None:
    size = classroom.sizing(None, {**HUB, "cores_busy": 1.75, "machine": "Linux, 2 cores"})
    assert size.cores_per_learner == 1.0
    assert size.cores_source == ("an assumption; in the hub run, 3 learners running lessons at "
                                 "once kept 1.75 cores busy, 2 cores in all")
    # 30 learners x 1 core x a quarter of the time, rounded up, + 1 for the hub and the OS
    assert classroom.reading_cores(30, size.cores_per_learner) == 9


def test_a_lesson_without_notes_in_the_guide_is_marked(course) -> None:
    course["guide"].write_text(GUIDE_TEXT + "### [01 · One](01-one.ipynb)\n\nNotes.\n")
    _write(course)
    text = course["guide"].read_text()
    assert "| [01 · 01-One](01-one.ipynb) | " in text
    assert "| [02 · 02-Two](02-two.ipynb) (no notes below yet) | " in text


def test_without_a_hub_run_sizing_takes_the_budget_s_largest_peak_then_the_limit() -> None:
    from_budget = classroom.sizing(BUDGET, None)
    assert (from_budget.learner_mb, from_budget.hub_mb) == (812, classroom.HUB_ALLOWANCE_MB)
    assert classroom.sizing(None, None).learner_mb == budget.LIMIT_MB


def test_a_guide_without_its_markers_is_a_clear_error(course) -> None:
    course["guide"].write_text("# no markers\n")
    with pytest.raises(ValueError, match="classroom-timing: start"):
        _write(course)


def test_every_lesson_a_track_names_exists() -> None:
    numbers = {path.name[:2] for path in notebooks.lesson_paths()}
    for track in classroom.TRACKS:
        assert {n for day in track.days for n in day} <= numbers, track.name


def test_the_kubernetes_config_parses_and_agrees_with_the_guide() -> None:
    config = yaml.safe_load((REPO_ROOT / "binder" / "z2jh-config.yaml").read_text())
    guide = classroom.GUIDE.read_text()
    image = config["singleuser"]["image"]["name"]
    assert image == classroom.image_name(settings()) and f"`{image}`" in guide
    memory = config["singleuser"]["memory"]
    assert memory == {"guarantee": f"{budget.LIMIT_MB // 1024}G", "limit": classroom.MEMORY_LIMIT}
    assert f"memory **{memory['limit']}**" in guide
    assert f"guaranteed **{memory['guarantee']}**" in guide
    assert f"limits.memory {memory['limit']}" in guide  # TLJH's limit, typed in step 5
    # A learner's answers go on a volume that does not hide the image's home (the lessons, the
    # template database, the browser), and the first start copies the lessons onto it.
    assert config["singleuser"]["storage"]["homeMountPath"] == "/home/jovyan/work"
    assert "~/work" in str(config["singleuser"]["lifecycleHooks"]["postStart"])
    assert config["singleuser"]["defaultUrl"].startswith("/lab/tree/work/notebooks/")
    assert config["cull"]["enabled"] is True
