"""The workshop as a static site, built offline from the committed lessons and browser-checked."""

from __future__ import annotations

from pathlib import Path

import django
import pytest

from perflab import browser, docs_check, docs_site, services

#: Nothing here depends on Django's version: run once, in the Django 5.2 leg (make test), not
#: again in make test-django61, to keep CI's minutes for what differs.
ONCE = pytest.mark.skipif(django.VERSION >= (6, 0), reason="checked once, in the Django 5.2 leg")
REPO_ROOT = Path(__file__).resolve().parents[1]
SETTINGS = docs_site.Settings("someone/django-perf-workshop", "main")
BLOB = "https://github.com/someone/django-perf-workshop/blob/main"


@ONCE
def test_the_site_builds_offline_and_every_page_chart_and_link_works(tmp_path) -> None:
    output, warnings = docs_site.build(tmp_path / "docs", tmp_path / "src")
    assert warnings == []
    lessons = sorted(p.name for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    pages = sorted(p.stem for p in (output / "notebooks").glob("[0-9][0-9]-*.html"))
    assert pages == [name.removesuffix(".ipynb") for name in lessons]
    ok, why = browser.browser_status()
    if not ok:
        if services.is_strict():
            pytest.fail(f"PERFLAB_STRICT=1 and no browser for the site check: {why}")
        pytest.skip(why)
    report = docs_check.check_site(
        output, REPO_ROOT / "notebooks",
        {"executable_path": browser.find_browser(), "args": browser.chromium_args()},
    )
    assert report.problems == [], str(report)
    assert report.pages >= len(lessons) + 3  # contents, glossary, cheat sheet
    assert report.images > 0


def test_links_leave_for_the_repository_only_where_the_site_lacks_the_file() -> None:
    text = ("[Contents](../README.md#lessons) [servers](../README.md#servers) "
            "[views](../demo_project/shop/views.py) [06](06-cache-what-is-expensive.ipynb) "
            "[Django](https://docs.djangoproject.com/)")
    assert docs_site._rewrite_links(text, SETTINGS) == (
        "[Contents](../index.md) "
        f"[servers]({BLOB}/README.md#servers) "
        f"[views]({BLOB}/demo_project/shop/views.py) "
        "[06](06-cache-what-is-expensive.ipynb) [Django](https://docs.djangoproject.com/)"
    )


def test_each_lesson_page_has_a_binder_button_for_the_configured_repository(tmp_path) -> None:
    docs_site.stage(tmp_path / "src", SETTINGS)
    conf = (tmp_path / "src" / "conf.py").read_text()
    assert "'binderhub_url': 'https://mybinder.org'" in conf
    assert "https://github.com/someone/django-perf-workshop" in conf
    assert SETTINGS.binder("notebooks/01-fix-n-plus-one-queries.ipynb") == (
        "https://mybinder.org/v2/gh/someone/django-perf-workshop/main"
        "?urlpath=lab/tree/notebooks/01-fix-n-plus-one-queries.ipynb"
    )


def test_the_readme_badge_comes_from_the_one_repository_setting() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert docs_site.binder_badge(docs_site.settings()) in readme.splitlines()
