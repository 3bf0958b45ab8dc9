"""The lab API a lesson uses: requests, another database for a block, and what a query names."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import perflab
from perflab import capture

REPO = Path(__file__).resolve().parents[1]
PERFLAB = REPO / "demo_project" / "perflab"


@pytest.fixture
def lab():
    return perflab.setup(scale="tiny", quiet=True)


def test_get_a_url_goes_through_the_whole_stack(lab) -> None:
    response = lab.get("/")
    assert response.status_code == 200
    assert b"<table" in response.content
    assert response.wsgi_request.path == "/"  # the test Client's request: routing and middleware


def test_get_a_url_as_a_logged_in_user(lab) -> None:
    from django.contrib.auth.models import User

    customer = User.objects.filter(is_superuser=False).order_by("id").first()
    response = lab.get("/", user=customer)
    assert response.wsgi_request.user == customer
    again = lab.get("/", user=customer)  # one client per user, logged in once
    assert again.wsgi_request.user == customer
    assert lab.get("/").wsgi_request.user.is_anonymous


def test_get_a_view_class_renders_it_alone(lab) -> None:
    from shop.views import ProductListView

    response = lab.get(ProductListView, "/?page=1")
    assert response.status_code == 200 and response.is_rendered
    assert response.context_data["page_obj"].number == 1


def test_get_a_drf_view_returns_rendered_json(lab) -> None:
    from shop.api import ReviewListAPIView

    response = lab.get(ReviewListAPIView.as_view(), "/api/reviews/")
    assert response.status_code == 200
    assert isinstance(json.loads(response.content), list | dict)


def test_get_a_wsgi_handler_as_a_server_does(lab) -> None:
    from django.core.handlers.wsgi import WSGIHandler

    response = lab.get(WSGIHandler(), "/healthz", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200


def test_get_refuses_what_it_cannot_send(lab) -> None:
    with pytest.raises(TypeError, match="a URL, a view"):
        lab.get(42)
    with pytest.raises(TypeError, match="takes the URL alone"):
        lab.get("/", "/other/")


def test_similar_queries_name_the_line_that_sent_them(lab) -> None:
    from shop.models import Product

    m = lab.measure("n+1", lambda: [p.category.name for p in Product.objects.order_by("id")[:5]])
    (group,) = m.similar_groups
    sql, count = group  # still unpacks as (sql, count)
    assert sql.startswith("SELECT")
    assert count == 5
    assert group.source is not None and "p.category.name" in group.source
    assert "p.category.name" in str(group) and "5 similar, sent by" in str(group)
    assert "sent by" in m._repr_html_()


def test_similar_queries_from_a_template_name_the_tag(lab) -> None:
    from shop.views import ProductListView

    m = lab.measure("page", lambda: lab.get(ProductListView), repeat=1)
    sources = [g.source for g in m.similar_groups]
    assert any("{{ product.category.name }}" in s and "product_list.html:" in s for s in sources)


def test_sent_from_is_none_without_learner_code() -> None:
    assert capture._code_line(__file__, 1).startswith("`")


def test_using_postgres_runs_a_block_there_and_comes_back(lab) -> None:
    from django.db import connection

    from shop.models import Product

    name = Product.objects.get(pk=1).name
    with lab.using("postgres") as pg:
        assert connection.vendor == "postgresql" and pg.database == "postgres"
        host = pg.database_settings["HOST"]  # the socket folder, where Django and libpq look
        assert Path(host, f".s.PGSQL.{pg.database_settings['PORT']}").is_socket()
        Product.objects.filter(pk=1).update(name="changed on PostgreSQL")
    assert connection.vendor == "sqlite"
    assert Product.objects.get(pk=1).name == name  # this lab's own copy, untouched
    with lab.using("postgres"):  # the same PostgreSQL copy: earlier blocks' changes are there
        assert Product.objects.get(pk=1).name == "changed on PostgreSQL"
    with lab.using("sqlite") as same:
        assert same is lab


def test_compare_scales_measures_each_scale_on_its_own_copy(lab) -> None:
    from perflab.compare import Sentence
    from shop.models import Review

    before_calls: list[int] = []
    by_scale = lab.compare_scales(
        {"load all": lambda: list(Review.objects.all()), "count": Review.objects.count},
        title="Reviews",
        scales=("tiny",),
        before=lambda: before_calls.append(Review.objects.count()),
    )
    reviews = perflab.SCALES["tiny"].reviews
    assert before_calls == [reviews] and list(by_scale) == ["tiny"]
    assert by_scale["tiny"].title == f"Reviews, {reviews:,} reviews"
    assert by_scale.counts() == {"tiny": {"load all": 1, "count": 1}}
    assert all(m.interleaved for m in by_scale["tiny"].measurements)
    sentences = by_scale.sentences("count")
    assert isinstance(sentences, Sentence)
    assert sentences.startswith(f"**`tiny`, {reviews:,} reviews**")
    assert sentences.records[0]["comparison"] == f"Reviews, {reviews:,} reviews"
    figure = by_scale.chart("Reviews at one size")
    assert len(figure.axes[0].get_lines()) == 2


def test_using_rejects_an_unknown_database(lab) -> None:
    with pytest.raises(perflab.UnknownChoice), lab.using("oracle"):
        pass


def test_lab_methods_have_real_signatures() -> None:
    import inspect

    for name in ("measure", "compare", "explain", "get", "servers", "using", "compare_scales"):
        signature = inspect.signature(getattr(perflab.Lab, name))
        assert "kwargs" not in signature.parameters, name
        for parameter in signature.parameters.values():
            typed = parameter.annotation not in ("Any", inspect.Parameter.empty)
            assert typed or parameter.name in ("self", "user"), (name, parameter.name)


def _perflab_modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text()) for p in PERFLAB.glob("*.py")}


def test_no_perflab_module_reaches_into_another_ones_private_names() -> None:
    modules = _perflab_modules()
    offences = []
    for name, tree in modules.items():
        bound = set()  # names this module gives to other perflab modules
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module == "perflab" or (
                    node.level == 1 and not node.module)):
                bound.update(a.asname or a.name for a in node.names if a.name in modules)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("perflab"):
                offences += [f"{name}: from {node.module} import {a.name}"
                             for a in node.names if a.name.startswith("_")]
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in bound):
                offences.append(f"{name}: {node.value.id}.{node.attr}")
    assert offences == []


def test_no_perflab_module_is_over_about_400_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in PERFLAB.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 420} == {}


def test_perflab_modules_import_each_other_without_a_cycle() -> None:
    modules = _perflab_modules()
    graph: dict[str, set[str]] = {}
    for name, tree in modules.items():
        deps = set()
        for node in tree.body:  # module level only: what importing the module runs
            if not isinstance(node, ast.ImportFrom):
                continue
            module = node.module or ""
            if node.level == 0 and not module.startswith("perflab"):
                continue
            target = module.removeprefix("perflab").lstrip(".")
            if target:
                deps.add(target.split(".")[0])
            else:
                deps.update(a.name for a in node.names if a.name in modules)
        graph[name] = deps & set(modules) - {name}

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            raise AssertionError(" -> ".join([*path[path.index(node):], node]))
        for dep in graph.get(node, ()):
            visit(dep, [*path, node])

    for name in graph:
        visit(name, [])


def test_lessons_import_only_from_perflab_itself() -> None:
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                assert "from perflab." not in source and "import perflab." not in source, path.name


def test_get_a_url_follows_a_changed_middleware_list(lab) -> None:
    from django.test import override_settings

    assert "X-Frame-Options" in lab.get("/healthz")
    with override_settings(MIDDLEWARE=[]):
        assert "X-Frame-Options" not in lab.get("/healthz")
    assert "X-Frame-Options" in lab.get("/healthz")


def test_post_sends_a_form_through_a_wsgi_handler(lab) -> None:
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    with override_settings(MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"]):
        app = WSGIHandler()
    assert lab.post(app, "/healthz", data={"a": "1"}).status_code == 403  # no CSRF token


def test_import_perflab_needs_no_posix_only_module(tmp_path: Path) -> None:
    """On Windows there is no fcntl, pwd or grp: importing perflab must still work there.

    (psutil needs `resource` on Linux only; on Windows it loads its own backend.)
    """
    import subprocess
    import sys

    script = (
        "import sys\n"
        "for name in ('fcntl', 'pwd', 'grp'):\n"
        "    sys.modules[name] = None  # importing it now raises ImportError, as on Windows\n"
        "import perflab, perflab.lab, perflab.services, perflab.shared_postgres\n"
        "print('imported')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO / "demo_project", timeout=120)
    assert result.stdout.strip() == "imported", result.stderr


def test_using_another_scale_runs_a_block_on_that_data_and_comes_back(lab) -> None:
    from shop.models import Product

    tiny = Product.objects.count()
    with lab.using(scale="small") as bigger:
        assert bigger.scale.name == "small" and bigger.database == lab.database
        assert Product.objects.count() == perflab.SCALES["small"].products
        Product.objects.filter(pk=1).update(name="changed at small")
    assert Product.objects.count() == tiny == perflab.SCALES["tiny"].products
    assert Product.objects.get(pk=1).name != "changed at small"  # two files side by side
    with lab.using(scale="small"):  # the same copy again: earlier blocks' changes are there
        assert Product.objects.get(pk=1).name == "changed at small"
    with lab.using(scale="tiny") as same:
        assert same is lab
    with pytest.raises(perflab.UnknownChoice), lab.using(scale="huge"):
        pass


def test_profile_names_functions_and_modules_never_paths(lab) -> None:
    import json as json_module

    from perflab.profiling import module_of

    assert module_of("/x/.venv/lib/python3.11/site-packages/rest_framework/fields.py") == (
        "rest_framework.fields"
    )
    assert module_of("/usr/lib/python3.11/json/__init__.py") == "json"
    assert module_of("/tmp/ipykernel_4242/123456.py") == ""  # a notebook cell: left out
    rows = [{"n": i, "tags": [str(j) for j in range(30)]} for i in range(20_000)]
    found = lab.profile(lambda: [json_module.dumps(rows) for _ in range(3)], top=5)
    assert found.rows and len(found.rows) <= 5
    assert all(0 < row.share <= 1 for row in found.rows)
    assert any(row.module.startswith("json") for row in found.rows)
    text = str(found) + found._repr_html_()
    assert "/" not in text.replace("</", "") and ".py" not in text


def test_a_lab_folder_is_private_empty_and_the_lab_s_own(lab) -> None:
    import stat

    first = lab.folder("tests")
    (first / "leftover.py").write_text("x = 1\n")
    again = lab.folder("tests")
    assert again == first and list(again.iterdir()) == []  # emptied each time it is asked for
    assert stat.S_IMODE(first.stat().st_mode) == 0o700
    assert first.is_relative_to(perflab.paths.state_root())
    dead = first.parent / "lab-tests-999999999"  # a kernel that was killed: no such pid
    dead.mkdir()
    lab.folder("tests")
    assert not dead.exists()
