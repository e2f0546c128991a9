"""The OpenAPI document: the committed ``openapi.json`` with the parts generated from the code.

The ``JobSpec`` component comes from :func:`swm_jupyter.core.jobfields.job_spec_schema`; the rest of
the document is written by hand. ``python -m swm_jupyter.handlers.openapi_doc`` rewrites the committed
file so that it equals what the server serves (a test checks they agree).
"""

from __future__ import annotations

import json
import sys
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..core.jobfields import job_spec_schema

DOCUMENT = "openapi.json"


def committed_text() -> str:
    """The text of the document kept in the package."""
    return files("swm_jupyter.handlers").joinpath(DOCUMENT).read_text(encoding="utf-8")


def generate(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with its generated parts replaced by what the code defines now."""
    out = json.loads(json.dumps(document))
    out["components"]["schemas"]["JobSpec"] = job_spec_schema()
    return out


def render(document: dict[str, Any]) -> str:
    """The document as the committed file holds it (indent 1, UTF-8, a final newline)."""
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


@cache
def openapi_document() -> dict[str, Any]:
    """The API document the server serves: the committed one with its generated parts."""
    return generate(json.loads(committed_text()))


def main(argv: list[str] | None = None) -> int:
    """Rewrite the committed document from the code (``--check``: exit 1 if it differs instead)."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(__file__).with_name(DOCUMENT)
    text = render(openapi_document())
    if "--check" in args:
        if path.read_text(encoding="utf-8") != text:
            print(f"{path.name} differs from the generated document; run python -m {__spec__.name}", file=sys.stderr)
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
