"""Command line for the workshop's chores: ``python -m perflab <command>``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["main"]


def _cmd_seed(args: argparse.Namespace) -> int:
    from . import databases, django_setup, seed

    scale = seed.resolve_scale(args.scale)
    django_setup.configure_django()
    django_setup.check_migrations_match_models()
    started = time.perf_counter()
    if args.database == "postgres":
        from .lab import open_lab

        # The template is built once on the user's server; the copy made beside it is dropped
        # when this process exits.
        lab = open_lab(database="postgres", scale=scale, cache="locmem", name="seed",
                       fallback=False)
        where, built = f"database {lab.template} on your PostgreSQL server", lab.built_template
    else:
        path, built = databases.sqlite_template(scale)
        where = str(path)
    what = "Built" if built else "Already up to date:"
    print(f"{what} template for scale {scale.name!r} at {where} "
          f"({time.perf_counter() - started:.1f} s)")
    return 0


def _cmd_bench_seed(args: argparse.Namespace) -> int:
    from . import bench

    return bench.run(scale=args.scale, database=args.database, repeat=args.repeat,
                     paths=args.paths, rows=args.rows)


def _cmd_notebooks(args: argparse.Namespace) -> int:
    from . import handouts, notebooks

    paths = [Path(p).resolve() for p in args.paths] or notebooks.lesson_paths()
    for path in notebooks.update_navigation(notebooks.lesson_paths()):
        print(f"navigation updated: {path.name}")
    for path in handouts.write_handouts(notebooks.lesson_paths(), notebooks.NOTEBOOKS):
        print(f"handout updated: {path.name}")
    from . import docs_site

    if docs_site.write_readme_badge():
        print("README's Binder badge updated from [tool.perflab] repository")
    if args.no_execute:
        for path in notebooks.update_times(notebooks.lesson_paths()):
            print(f"time updated: {path.name}")
        return _write_guide()
    failed = 0
    for path in paths:
        if args.runs > 1:
            from . import verify

            runs = [notebooks.execute_notebook(path, scale=args.scale, write=False)
                    for _ in range(args.runs)]
            report = runs[verify.most_typical([run.notebook for run in runs])]
            if not report.errors:
                notebooks.save(report)
            print(f"{path.name}: kept run {runs.index(report) + 1} of {args.runs}, the one whose "
                  "ratios sit closest to the runs' medians")
            for comparison, label, low, high in verify.unsteady([run.notebook for run in runs]):
                print(f"  unsteady: {comparison} / {label}: "
                      f"{low:.3g}x to {high:.3g}x across the runs")
        else:
            report = notebooks.execute_notebook(path, scale=args.scale)
        status = "ok" if not report.errors else "FAILED"
        over = report.peak_rss_mb > notebooks.MEMORY_LIMIT_MB
        print(f"{path.name}: {status} in {report.seconds:.1f} s, "
              f"kernel peak memory {report.peak_rss_mb:.0f} MB"
              + (f" (over the {notebooks.MEMORY_LIMIT_MB} MB budget!)" if over else ""))
        for error in report.errors:
            print(f"  {error}")
        failed += bool(report.errors) or over
    for path in notebooks.update_times(notebooks.lesson_paths()):
        print(f"time updated: {path.name}")
    _write_guide()
    return 1 if failed else 0


def _cmd_times(args: argparse.Namespace) -> int:
    from . import lesson_time, notebooks

    paths = [Path(p).resolve() for p in args.paths] or notebooks.lesson_paths()
    failed = 0
    for path in paths:
        report = notebooks.execute_notebook(path, scale="small", write=False)
        if report.errors:
            print(f"{path.name}: FAILED, its time is left as it was")
            failed += 1
            continue
        notebooks.record_times(report)
        time = lesson_time.estimate(report.notebook)
        print(f"{path.name}: ran in {report.seconds:.0f} s; {time.core} min core, "
              f"{time.optional} min optional")
    for path in notebooks.update_times(notebooks.lesson_paths()):
        print(f"time updated: {path.name}")
    _write_guide()
    return 1 if failed else 0


def _write_guide() -> int:
    """Rewrite the instructor guide's lesson times, sizing and links: they follow the lessons."""
    from . import classroom

    return classroom.main(check=False)


def _cmd_classroom(args: argparse.Namespace) -> int:
    from . import classroom

    return classroom.main(check=args.check)


def _cmd_budget(args: argparse.Namespace) -> int:
    from . import budget, notebooks, seed

    scale = seed.resolve_scale(args.scale).name
    if args.record and args.paths:
        print("--record keeps a run of every lesson: run it without naming lessons.")
        return 2
    paths = [Path(p).resolve() for p in args.paths] or notebooks.lesson_paths()
    rows = budget.run(paths, scale=scale)
    print(budget.table(rows).splitlines()[-1])
    failed = [row for row in rows if not row.ok]
    if args.record and not failed:
        record = budget.write_record(rows, scale=scale)
        budget.write_readme(notebooks.README, record)
        print(f"recorded: {budget.RECORD.relative_to(notebooks.REPO_ROOT)} and the README's table")
        _write_guide()
    elif args.record:
        print("not recorded: a lesson failed or went over budget")
    return 1 if failed else 0


def _cmd_docs(args: argparse.Namespace) -> int:
    from . import docs_site

    output, warnings = docs_site.build()
    print(f"built {output} (from the committed notebooks, nothing executed): "
          f"{len(warnings)} Sphinx warnings")
    for line in warnings:
        print(f"  {line}")
    if not args.check:
        return 1 if warnings else 0
    from . import browser, docs_check, services

    ok, why = browser.browser_status()
    if not ok:
        print(f"site not checked in a browser: {why}")
        return 1 if services.is_strict() or warnings else 0
    report = docs_check.check_site(
        output, docs_site.NOTEBOOKS,
        {"executable_path": browser.find_browser(), "args": browser.chromium_args()},
    )
    print(report)
    return 1 if warnings or report.problems else 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from . import doctor

    return doctor.main()


def _cmd_verify(args: argparse.Namespace) -> int:
    from . import notebooks, verify

    paths = [Path(p).resolve() for p in args.paths] or notebooks.lesson_paths()
    drifts, errors = verify.check_lessons(paths, scale=args.scale)
    print(verify.format_table(drifts))
    for error in errors:
        print(f"error: {error}")
    return 0 if not errors and all(d.held for d in drifts) else 1


def _cmd_record(args: argparse.Namespace) -> int:
    import os

    from . import notebooks

    paths = [Path(p).resolve() for p in args.paths] or [
        path for path in notebooks.lesson_paths() if "lab.record(" in path.read_text()
    ]
    os.environ["PERFLAB_RECORD"] = "1"
    failed = 0
    for path in paths:
        report = notebooks.execute_notebook(path, scale=args.scale, write=False)
        print(f"{path.name}: {'ok' if not report.errors else 'FAILED'}")
        for error in report.errors:
            print(f"  {error}")
        failed += bool(report.errors)
    return 1 if failed else 0


def _cmd_site(args: argparse.Namespace) -> int:
    import os
    import shutil
    import socket

    from . import databases, django_setup, seed
    from .errors import PortInUse
    from .paths import REPO_ROOT, state_dir

    scale = seed.resolve_scale(args.scale)
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", args.port))
        except OSError:
            raise PortInUse(
                f"Port {args.port} on 127.0.0.1 is already in use (another `make site`?). "
                f"Stop it, or pick another port: make site PORT={args.port + 1}"
            ) from None
    django_setup.configure_django()
    django_setup.check_migrations_match_models()
    template, _ = databases.sqlite_template(scale)
    # The site gets its own copy: what you do in the browser never touches the template.
    target = state_dir("site") / f"site-{scale.name}.sqlite3"
    if args.fresh or not target.exists():
        shutil.copyfile(template, target)
    password = _site_password(state_dir("site") / "admin-password")
    _set_admin_password(target, password)
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{target}", "DJANGO_DEBUG": "1",
           "DJANGO_DEBUG_TOOLBAR": "1"}
    # flush: exec replaces this process, and a pipe's buffer (not a terminal) would be lost.
    print(f"Serving the shop ({scale.name}) at http://127.0.0.1:{args.port}/\n"
          f"Admin login: admin / {password}   (yours alone; the debug toolbar shows once "
          f"you are logged in)\nCtrl+C stops it.", flush=True)
    manage = str(REPO_ROOT / "demo_project" / "manage.py")
    os.execvpe(sys.executable, [sys.executable, manage, "runserver", f"127.0.0.1:{args.port}"], env)
    return 0  # not reached


def _site_password(path: Path) -> str:
    """Return this learner's admin password for the site, made once and kept in a 0600 file.

    Every local user can reach the site's port on a shared host: a password everyone knows
    (admin / admin) would hand them the admin and the debug toolbar's panels.
    """
    try:
        return path.read_text().strip() or _site_password_new(path)
    except FileNotFoundError:
        return _site_password_new(path)


def _site_password_new(path: Path) -> str:
    import os
    import secrets

    password = secrets.token_urlsafe(12)
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    path.with_suffix(".tmp").replace(path)
    return password


def _set_admin_password(database: Path, password: str) -> None:
    """Give the site copy's admin this learner's password (the template has none usable)."""
    import sqlite3

    from django.contrib.auth.hashers import make_password

    with sqlite3.connect(database) as db:
        db.execute("UPDATE auth_user SET password = ? WHERE username = 'admin'",
                   (make_password(password),))
    db.close()


def _cmd_services(args: argparse.Namespace) -> int:
    from . import services

    if args.action == "list":
        for record in services.running_services():
            print(record)
        return 0
    if args.action == "stop-all":
        from . import shared_postgres

        supervisor = shared_postgres.stop()
        stopped = services.stop_recorded()
        if supervisor is not None:
            print(f"Stopped the shared PostgreSQL (supervisor pid {supervisor}).")
        print(f"Stopped {len(stopped)} server(s)" + (f": pids {stopped}." if stopped else "."))
        return 0
    orphans = services.find_orphans()
    if orphans:
        print(f"Server processes perflab started are still running: {orphans}")
        return 1
    print("No perflab server is left running.")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one chore and return its exit code."""
    parser = argparse.ArgumentParser(prog="python -m perflab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("budget", help="run each lesson once (not saved) and report its wall "
                       "time and peak memory, whole process tree; --record keeps it for the README")
    p.add_argument("paths", nargs="*", help="only these notebooks (default: all lessons)")
    p.add_argument("--scale", default="small")
    p.add_argument("--record", action="store_true",
                   help="write notebooks/recorded/budget.json and the README's budget table")
    p.set_defaults(func=_cmd_budget)

    p = sub.add_parser("classroom", help="rewrite the instructor guide's generated parts (lesson "
                       "times, hub sizing, links); --check exits 1 when they are stale")
    p.add_argument("--check", action="store_true", help="change nothing: is the guide current?")
    p.set_defaults(func=_cmd_classroom)

    p = sub.add_parser("docs", help="build the workshop's static site into build/docs from the "
                       "committed notebooks (offline); --check opens every page in Chromium")
    p.add_argument("--check", action="store_true",
                   help="then check every page, chart and internal link in a headless browser")
    p.set_defaults(func=_cmd_docs)

    p = sub.add_parser("doctor", help="preflight: is this machine ready for every lesson? "
                       "one line per check, each problem with the command that fixes it")
    p.set_defaults(func=_cmd_doctor)

    p = sub.add_parser("seed", help="build the template database for a scale (once)")
    p.add_argument("--scale", help="tiny, small, default or large (default: $PERFLAB_SCALE, "
                   "else small)")
    p.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite",
                   help="which server's template to build (default: sqlite)")
    p.set_defaults(func=_cmd_seed)

    p = sub.add_parser("bench-seed", help="rows/s of a whole template build, SQLite and PostgreSQL")
    p.add_argument("--scale", default="large", help="which template to build (default: large)")
    p.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--repeat", type=int, default=1, help="builds per database (best, median)")
    p.add_argument("--paths", action="store_true",
                   help="instead: perflab's write path vs raw executemany vs bulk_create")
    p.add_argument("--rows", type=int, default=200_000, help="review rows for --paths")
    p.set_defaults(func=_cmd_bench_seed)

    p = sub.add_parser("notebooks", help="regenerate navigation and handouts, re-run every lesson")
    p.add_argument("paths", nargs="*", help="only these notebooks (default: all lessons)")
    p.add_argument("--scale", default="small")
    p.add_argument("--no-execute", action="store_true",
                   help="only update the navigation and the handouts")
    p.add_argument("--runs", type=int, default=1, help="run each lesson N times and keep the "
                   "most typical run (its ratios closest to the N runs' medians)")
    p.set_defaults(func=_cmd_notebooks)

    p = sub.add_parser("times", help="a dry run: run each lesson once at small (outputs not "
                       "saved) and write its estimated time into it and into the README")
    p.add_argument("paths", nargs="*", help="only these notebooks (default: all lessons)")
    p.set_defaults(func=_cmd_times)

    p = sub.add_parser("verify", help="re-run lessons (not saved) and check that every committed "
                       "ratio reproduces within its tolerance")
    p.add_argument("paths", nargs="*", help="only these notebooks (default: all lessons)")
    p.add_argument("--scale", default="small")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("record", help="re-run lessons (not saved) and write the figures their "
                       "lab.record() cells keep, for kernels that cannot measure them")
    p.add_argument("paths", nargs="*", help="lessons (default: those that call lab.record)")
    p.add_argument("--scale", default="small")
    p.set_defaults(func=_cmd_record)

    p = sub.add_parser("site", help="run the shop in a browser with django-debug-toolbar")
    p.add_argument("--scale", help="default: $PERFLAB_SCALE or small")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--fresh", action="store_true", help="start again from the template")
    p.set_defaults(func=_cmd_site)

    p = sub.add_parser("services", help="servers perflab started for this user: list, "
                       "stop-all (every one of them, whoever started it), check-orphans")
    p.add_argument("action", choices=["list", "stop-all", "check-orphans"])
    p.set_defaults(func=_cmd_services)

    args = parser.parse_args(argv)
    from .errors import PerflabError

    try:
        return args.func(args)
    except PerflabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
