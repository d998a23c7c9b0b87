"""Write the published WSDLs to ``wsdl/`` (``python -m gateway.soap.freeze [DIR]``).

The copies in ``wsdl/`` are what generated clients were built from; a test
proves the live ``?wsdl`` still matches them. Run this only for a deliberate
change of the contract, and say so in the commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .app import wsdl_document
from .service import V1, V2


def frozen_name(version, soap12: bool | None) -> str:
    """``{S}.wsdl`` (both bindings, ``?wsdl``), ``{S}.soap11.wsdl``, ``{S}.soap12.wsdl``."""
    if soap12 is None:
        return f"{version.name}.wsdl"
    return f"{version.name}.{'soap12' if soap12 else 'soap11'}.wsdl"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0] if args else "wsdl")
    folder.mkdir(parents=True, exist_ok=True)
    for version in (V1, V2):
        for soap12 in (None, False, True):
            path = folder / frozen_name(version, soap12)
            path.write_bytes(wsdl_document(version, soap12))
            print(path)


if __name__ == "__main__":
    main()
