"""The cell magics a lab registers: ``%%measure`` and ``%%requires``, with one cell runner."""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from perflab.measure import DEFAULT_REPEAT, DEFAULT_WARMUP, Measurement, measure, results
from perflab.requires import requirement_met

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["cell_function", "load_ipython_extension", "register_magics"]


def cell_function(shell: InteractiveShell, cell: str) -> Callable[[], Any]:
    """Compile a cell once; return a function that runs it in the user's namespace.

    The function returns the cell's last expression, as a cell's ``Out[]`` shows it (nothing
    after a final ``;``). The source is registered the way IPython registers a cell's, so a
    traceback, or the line a captured query names, shows the cell's own code.
    """
    source = shell.transform_cell(cell)
    try:
        filename = shell.compile.cache(source)
    except AttributeError:  # a shell without IPython's caching compiler
        filename = "<cell>"
    tree = ast.parse(source, filename=filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), filename, "eval")
    body = compile(tree, filename, "exec")
    namespace = shell.user_ns
    hidden = source.rstrip().endswith(";")

    def run() -> Any:
        exec(body, namespace)
        if last is None:
            return None
        value = eval(last, namespace)
        return None if hidden else value

    return run


def _make_magics_class() -> type:
    """Build the Magics class on demand, so importing perflab needs no IPython."""
    from IPython.core.magic import Magics, cell_magic, magics_class
    from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

    @magics_class
    class PerflabMagics(Magics):
        @magic_arguments()
        @argument("label", nargs="*", help="name for this measurement (default: 'cell')")
        @argument("-r", "--repeat", type=int, default=DEFAULT_REPEAT, help="timed runs")
        @argument("-w", "--warmup", type=int, default=DEFAULT_WARMUP, help="untimed runs first")
        @argument("--using", default="default", help="database alias to capture")
        @cell_magic
        def measure(self, line: str, cell: str) -> Measurement:
            """Measure the cell body like measure(): queries, best time, similar groups."""
            args = parse_argstring(self.measure, line)
            label = " ".join(args.label) or "cell"
            run = cell_function(self.shell, cell)
            m = measure(label, run, repeat=args.repeat, warmup=args.warmup, using=args.using)
            self.shell.user_ns["_measure"] = m
            results[label] = m
            return m

        @cell_magic
        def requires(self, line: str, cell: str) -> Any:
            """Run the cell if the requirement on the first line is met; else say why not.

            The value the cell ends with is returned, so IPython shows it as the cell's result.
            """
            met, why = requirement_met(line.strip())
            if not met:
                print(why)
                return None
            return cell_function(self.shell, cell)()

    return PerflabMagics


def register_magics(shell: InteractiveShell) -> None:
    """Register ``%%measure`` and ``%%requires`` with ``shell``; setup() does it in every lab."""
    shell.register_magics(_make_magics_class())


def load_ipython_extension(shell: InteractiveShell) -> None:
    """Make ``%load_ext perflab.magics`` register the magics outside a lab too."""
    register_magics(shell)
