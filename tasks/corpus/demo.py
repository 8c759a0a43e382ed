"""The built-in demo corpus: real English text from Debian packages, as JSONL documents.

Sources (text nobody on this project wrote, under free licences):
- dict-gcide: the Collaborative International Dictionary of English (GPL-2+), ~40 MB,
  grouped into dictionary "pages" of consecutive entries (source `reference`);
- python3.11-doc: the Python documentation sources (PSF licence), ~12 MB, cut into
  sections at paragraph boundaries (source `docs`).

The packages are unpacked (`apt-get download` + `dpkg -x`, no dependencies pulled in) into
the cache when the system does not already have them; that needs root. The corpus is built
once per cache folder and reused.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from infra.core.storage import atomic_path, read_json, write_json

log = logging.getLogger(__name__)

CORPUS_VERSION = "v1"
PAGE_CHARS = 3000
SECTION_CHARS = 6000
DOCS_PER_SHARD = 1500


class CorpusUnavailable(RuntimeError):
    """The demo corpus's source packages are missing and cannot be fetched here."""


@dataclass(frozen=True)
class DebianSource:
    package: str
    path: str  # path inside the package (and on a system that has it installed)
    source: str
    license: str


GCIDE = DebianSource("dict-gcide", "usr/share/dictd/gcide.dict.dz", "reference", "GPL-2.0-or-later")
PYDOCS = DebianSource("python3.11-doc", "usr/share/doc/python3.11/html/_sources", "docs", "PSF-2.0")


def cache_dir() -> Path:
    return Path(os.environ.get("CRUCIBLE_CACHE_DIR", Path.home() / ".cache" / "crucible"))


def _find(src: DebianSource, unpack_root: Path) -> Path | None:
    for root in (Path("/"), unpack_root):
        if (root / src.path).exists():
            return root / src.path
    return None


def _require_fetchable(src: DebianSource) -> None:
    if os.geteuid() != 0:
        raise CorpusUnavailable(
            f"the demo corpus needs the Debian package {src.package} (/{src.path} is missing) "
            f"and fetching it needs root; run 'sudo apt-get install {src.package}' or set "
            f"curation.input_path to your own JSONL/Parquet documents"
        )


def check_available() -> None:
    """Raise CorpusUnavailable now, before any worker starts, if the corpus cannot be built."""
    base = cache_dir()
    if (base / f"demo-corpus-{CORPUS_VERSION}" / "_SUCCESS.json").exists():
        return
    for src in (GCIDE, PYDOCS):
        if _find(src, base / "debian-root") is None:
            _require_fetchable(src)


def _locate(src: DebianSource, unpack_root: Path) -> Path:
    found = _find(src, unpack_root)
    if found is not None:
        return found
    _require_fetchable(src)
    debs = unpack_root.parent / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    log.info("fetching Debian package %s (once; it is kept under %s)", src.package, unpack_root)
    download = ["apt-get", "download", src.package]
    if subprocess.run(download, cwd=debs, check=False, capture_output=True).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        result = subprocess.run(download, cwd=debs, check=False, capture_output=True, text=True)
        if result.returncode != 0:
            raise CorpusUnavailable(
                f"'apt-get download {src.package}' failed: {result.stderr.strip()[-500:]}; "
                f"install it with apt-get or set curation.input_path to your own documents"
            )
    deb = sorted(debs.glob(f"{src.package}_*.deb"))[-1]
    subprocess.run(["dpkg", "-x", str(deb), str(unpack_root)], check=True)
    return unpack_root / src.path


def _chunks(paragraphs: list[str], limit: int) -> Iterator[str]:
    buf: list[str] = []
    size = 0
    for para in paragraphs:
        if buf and size + len(para) > limit:
            yield "\n\n".join(buf)
            buf, size = [], 0
        buf.append(para)
        size += len(para) + 2
    if buf:
        yield "\n\n".join(buf)


def gcide_documents(path: Path) -> Iterator[dict]:
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        text = f.read()
    # An entry starts at column 0 after a blank line; continuation lines are indented.
    entries = [e.strip("\n") for e in re.split(r"\n\s*\n(?=\S)", text) if e.strip()]
    for i, page in enumerate(_chunks(entries, PAGE_CHARS)):
        first = page.split(" ", 1)[0]
        yield {
            "id": f"gcide-{i:06d}",
            "text": page,
            "source": GCIDE.source,
            "metadata": {"package": GCIDE.package, "license": GCIDE.license, "first_entry": first},
        }


def pydoc_documents(root: Path) -> Iterator[dict]:
    for path in sorted(root.rglob("*.rst.txt")):
        rel = str(path.relative_to(root))
        paragraphs = [p for p in re.split(r"\n\s*\n", path.read_text(encoding="utf-8", errors="replace")) if p.strip()]
        for j, section in enumerate(_chunks(paragraphs, SECTION_CHARS)):
            yield {
                "id": f"pydoc-{rel}-{j:03d}",
                "text": section,
                "source": PYDOCS.source,
                "metadata": {"package": PYDOCS.package, "license": PYDOCS.license, "path": rel},
            }


def already_built(dest: Path) -> dict | None:
    """The summary a finished build left in `dest`, or None: builds write it last."""
    marker = dest / "_SUCCESS.json"
    return read_json(marker) if marker.exists() else None


def build_demo_corpus(dest: Path | None = None) -> Path:
    """Build (once) and return the folder of demo JSONL shards."""
    base = cache_dir()
    dest = dest or base / f"demo-corpus-{CORPUS_VERSION}"
    marker = dest / "_SUCCESS.json"
    if (done := already_built(dest)) is not None:
        log.info("reusing demo corpus at %s (%s documents)", dest, done["documents"])
        return dest
    unpack = base / "debian-root"
    gcide, pydocs = _locate(GCIDE, unpack), _locate(PYDOCS, unpack)
    if dest.exists():
        shutil.rmtree(dest)  # a build interrupted before its marker: start again
    dest.mkdir(parents=True)
    docs = list(gcide_documents(gcide)) + list(pydoc_documents(pydocs))
    nbytes = 0
    for start in tqdm(range(0, len(docs), DOCS_PER_SHARD), desc="writing demo corpus", unit="shard"):
        lines = [json.dumps(d, ensure_ascii=False) + "\n" for d in docs[start : start + DOCS_PER_SHARD]]
        with atomic_path(dest / f"demo-{start // DOCS_PER_SHARD:04d}.jsonl") as tmp:
            tmp.write_text("".join(lines), encoding="utf-8")
        nbytes += sum(len(ln.encode("utf-8")) for ln in lines)
    write_json(
        marker,
        {
            "documents": len(docs),
            "bytes": nbytes,
            "version": CORPUS_VERSION,
            "sources": [GCIDE.package, PYDOCS.package],
        },
    )
    log.info("built demo corpus: %d documents, %.1f MB in %s", len(docs), nbytes / 1e6, dest)
    return dest
