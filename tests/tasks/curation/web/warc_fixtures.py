"""WARC files written by the tests, with FastWARC's own writer."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

from fastwarc.warc import WarcRecord, WarcRecordType

ENGLISH_PARAGRAPHS = [
    "The river runs past the old mill, where the town keeps its records of every flood since the bridge "
    "was built. Each spring the water rises over the lower fields, and the farmers move their animals to "
    "the hill pastures until the ground is dry again.",
    "Most of the houses near the square were rebuilt after the fire of 1881. The new walls were made of "
    "brick instead of timber, and the council paid for a water tower so that the next fire could be put "
    "out before it spread from one street to the next.",
    "In the school on the hill, children learn the names of the streams that feed the river. Their teacher "
    "takes them out every autumn to measure how fast the water moves, and they write the numbers in a book "
    "that has been kept for more than forty years.",
    "Visitors who come for the market on Saturday often stay for the music in the evening. The players sit "
    "under the trees by the church, and anyone who brings an instrument is welcome to join them for a song "
    "or two before the lights go out.",
]
ENGLISH = " ".join(ENGLISH_PARAGRAPHS)
FRENCH = (
    "La rivière passe devant le vieux moulin, où la ville garde les registres de chaque crue depuis "
    "la construction du pont. Chaque printemps, l'eau monte sur les champs du bas, et les paysans "
    "mènent leurs bêtes vers les pâturages de la colline jusqu'à ce que la terre soit sèche. Les "
    "maisons près de la place ont été reconstruites après le grand incendie, en briques cette fois."
)


def article(title: str, body: str | list[str], charset: str | None = None) -> str:
    """A page with navigation, a script and a footer around an article of `body`'s paragraphs."""
    meta = f'<meta charset="{charset}">' if charset else ""
    paras = "".join(f"<p>{b}</p>" for b in ([body] if isinstance(body, str) else body))
    return (
        f"<!DOCTYPE html><html><head>{meta}<title>{title}</title><script>var x = 1;</script></head>"
        f"<body><nav><a href='/'>Home</a> | <a href='/about'>About</a></nav>"
        f"<article><h1>{title}</h1>{paras}</article><footer>Copyright 2024 Example</footer></body></html>"
    )


def record(
    kind: str,
    url: str | None,
    body: bytes,
    *,
    content_type: str = "text/html; charset=utf-8",
    status: int = 200,
    http: bool | None = None,
    date: str = "2024-05-06T07:08:09Z",
) -> bytes:
    """One WARC record as bytes; responses carry an HTTP status line and headers."""
    types = {
        "response": WarcRecordType.response,
        "request": WarcRecordType.request,
        "resource": WarcRecordType.resource,
        "metadata": WarcRecordType.metadata,
        "warcinfo": WarcRecordType.warcinfo,
        "revisit": WarcRecordType.revisit,
        "conversion": WarcRecordType.conversion,
    }
    http = kind == "response" if http is None else http
    if http:
        head = f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        content = head.encode() + body
        warc_type = "application/http; msgtype=response"
    elif kind == "request":
        content = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
        warc_type = "application/http; msgtype=request"
    else:
        content, warc_type = body, content_type
    r = WarcRecord()
    r.init_headers(types[kind], content_length=len(content))
    if url:
        r.headers["WARC-Target-URI"] = url
    r.headers["WARC-Date"] = date
    r.headers["Content-Type"] = warc_type
    r.set_bytes_content(content)
    out = io.BytesIO()
    r.write(out)
    return out.getvalue()


def write_warc(path: Path, records: list[bytes]) -> Path:
    """Plain, or one gzip member per record (as Common Crawl writes them) for a .gz name."""
    data = b"".join(gzip.compress(r) for r in records) if path.name.endswith(".gz") else b"".join(records)
    path.write_bytes(data)
    return path
