"""Draw the shop's models as a picture, with django-extensions' graph_models and Graphviz."""

from __future__ import annotations

import io
import shutil
import subprocess
from typing import Any

__all__ = ["GRAPHVIZ_HINT", "model_diagram", "model_dot"]

GRAPHVIZ_HINT = (
    "Graphviz's `dot` is not installed, so here is the diagram as text. Install it with "
    "`sudo apt-get install graphviz`, `brew install graphviz` or "
    "`conda install -c conda-forge graphviz`."
)


def model_dot(*app_labels: str, models: list[str] | None = None) -> str:
    """Return the Graphviz source graph_models writes for ``app_labels`` (no pygraphviz needed)."""
    from django.core.management import call_command

    args = [*app_labels, "--dot"]
    if models:
        args += ["--include-models", ",".join(models)]
    out = io.StringIO()
    call_command("graph_models", *args, stdout=out)
    return out.getvalue()


def model_diagram(*app_labels: str, models: list[str] | None = None) -> Any:
    """Return an SVG of the models for Jupyter, or the relations as text when dot is missing."""
    dot_source = model_dot(*app_labels, models=models)
    dot = shutil.which("dot")
    if dot is None:
        return _as_text(app_labels, models)
    svg = subprocess.run([dot, "-Tsvg"], input=dot_source, capture_output=True, text=True,
                         check=True).stdout
    from IPython.display import SVG

    return SVG(svg)


class _TextDiagram:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _as_text(app_labels: tuple[str, ...], models: list[str] | None) -> _TextDiagram:
    from django.apps import apps

    lines = [GRAPHVIZ_HINT, ""]
    for label in app_labels:
        for model in apps.get_app_config(label).get_models():
            if models and model.__name__ not in models:
                continue
            for f in model._meta.get_fields():
                target = f.related_model
                if not (f.is_relation and f.concrete and target is not None):
                    continue
                if not models or target.__name__ in models:
                    kind = "many-to-many" if f.many_to_many else "foreign key"
                    lines.append(f"{model.__name__}.{f.name} → {target.__name__} ({kind})")
    return _TextDiagram("\n".join(lines))
