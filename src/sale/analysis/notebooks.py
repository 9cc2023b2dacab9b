"""Executing the notebooks with parameters, as papermill does, without papermill.

Every notebook's first code cell is tagged `parameters` and holds its inputs as plain assignments (`POOL = "cpu"`).
`execute` runs a notebook after injecting a cell tagged `injected-parameters` right below that cell, which
reassigns the names given; an injected cell from an earlier run is removed first, so a notebook run without
parameters runs on its defaults. scripts/run_notebooks.py and tests/test_notebooks.py use it.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

PARAMETERS = "parameters"
INJECTED = "injected-parameters"


def parse_value(text: str) -> Any:
    """A command-line value as Python: a literal when it reads as one (3, 0.5, None, True, "x", [1, 2]), else the
    string itself (cpu, data/runs)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def parameters_index(nb) -> int:
    """The index of the cell tagged `parameters` (a ValueError if the notebook has none)."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and PARAMETERS in _tags(cell):
            return i
    raise ValueError("the notebook has no cell tagged 'parameters'")


def parameter_names(nb) -> list[str]:
    """The names the parameters cell assigns, in order."""
    tree = ast.parse(nb.cells[parameters_index(nb)].source)
    return [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)]


def inject_parameters(nb, params: dict[str, Any]):
    """Remove any injected cell, then (if `params`) add one after the parameters cell assigning them. Names the
    parameters cell does not assign are refused (a typo would otherwise run the defaults silently)."""
    nb.cells = [c for c in nb.cells if INJECTED not in _tags(c)]
    if not params:
        return nb
    unknown = sorted(set(params) - set(parameter_names(nb)))
    if unknown:
        raise ValueError(f"not parameters of this notebook: {unknown} (its parameters: {parameter_names(nb)})")
    source = "# Injected parameters\n" + "".join(f"{name} = {value!r}\n" for name, value in params.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED]})
    nb.cells.insert(parameters_index(nb) + 1, cell)
    return nb


def execute(path: str | Path, params: dict[str, Any] | None = None, timeout: int = 600, save: bool = False):
    """Run the notebook at `path` (in its own folder, as Jupyter does) with `params` injected; write it back in
    place with its outputs when `save`. Returns the executed notebook."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    inject_parameters(nb, params or {})
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    if save:
        nbformat.write(nb, path)
    return nb
