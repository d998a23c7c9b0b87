"""The layers hold: import-linter's contract in setup.cfg (docs/architecture.md) is kept.

``lint-imports`` runs as ``tox -e lint`` runs it; its report is shown when a contract is
broken. An exception the contract lists (``ignore_imports``) that no longer happens
fails it too, so that the list of what must still move only shrinks.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from importlinter.api import read_configuration

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_import_contract_is_kept():
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
        timeout=240, check=False)
    report = result.stdout + result.stderr
    assert result.returncode == 0, f"the import contract is broken:\n{report}"


def test_every_part_of_the_gateway_has_a_layer():
    """A module or package new under gateway/ gets its place in the layers, so that the
    contract checks what it imports and what imports it."""
    options = read_configuration(str(ROOT / "setup.cfg"))
    layers = next(c for c in options["contracts_options"] if c["id"] == "layers")["layers"]
    named = {name for layer in layers for name in re.split(r"[|:]", layer) if name.strip()}
    named = {name.strip() for name in named}
    parts = {f"gateway.{p.stem}" for p in (ROOT / "gateway").glob("*.py")
             if p.stem != "__init__"}
    parts |= {f"gateway.{p.parent.name}" for p in (ROOT / "gateway").glob("*/__init__.py")}
    assert parts - named == set(), "modules without a layer in setup.cfg [importlinter]"
    assert {"userstores", "connectors"} <= named
