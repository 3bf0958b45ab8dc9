"""Test config.settings from the outside: who sees the debug toolbar, and bad URLs refused early.

Settings read the environment once, at import, and the pytest process already holds the lab's
settings (DEBUG off, no toolbar), so every test here runs Python in a fresh process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT_DIR = REPO_ROOT / "demo_project"
MANAGE_PY = PROJECT_DIR / "manage.py"


def run_python(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run this interpreter in demo_project/ with only the given environment (plus PATH)."""
    clean_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(PROJECT_DIR), **env}
    return subprocess.run(
        [sys.executable, *args],
        env=clean_env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def manage_py_check(**env: str) -> subprocess.CompletedProcess[str]:
    """Run `manage.py check` with DEBUG on, so only the variables given can be at fault."""
    return run_python(str(MANAGE_PY), "check", env={"DJANGO_DEBUG": "1", **env})


def probe_settings(expression: str, **env: str) -> Any:
    """Return the JSON value of an expression over config.settings (as `s`) in this environment."""
    code = f"import json; from config import settings as s; print(json.dumps({expression}))"
    result = run_python("-c", code, env={"DJANGO_DEBUG": "1", **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# --- The debug toolbar: a logged-in superuser only ----------------------------------------------

# The superuser goes first: the others then ask the toolbar's views for that very request's
# panels, as another user of a shared host would.
TOOLBAR_PROBE = """
import json, re
import django
from django.core.management import call_command

django.setup()
call_command("migrate", verbosity=0)

from django.contrib.auth.models import User
from django.test import Client

users = {
    "superuser": User.objects.create_superuser("admin", password="unused"),
    "user": User.objects.create_user("learner", password="unused"),
    "anonymous": None,
}
request_id = ""
report = {}
for name, user in users.items():
    client = Client()  # REMOTE_ADDR 127.0.0.1, like a browser on the same host
    if user is not None:
        client.force_login(user)
    page = client.get("/")
    html = page.content.decode()
    found = re.search(r'data-request-id="([0-9a-f]+)"', html)
    request_id = request_id or (found[1] if found else "no-toolbar-on-the-first-page")
    views = {
        "render_panel": client.get(
            "/__debug__/render_panel/", {"request_id": request_id, "panel_id": "RequestPanel"}
        ),
        "history_sidebar": client.get("/__debug__/history_sidebar/", {"request_id": request_id}),
        "history_refresh": client.get("/__debug__/history_refresh/", {"request_id": request_id}),
        "sql_select": client.post("/__debug__/sql_select/"),
        "template_source": client.get("/__debug__/template_source/"),
    }
    report[name] = {
        "page_status": page.status_code,
        "page_has_toolbar": "djDebug" in html,
        "view_status": {view: response.status_code for view, response in views.items()},
        "panel_shows_cookie": "sessionid" in views["render_panel"].content.decode(),
    }
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def toolbar_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Return, per visitor, the shop's front page and the toolbar views as `make site` serves."""
    database = tmp_path_factory.mktemp("toolbar") / "site.sqlite3"
    env = {
        "DJANGO_DEBUG": "1",
        "DJANGO_DEBUG_TOOLBAR": "1",
        "DATABASE_URL": f"sqlite:///{database}",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    result = run_python("-c", TOOLBAR_PROBE, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_toolbar_shows_to_a_logged_in_superuser(toolbar_report: dict[str, Any]) -> None:
    superuser = toolbar_report["superuser"]

    assert superuser["page_status"] == 200
    assert superuser["page_has_toolbar"] is True


def test_toolbar_views_answer_a_superuser(toolbar_report: dict[str, Any]) -> None:
    # The views exist and work, so a 404 for anyone else comes from the gate, not a wrong URL.
    superuser = toolbar_report["superuser"]

    assert superuser["view_status"]["render_panel"] == 200
    assert superuser["panel_shows_cookie"] is True
    assert superuser["view_status"]["history_sidebar"] == 200
    assert all(status != 404 for status in superuser["view_status"].values())


def test_toolbar_is_hidden_from_an_anonymous_visitor(toolbar_report: dict[str, Any]) -> None:
    anonymous = toolbar_report["anonymous"]

    assert anonymous["page_status"] == 200
    assert anonymous["page_has_toolbar"] is False


def test_toolbar_views_answer_404_to_an_anonymous_visitor(toolbar_report: dict[str, Any]) -> None:
    anonymous = toolbar_report["anonymous"]

    assert anonymous["view_status"] == dict.fromkeys(anonymous["view_status"], 404)
    assert anonymous["panel_shows_cookie"] is False


def test_toolbar_is_hidden_from_a_user_who_is_not_a_superuser(
    toolbar_report: dict[str, Any],
) -> None:
    user = toolbar_report["user"]

    assert user["page_status"] == 200
    assert user["page_has_toolbar"] is False


def test_toolbar_views_answer_404_to_a_user_who_is_not_a_superuser(
    toolbar_report: dict[str, Any],
) -> None:
    user = toolbar_report["user"]

    assert user["view_status"] == dict.fromkeys(user["view_status"], 404)
    assert user["panel_shows_cookie"] is False


# --- Bad environment values: one line from manage.py, exit status 2 ---------------------------


def assert_one_error_line(result: subprocess.CompletedProcess[str], variable: str) -> str:
    """Check manage.py refused the settings in one line naming the variable; return the line."""
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {variable}"), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "url",
    ["garbage", "foo://host/db", "postgres://localhost", "sqlite://relative/db.sqlite3"],
    ids=["no-scheme", "unknown-scheme", "no-database-name", "sqlite-with-a-host"],
)
def test_manage_py_refuses_a_bad_database_url_in_one_line(url: str) -> None:
    line = assert_one_error_line(manage_py_check(DATABASE_URL=url), "DATABASE_URL")

    assert repr(url) in line
    assert "sqlite:////" in line  # an example of a good one


@pytest.mark.parametrize(
    "url",
    [
        "garbage",
        "pymemcache://unix:/run/memcached.sock",
        "unix:///run/redis.sock?db=0",
        "memcache:///run/memcached.sock",
    ],
    ids=["no-scheme", "memcached-host-and-path", "redis-py-location", "backend-django-removed"],
)
def test_manage_py_refuses_a_bad_cache_url_in_one_line(url: str) -> None:
    line = assert_one_error_line(manage_py_check(CACHE_URL=url), "CACHE_URL")

    assert repr(url) in line
    assert "locmemcache://" in line


def test_bad_database_url_error_masks_the_password() -> None:
    result = manage_py_check(DATABASE_URL="postgres://shop:hunter2@localhost")

    line = assert_one_error_line(result, "DATABASE_URL")
    assert "hunter2" not in line
    assert "postgres://shop:***@localhost" in line


def test_manage_py_without_debug_or_secret_key_says_debug_is_enough_locally() -> None:
    result = run_python(str(MANAGE_PY), "check", env={})

    line = assert_one_error_line(result, "DJANGO_SECRET_KEY")
    assert "DJANGO_DEBUG=1 is enough" in line
    assert "python3 -c" in line


def test_manage_py_check_passes_with_a_sqlite_url(tmp_path: Path) -> None:
    result = manage_py_check(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")

    assert result.returncode == 0, result.stderr


def test_manage_py_check_passes_with_a_postgres_socket_url_without_connecting() -> None:
    result = manage_py_check(DATABASE_URL="postgres://postgres@/db?host=/nonexistent/socketdir")

    assert result.returncode == 0, result.stderr


def test_postgres_socket_url_puts_the_socket_directory_in_host() -> None:
    database = probe_settings(
        "s.DATABASES['default']", DATABASE_URL="postgres://postgres@/db?host=/tmp/x"
    )

    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["HOST"], database["NAME"], database["USER"]) == ("/tmp/x", "db", "postgres")
    assert "host" not in database["OPTIONS"]


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("pymemcache:///run/memcached.sock", "unix:/run/memcached.sock"),
        ("redis:///run/redis.sock?db=0", "unix:///run/redis.sock"),
        ("pymemcache://127.0.0.1:11211", "127.0.0.1:11211"),
    ],
    ids=["memcached-socket", "redis-socket", "memcached-tcp"],
)
def test_cache_url_gives_the_server_location(url: str, location: str) -> None:
    cache = probe_settings("s.CACHES['default']", CACHE_URL=url)

    assert cache["LOCATION"] == location
