"""Real prose for the curation-class benchmark (benchmarks/curation_classes.py).

English: WikiText-2's test and validation articles (detokenized: WikiText writes `guest @-@
starring` and `Teddy 's`; sentences holding its `<unk>` placeholder are dropped) and
tiny-shakespeare (each speech joined onto one line, `Speaker: words`), from the shared
corpora folder. English, French, German and Spanish: Debian's manuals as HTML (the Debian
Reference in each language, the Developer's Reference in English, French and German), their
main text extracted with Resiliparse; only paragraphs that read as prose of the package's
language are kept (long enough, ending in punctuation, its function words and not English's).

A passage is a run of consecutive paragraphs of one article or page, so it reads as a
document would; `PassagePool` hands each passage out once, so no two cases share text.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tasks.corpus.demo import DebianSource, _locate, cache_dir

# --- WikiText-2 -------------------------------------------------------------------------
_TITLE = re.compile(r"^ = ([^=].*) = $")
_HEADING = re.compile(r"^ (= )+.*(= )+$|^ =")
_DETOK = [
    (re.compile(r" @([-,.])@ "), r"\1"),
    (re.compile(r" (n't|'s|'re|'ve|'ll|'d|'m|s')(?=\W)"), r"\1"),
    (re.compile(r" ([,.;:!?%)\]])"), r"\1"),
    (re.compile(r"([(\[$£]) "), r"\1"),
]
_QUOTED = re.compile(r'" ([^"]*?) "')
SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'A-Z0-9])")


def detokenize(line: str) -> str:
    """WikiText's tokenized spacing undone: `Teddy 's " Story "` -> `Teddy's "Story"`."""
    text = f" {line.strip()} "
    for pattern, repl in _DETOK:
        text = pattern.sub(repl, text)
    return _QUOTED.sub(r'"\1"', text).strip()


@dataclass(frozen=True)
class Article:
    title: str
    paragraphs: list[str]
    source: str


def wikitext_articles(corpora: Path) -> Iterator[Article]:
    for name in ("wikitext2_test.txt", "wikitext2_valid.txt"):
        title, paras = "", []
        for line in (corpora / name).read_text(encoding="utf-8").splitlines():
            if m := _TITLE.match(line):
                if paras:
                    yield Article(title, paras, "wikitext")
                title, paras = detokenize(m.group(1)), []
            elif line.strip() and not _HEADING.match(line):
                sentences = [s for s in SENTENCE.split(detokenize(line)) if "<unk>" not in s]
                if sentences:
                    paras.append(" ".join(sentences))
        if paras:
            yield Article(title, paras, "wikitext")


def shakespeare_scenes(corpora: Path, speeches_per_scene: int = 40) -> Iterator[Article]:
    """Runs of consecutive speeches, each speech one paragraph line `Speaker: words`."""
    speeches = []
    for block in re.split(r"\n\s*\n", (corpora / "tinyshakespeare_input.txt").read_text(encoding="utf-8")):
        lines = [ln.strip() for ln in block.strip().splitlines() if ln.strip()]
        if len(lines) >= 2 and lines[0].endswith(":"):
            speeches.append(f"{lines[0]} {' '.join(lines[1:])}")
    for start in range(0, len(speeches), speeches_per_scene):
        yield Article("", speeches[start : start + speeches_per_scene], "shakespeare")


# --- Debian manuals ---------------------------------------------------------------------
@dataclass(frozen=True)
class Manual:
    source: DebianSource  # a page only this package has: `_locate` finds or fetches the package
    glob: str  # its pages, in that page's folder


def _manual(package: str, page: str, glob: str) -> Manual:
    return Manual(DebianSource(package, page, "web", "GPL-2.0-or-later"), glob)


MANUALS = {
    "en": [
        _manual("debian-reference-en", "usr/share/debian-reference/ch01.en.html", "*.en.html"),
        _manual("developers-reference", "usr/share/developers-reference/best-pkging-practices.html", "*.html"),
    ],
    "fr": [
        _manual("debian-reference-fr", "usr/share/debian-reference/ch01.fr.html", "*.fr.html"),
        _manual("developers-reference-fr", "usr/share/developers-reference/fr/best-pkging-practices.html", "*.html"),
    ],
    "de": [
        _manual("debian-reference-de", "usr/share/debian-reference/ch01.de.html", "*.de.html"),
        _manual("developers-reference-de", "usr/share/developers-reference/de/best-pkging-practices.html", "*.html"),
    ],
    "es": [_manual("debian-reference-es", "usr/share/debian-reference/ch01.es.html", "*.es.html")],
}
# Function words: a paragraph whose words are mostly its language's, and hardly English's,
# is prose of that language (translations leave commands, tables and untranslated notes).
FUNCTION_WORDS = {
    "en": "the and of to in is that for it with as are be this by an or which from at can not you",
    "fr": "le la les de des du et est un une que qui dans pour pas sur au avec ce il en se ne vous",
    "de": "der die das und ist nicht mit den von zu ein eine im sich auf für dem des werden sie es",
    "es": "el la los las de que y en un una es por con para del se no al lo su como más puede",
}
_FUNCTION_SETS = {lang: frozenset(words.split()) for lang, words in FUNCTION_WORDS.items()}


def function_share(text: str, lang: str) -> float:
    words = text.lower().split()
    return sum(w in _FUNCTION_SETS[lang] for w in words) / max(len(words), 1)


def is_prose(paragraph: str, lang: str) -> bool:
    if len(paragraph.split()) < 12 or not paragraph.endswith((".", "!", "?", ":")) or "{" in paragraph:
        return False
    if paragraph.startswith(("•", "-", "*")):  # a list item: lists are not what this class is about
        return False
    own = function_share(paragraph, lang)
    return own >= 0.12 and (lang == "en" or function_share(paragraph, "en") < 0.06)


def manual_articles(lang: str) -> Iterator[Article]:
    """The prose paragraphs of each page of the language's manuals (packages fetched once)."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    for manual in MANUALS[lang]:
        folder = _locate(manual.source, cache_dir() / "debian-root").parent
        for page in sorted(folder.glob(manual.glob)):
            tree = HTMLTree.parse(page.read_text(encoding="utf-8", errors="replace"))
            text = extract_plain_text(
                tree, main_content=True, alt_texts=False, links=False, noscript=False, list_bullets=True
            )
            paras = [p for p in (" ".join(line.split()) for line in text.splitlines()) if is_prose(p, lang)]
            if paras:
                yield Article(page.name, paras, manual.source.package)


# --- passages ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Passage:
    paragraphs: list[str]
    source: str
    title: str = ""

    @property
    def words(self) -> int:
        return sum(len(p.split()) for p in self.paragraphs)


def passages(articles: Iterator[Article], min_words: int, max_words: int, rng: random.Random) -> Iterator[Passage]:
    """Consecutive paragraphs of an article, from min_words to about max_words; leftovers
    under min_words are dropped, and no paragraph is repeated within a passage."""
    for art in articles:
        buf: list[str] = []
        target = rng.randint(min_words, max_words)
        for para in art.paragraphs:
            if para in buf:
                continue
            buf.append(para)
            if sum(len(p.split()) for p in buf) >= target:
                yield Passage(buf, art.source, art.title)
                buf, target = [], rng.randint(min_words, max_words)


def distinct(items: list[Passage], most_shared: float = 0.3) -> list[Passage]:
    """Passages of which at most `most_shared` of the word 8-grams occur in an earlier one:
    manuals repeat paragraphs, and two cases must not be duplicates of each other."""
    seen: set[tuple[str, ...]] = set()
    out = []
    for p in items:
        words = " ".join(p.paragraphs).split()
        grams = {tuple(words[i : i + 8]) for i in range(len(words) - 7)}
        if len(grams & seen) <= most_shared * len(grams):
            out.append(p)
        seen |= grams
    return out


class PassagePool:
    """Distinct passages in a seeded random order, each handed out once."""

    def __init__(self, items: list[Passage], rng: random.Random, name: str):
        self.items, self.name = distinct(items), name
        rng.shuffle(self.items)

    def take(self, n: int = 1, source: str | None = None) -> list[Passage]:
        """n passages (of `source` only, if given), removed from the pool."""
        fits = [i for i, p in enumerate(self.items) if source is None or p.source == source][:n]
        if len(fits) < n:
            raise ValueError(
                f"the {self.name} text runs out: {n} more passages asked, {len(fits)} left; ask for fewer cases"
            )
        taken = set(fits)
        out = [self.items[i] for i in fits]
        self.items = [p for i, p in enumerate(self.items) if i not in taken]
        return out

    def put_back(self, passages: list[Passage]) -> None:
        self.items += passages

    def __len__(self) -> int:
        return len(self.items)


def english_pool(corpora: Path, rng: random.Random, min_words: int = 200, max_words: int = 320) -> PassagePool:
    """WikiText and Shakespeare passages, mixed."""
    items = list(passages(wikitext_articles(corpora), min_words, max_words, rng))
    items += passages(shakespeare_scenes(corpora), min_words, max_words, rng)
    return PassagePool(items, rng, "English (WikiText-2, tiny-shakespeare)")


def manual_pool(lang: str, rng: random.Random, min_words: int = 150, max_words: int = 260) -> PassagePool:
    return PassagePool(list(passages(manual_articles(lang), min_words, max_words, rng)), rng, f"{lang} manuals")


def proper_nouns(corpora: Path, limit: int = 2000) -> list[str]:
    """Capitalised WikiText words never seen in lower case: names of people and places."""
    text = " ".join(" ".join(a.paragraphs) for a in wikitext_articles(corpora))
    tokens = re.findall(r"\b[A-Za-z][a-z]{2,9}\b", text)
    lower = {t for t in tokens if t.islower()}
    counts = Counter(t for t in tokens if t[0].isupper() and t.lower() not in lower)
    return [w for w, c in counts.most_common(limit) if c >= 3]
