"""Build the real-text input the curation benchmarks run on, offline, of a chosen size.

Sources (Debian packages, unpacked with `apt-get download` + `dpkg -x` as the demo corpus
is): the demo corpus (GCIDE dictionary, Python docs, 51 MB), the Linux kernel
Documentation (linux-doc-6.1, 42 MB of reStructuredText) and Perl's POD manuals (perl-doc,
9 MB): about 100 MB of distinct text. Larger inputs add variants of that base in which
every word is mapped through a seeded random bijection of the vocabulary: the same
document lengths, line structure and word statistics, but no text shared with the base
(so the scaling runs are not dominated by duplicates).
Usage: .venv/bin/python benchmarks/curation_input.py --mb 100 --out /tmp/cur100
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from infra.core.storage import atomic_path
from tasks.corpus.demo import build_demo_corpus, cache_dir
from tasks.curation.noise import NoiseConfig, inject_noise

PACKAGES = {
    "linux-doc-6.1": ("usr/share/doc/linux-doc-6.1/Documentation", "*.rst.gz"),
    "perl-doc": ("usr/share/perl", "*.pod"),
}
_WORD = re.compile(r"[A-Za-z]+")


def _unpack(package: str) -> Path:
    dest = cache_dir() / "bench-packages" / package
    if (dest / "_SUCCESS").exists():
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", package], cwd=tmp, check=True, capture_output=True)
        deb = next(Path(tmp).glob("*.deb"))
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg", "-x", str(deb), str(dest)], check=True)
    (dest / "_SUCCESS").write_text("ok")
    return dest


def base_documents() -> Iterator[dict]:
    for f in sorted(build_demo_corpus().glob("*.jsonl")):
        for line in f.open(encoding="utf-8"):
            yield json.loads(line)
    for package, (sub, pattern) in PACKAGES.items():
        root = _unpack(package)
        for path in sorted((root / sub).rglob(pattern)):
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            text = raw.decode("utf-8", errors="replace")
            if text.strip():
                yield {"id": f"{package}:{path.relative_to(root)}", "text": text, "source": package}


def _variant(text: str, mapping: dict[str, str], rng: random.Random) -> str:
    def sub(m: re.Match[str]) -> str:
        w = m.group(0)
        low = w.lower()
        if low not in mapping:
            mapping[low] = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(len(low)))
        out = mapping[low]
        return out.capitalize() if w[0].isupper() else out

    return _WORD.sub(sub, text)


def build_input(mb: float, out: Path, file_mb: float = 16.0, seed: int = 0, noise: bool = False) -> dict:
    """Write about `mb` MB of documents as JSONL files of ~file_mb MB; returns counts. With
    `noise`, 5% exact and 5% near duplicates (and 5% PII documents) are planted first, so the
    dedup steps have real work; their labels go to out/../<name>-labels.jsonl."""
    out.mkdir(parents=True, exist_ok=True)
    budget, file_budget = int(mb * 2**20), int(file_mb * 2**20)
    written = index = 0
    rows: list[str] = []
    size = 0

    def flush() -> None:
        nonlocal rows, size, index
        with atomic_path(out / f"part-{index:05d}.jsonl") as tmp:
            tmp.write_text("".join(rows), encoding="utf-8")
        rows, size, index = [], 0, index + 1

    # Noise adds 15% more documents; shrink the base so the total stays about `mb`.
    docs = _documents(int(budget / 1.15) if noise else budget, seed)
    if noise:
        docs, labels = inject_noise(docs, NoiseConfig(seed=seed, spam_fraction=0.0))
        with atomic_path(out.parent / f"{out.name}-labels.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(lab) + "\n" for lab in labels), encoding="utf-8")
    for doc in docs:
        line = json.dumps(doc, ensure_ascii=False) + "\n"
        rows.append(line)
        size += len(line.encode("utf-8"))
        written += len(line.encode("utf-8"))
        if size >= file_budget:
            flush()
    if rows:
        flush()
    return {"mb": round(written / 2**20, 1), "docs": len(docs), "files": index, "noise": noise}


def _documents(budget: int, seed: int) -> list[dict]:
    """About `budget` bytes of documents: the base, then as many vocabulary variants as needed."""
    docs: list[dict] = []
    written = variant = 0
    while written < budget:
        rng, mapping = random.Random(seed * 1000 + variant), {}
        for base in base_documents():
            doc = base
            if variant:
                doc = {
                    "id": f"v{variant}:{base['id']}",
                    "text": _variant(base["text"], mapping, rng),
                    "source": base["source"],
                }
            docs.append(doc)
            written += len(json.dumps(doc, ensure_ascii=False).encode("utf-8")) + 1
            if written >= budget:
                break
        variant += 1
    return docs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=100)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--file-mb", type=float, default=16)
    ap.add_argument("--noise", action="store_true", help="plant labelled duplicates and PII first")
    args = ap.parse_args()
    print(build_input(args.mb, args.out, args.file_mb, noise=args.noise))


if __name__ == "__main__":
    main()
