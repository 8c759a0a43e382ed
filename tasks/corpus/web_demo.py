"""The web demo's crawl: WARC files of real HTML pages from Debian packages, in four languages.

Pages nobody on this project wrote, under free licences, each with the URL it is published at:
- python3.11-doc: the Python documentation as HTML (English, PSF licence);
- debian-reference-en/-fr/-de/-es: the Debian Reference in English, French, German and Spanish
  (GPL-2+; Debian has no Spanish Developer's Reference);
- developers-reference, -fr, -de: the Debian Developer's Reference (MIT-style licence).

Each page becomes a request record and a response record (as Common Crawl writes them), with
its charset in the HTTP header, in gzipped WARC files written with FastWARC, the library that
reads them. The language each page is written in is known from its package, which
benchmarks/web_curation.py scores language identification against (`pages.json`). Built
once per cache folder, like the demo corpus.
"""

from __future__ import annotations

import gzip
import io
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from infra.core.storage import atomic_path, write_json
from tasks.corpus.demo import DebianSource, _find, _locate, _require_fetchable, already_built, cache_dir

log = logging.getLogger(__name__)

WEB_DEMO_VERSION = "v2"  # v2: the Spanish Debian Reference added
PAGES_PER_FILE = 200
PAGES_FILE = "pages.json"
CRAWL_DATE = datetime(2024, 6, 1, tzinfo=UTC)  # fixed, so the files are the same each build


@dataclass(frozen=True)
class Site:
    source: DebianSource  # its path: one page only this package has, so each package is found or fetched
    glob: str  # the pages, in that page's folder
    url: str  # where the pages are published; the page's path under that folder follows
    language: str

    def pages(self, unpack_root: Path) -> list[tuple[str, Path]]:
        """(published URL, file) of each page, the package fetched first if needed."""
        root = _locate(self.source, unpack_root).parent
        return [(self.url + str(p.relative_to(root)), p) for p in sorted(root.glob(self.glob)) if p.is_file()]


def _site(package: str, page: str, glob: str, url: str, language: str, licence: str) -> Site:
    return Site(DebianSource(package, page, "web", licence), glob, url, language)


SITES = (
    _site(
        "python3.11-doc",
        "usr/share/doc/python3.11/html/index.html",
        "**/*.html",
        "https://docs.python.org/3.11/",
        "en",
        "PSF-2.0",
    ),
    *[
        _site(
            f"debian-reference-{lang}",
            f"usr/share/debian-reference/ch01.{lang}.html",
            f"*.{lang}.html",
            "https://www.debian.org/doc/manuals/debian-reference/",
            lang,
            "GPL-2.0-or-later",
        )
        for lang in ("en", "fr", "de", "es")
    ],
    *[
        _site(
            f"developers-reference{'-' + lang if lang != 'en' else ''}",
            f"usr/share/developers-reference/{lang + '/' if lang != 'en' else ''}best-pkging-practices.html",
            "*.html",
            f"https://www.debian.org/doc/manuals/developers-reference/{lang + '/' if lang != 'en' else ''}",
            lang,
            "MIT",
        )
        for lang in ("en", "fr", "de")
    ],
)


# The quality classifier's good class in the web demo (`hq_path: web-demo-reference`): a curated
# book, not in the crawl, against pages drawn from the crawl (GPT-3 and DCLM's recipe).
REFERENCE = DebianSource(
    "debian-handbook", "usr/share/doc/debian-handbook/html/en-US/index.html", "reference", "GPL-2.0-or-later"
)
REFERENCE_NAME = "web-demo-reference"


def reference_pages() -> Path:
    """The folder of the Debian Administrator's Handbook's English HTML pages."""
    return _locate(REFERENCE, cache_dir() / "debian-root").parent


def web_demo_dir() -> Path:
    return cache_dir() / f"web-demo-{WEB_DEMO_VERSION}"


def check_web_demo_available() -> None:
    """Raise CorpusUnavailable now if the crawl is not built and its packages cannot be fetched."""
    built = already_built(web_demo_dir()) is not None
    for source in ([] if built else [s.source for s in SITES]) + [REFERENCE]:
        if _find(source, cache_dir() / "debian-root") is None:
            _require_fetchable(source)


def _records(url: str, html: bytes) -> bytes:
    from fastwarc.warc import WarcRecord, WarcRecordType

    host = url.split("/")[2]
    request = f"GET /{url.split('/', 3)[3]} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: crucible-web-demo\r\n\r\n".encode()
    response = (
        f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {len(html)}\r\n\r\n"
    ).encode() + html
    out = io.BytesIO()
    for kind, content, ctype in (
        (WarcRecordType.request, request, "application/http; msgtype=request"),
        (WarcRecordType.response, response, "application/http; msgtype=response"),
    ):
        rec = WarcRecord()
        rec.init_headers(kind, content_length=len(content))
        rec.headers["WARC-Target-URI"] = url
        rec.headers["WARC-Date"] = CRAWL_DATE.strftime("%Y-%m-%dT%H:%M:%SZ")
        rec.headers["Content-Type"] = ctype
        if kind == WarcRecordType.response:
            rec.headers["WARC-Identified-Payload-Type"] = "text/html"  # as Common Crawl labels pages
        rec.set_bytes_content(content)
        member = io.BytesIO()
        rec.write(member)
        out.write(gzip.compress(member.getvalue(), mtime=0))  # one gzip member per record
    return out.getvalue()


# More pages for benchmarks/web_curation.py, past 100 MB of HTML: PostgreSQL's and Git's manuals,
# and the Debian Administrator's Handbook in eight more languages (the demo's reference corpus is
# its English edition, which stays out of every crawl).
BENCHMARK_SITES = (
    *SITES,
    _site(
        "postgresql-doc-15",
        "usr/share/doc/postgresql-doc-15/html/index.html",
        "*.html",
        "https://www.postgresql.org/docs/15/",
        "en",
        "PostgreSQL",
    ),
    _site("git-doc", "usr/share/doc/git-doc/git.html", "**/*.html", "https://git-scm.com/docs/", "en", "GPL-2.0"),
    *[
        _site(
            "debian-handbook",
            f"usr/share/doc/debian-handbook/html/{locale}/index.html",
            "*.html",
            f"https://debian-handbook.info/browse/{locale}/stable/",
            locale[:2],
            "GPL-2.0-or-later",
        )
        for locale in ("de-DE", "fr-FR", "es-ES", "it-IT", "pt-BR", "nl-NL", "pl-PL", "ja-JP")
    ],
)


def build_web_demo(dest: Path | None = None, sites: tuple[Site, ...] = SITES) -> Path:
    """Build (once) and return the folder of the web demo's WARC files (or of `sites`' pages)."""
    dest = dest or web_demo_dir()
    if (done := already_built(dest)) is not None:
        log.info("reusing the web demo crawl at %s (%s pages)", dest, done["pages"])
        return dest
    pages = [(url, path, site) for site in sites for url, path in site.pages(cache_dir() / "debian-root")]
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob("*"):  # a build interrupted before its marker: start again
        stale.unlink()
    nbytes = 0
    for start in range(0, len(pages), PAGES_PER_FILE):
        chunk = pages[start : start + PAGES_PER_FILE]
        data = b"".join(_records(url, path.read_bytes()) for url, path, _ in chunk)
        with atomic_path(dest / f"crawl-{start // PAGES_PER_FILE:04d}.warc.gz") as tmp:
            tmp.write_bytes(data)
        nbytes += len(data)
    # Not an input (.json is not a document format): each page's known language, for benchmarks.
    write_json(
        dest / PAGES_FILE,
        [
            {"url": url, "language": site.language, "package": site.source.package, "license": site.source.license}
            for url, _, site in pages
        ],
    )
    by_lang = dict(Counter(site.language for _, _, site in pages))
    write_json(
        dest / "_SUCCESS.json",
        {
            "pages": len(pages),
            "bytes": nbytes,
            "languages": by_lang,
            "version": WEB_DEMO_VERSION,
            "packages": sorted({s.source.package for s in sites}),
        },
    )
    log.info("built the web demo crawl: %d pages (%s), %.1f MB of WARC in %s", len(pages), by_lang, nbytes / 1e6, dest)
    return dest
