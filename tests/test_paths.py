"""The state folder and the socket folder: private to their user, short enough for a socket."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from perflab import paths
from perflab.paths import SOCKET_ROOM, StateFolderError, runtime_dir, state_dir

LONG = "a-jupyterhub-user-name-as-long-as-some-universities-make-them@example.edu"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PERFLAB_HOME", str(tmp_path / "perflab"))
    paths._checked_roots.clear()
    return tmp_path / "perflab"


def test_every_state_folder_is_private_to_its_user(home: Path) -> None:
    folder = state_dir("services", "running")

    for level in (home, home / "services", folder):
        assert level.stat().st_mode & 0o777 == 0o700, level


def test_sockets_live_in_the_state_folder_when_its_path_is_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    short = Path(tempfile.mkdtemp(prefix="pl-"))  # pytest's own tmp_path is already too long
    monkeypatch.setenv("PERFLAB_HOME", str(short))
    paths._checked_roots.clear()

    assert runtime_dir() == short / "run"
    (short / "run").rmdir()
    short.rmdir()


def test_a_long_home_gets_a_short_private_socket_folder_in_the_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERFLAB_HOME", str(tmp_path / LONG / ".cache" / "perflab"))
    paths._checked_roots.clear()

    folder = runtime_dir()

    assert folder.parent == Path(tempfile.gettempdir())
    assert folder.name.startswith("perflab-") and len(folder.name) > len("perflab-")
    assert folder.stat().st_mode & 0o777 == 0o700 and folder.stat().st_uid == os.geteuid()
    assert len(str(folder)) + SOCKET_ROOM <= 107
    assert runtime_dir() == folder  # every kernel of this user finds the same one
    folder.rmdir()


def test_a_remembered_socket_folder_someone_else_could_enter_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / LONG / "perflab"
    monkeypatch.setenv("PERFLAB_HOME", str(home))
    paths._checked_roots.clear()
    open_to_all = Path(tempfile.mkdtemp(prefix="planted-"))
    open_to_all.chmod(0o777)
    state_dir()
    (home / "run-dir").write_text(str(open_to_all))

    folder = runtime_dir()

    assert folder != open_to_all
    open_to_all.rmdir()
    folder.rmdir()


def test_a_state_folder_that_is_a_file_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("PERFLAB_HOME", str(tmp_path / "file"))
    paths._checked_roots.clear()

    with pytest.raises(StateFolderError) as info:
        state_dir("templates")

    assert "\n" not in str(info.value)
    assert "PERFLAB_HOME" in str(info.value)
