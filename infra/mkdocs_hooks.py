"""MkDocs hooks of the documentation site (infra/mkdocs.yml): the reference pages, generated
from the code at every build (infra/app/reference_docs.py), so they are never stale and never
committed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]


def on_files(files: Files, config: Any) -> Files:
    if str(ROOT) not in sys.path:  # mkdocs run from a checkout without the editable install
        sys.path.insert(0, str(ROOT))
    from infra.app.reference_docs import pages

    for path, content in pages().items():
        stale = files.get_file_from_path(path)
        if stale is not None:  # a file of that name in docs/ would be stale: the generated one wins
            files.remove(stale)
        files.append(File.generated(config, path, content=content))
    return files
