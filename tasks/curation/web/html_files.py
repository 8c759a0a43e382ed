"""A folder of saved HTML pages as web pages: each .html/.htm file one page.

A folder is one input (one curation task), not one input per page: a documentation tree
holds thousands of small pages. Its URL is the file's path under the folder, as `file:` URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from tasks.curation.reader import is_html_page
from tasks.curation.web.pages import WebPage


def html_files(folder: Path) -> list[Path]:
    """The pages directly in `folder`, in a stable order (subfolders are inputs of their own)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and is_html_page(p))


def read_html_folder(folder: Path, max_page_bytes: int | None = None) -> Iterator[WebPage]:
    for page in html_files(folder):
        st = page.stat()
        oversize = max_page_bytes is not None and st.st_size > max_page_bytes
        payload = b"" if oversize else page.read_bytes()
        mtime = datetime.fromtimestamp(st.st_mtime, tz=UTC).isoformat()
        yield WebPage(
            url=page.resolve().as_uri(),
            date=mtime,
            content_type="text/html",
            charset=None,
            record_id=None,
            status=None,
            payload=payload,
            is_text=False,
            file=str(page),
            offset=0,
            bytes_in=st.st_size if oversize else len(payload),
            oversize=oversize,
        )
