"""The curate flow on classes of real-crawl problems (issue 29), scored per class.

Cases (benchmarks/curation_cases.py, built by script from real text, seeded): duplicates
hidden by encoding damage, planted secrets and personal data, look-alikes that must
survive, junk pages, prose in English/French/German/Spanish, boilerplate blocks repeated
across documents, and untouched controls. They are written as JSONL input and the real
`curate` flow runs on them (Ray and a Prefect server of its own, started here), with the
heuristic rules on, the quality classifier and decontamination off, and language
identification on for JSONL input keeping en, fr, de, es. Config keys that only newer code
has are passed when the config model has them: `repair_text: true`, `substring_dedup:
{enabled: true}`; the report lists which were.

Scores, read from curated/ (kept shards) and curated/removed/:
- duplicates: pairs where exactly one copy is kept and the other removed as a duplicate;
- secrets: planted values none of whose needles (curation_values.Plant) is left in the kept
  text, over the values in kept documents; also values left in removed/ text;
- look-alikes: planted look-alikes still verbatim in the kept text, over kept documents;
- junk: pages removed (any reason, and by a filter rather than dedup);
- languages: documents kept, per language;
- repeated spans: later occurrences of a block removed from their (kept) document (at most
  20% of its word 8-grams left), first occurrences kept (at least 90% left), the documents
  kept, and the rest of each kept document intact (90% of its 8-grams);
- controls kept; and every document accounted for (in = kept + removed in the flow's
  stats, every input id found exactly once in kept or removed).
Usage: .venv/bin/python benchmarks/curation_classes.py [--cases 200] [--seed 0] [--work DIR]
       [--keep-work] [--out report.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from curation_cases import LANGUAGES, build_cases, write_cases  # benchmarks/ is on sys.path as a script

BLOCK_GONE, BLOCK_KEPT, HOST_INTACT = 0.2, 0.9, 0.9


def is_dedup(reason: str) -> bool:
    """exact_duplicate, near_exact_duplicate, minhash_duplicate, and newer code's dedup steps."""
    return "duplicate" in reason or "dedup" in reason


def curation_config(input_dir: Path) -> tuple[Any, list[str]]:
    """The flow's config, and the keys of newer code it passes because this code has them."""
    from tasks.curation.config import CurationConfig

    cfg: dict[str, Any] = {
        "input_path": str(input_dir),
        "quality_classifier": {"enabled": False},
        "decontamination": {"enabled": False},
        "web": {"language": {"enabled": True, "all_inputs": True, "keep": list(LANGUAGES)}},
    }
    newer = {"repair_text": True, "substring_dedup": {"enabled": True}}
    passed = [k for k in newer if k in CurationConfig.model_fields]
    cfg.update({k: newer[k] for k in passed})
    return CurationConfig.model_validate(cfg), passed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_flow(work: Path, cfg: Any) -> dict[str, Any]:
    from flows.config import RuntimeConfig
    from flows.curate import curate_flow
    from infra.app.runtime import embedded_runtime

    runtime = RuntimeConfig(prefect_port=_free_port(), ray_num_cpus=min(2, os.cpu_count() or 1))
    with embedded_runtime(runtime, work / "logs"):
        return curate_flow(cfg, str(work / "run"))


def read_outputs(curated: Path) -> tuple[dict[str, str], dict[str, dict[str, Any]], Counter[str]]:
    """Kept texts by id, removed rows by id, and how often each id was written."""
    seen: Counter[str] = Counter()
    kept: dict[str, str] = {}
    for path in sorted(curated.glob("part-*.parquet")):
        for row in pq.read_table(path, columns=["id", "text"]).to_pylist():
            kept[row["id"]] = row["text"]
            seen[row["id"]] += 1
    removed: dict[str, dict[str, Any]] = {}
    for path in sorted((curated / "removed").glob("*.parquet")):
        for row in pq.read_table(path, columns=["id", "text", "reason", "detail"]).to_pylist():
            if row["id"] is not None:
                removed[row["id"]] = row
                seen[row["id"]] += 1
    return kept, removed, seen


def _rate(hits: int, total: int) -> dict[str, Any]:
    return {"rate": round(hits / total, 4) if total else None, "hits": hits, "of": total}


def _reason(removed: dict[str, dict[str, Any]], doc: str) -> str:
    """Why a document not kept was removed; `missing` if removed/ does not have it either
    (the accounting check reports those)."""
    return removed[doc]["reason"] if doc in removed else "missing"


def _reasons(ids: list[str], removed: dict[str, dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(_reason(removed, i) for i in ids).most_common())


def score_duplicates(labels: list[dict], kept: dict, removed: dict) -> dict[str, Any]:
    pairs: dict[int, dict[str, dict]] = defaultdict(dict)
    for lab in labels:
        pairs[lab["pair"]][lab["copy"]] = lab
    outcome: dict[str, Counter[str]] = defaultdict(Counter)
    kept_copy: Counter[str] = Counter()
    for pair in pairs.values():
        ids = [pair["clean"]["id"], pair["damaged"]["id"]]
        in_kept = [i in kept for i in ids]
        if sum(in_kept) == 1:
            other = ids[in_kept.index(False)]
            state = "handled" if is_dedup(_reason(removed, other)) else "other_removed_by_filter"
            kept_copy["clean" if in_kept[0] else "damaged"] += 1
        else:
            state = "both_kept" if all(in_kept) else "none_kept"
        outcome[pair["clean"]["damage"]][state] += 1
    total = sum(outcome.values(), Counter())
    n = len(pairs)
    jaccards = sorted(lab["jaccard"] for lab in labels if lab["copy"] == "damaged")
    return {
        "pairs": n,
        "handled": _rate(total["handled"], n),
        "outcomes": dict(total),
        "copy_kept_when_one_is": dict(kept_copy),
        "per_damage": {
            d: {"handled": _rate(c["handled"], c.total()), "outcomes": dict(c)} for d, c in sorted(outcome.items())
        },
        "median_jaccard_of_copies": jaccards[n // 2] if n else None,
    }


def score_planted(cls: str, labels: list[dict], kept: dict, removed: dict) -> dict[str, Any]:
    """Secrets: no needle left in the kept text. Look-alikes: the value still there."""
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    leaked_in_removed = 0
    for lab in labels:
        text = kept.get(lab["id"])
        for p in lab["plants"]:
            if text is None:
                left = (removed[lab["id"]]["text"] or "") if lab["id"] in removed else ""
                leaked_in_removed += cls == "secrets" and any(n in left for n in p["needles"])
                continue
            ok = all(n not in text for n in p["needles"]) if cls == "secrets" else p["value"] in text
            keys = [p["kind"], f"{p['kind']}/{p['format']}"]
            if p.get("context"):
                keys.append(f"{p['kind']}@{p['context']}")
            for key in ["all", *keys]:
                groups[key]["ok"] += ok
                groups[key]["n"] += 1
    docs_removed = [lab["id"] for lab in labels if lab["id"] not in kept]
    return {
        "documents": len(labels),
        "documents_kept": len(labels) - len(docs_removed),
        "removed_reasons": _reasons(docs_removed, removed),
        ("caught" if cls == "secrets" else "kept"): _rate(groups["all"]["ok"], groups["all"]["n"]),
        "groups": {k: _rate(c["ok"], c["n"]) for k, c in sorted(groups.items()) if k != "all"},
        **({"leaked_in_removed_text": leaked_in_removed} if cls == "secrets" else {}),
    }


def score_removed(labels: list[dict], kept: dict, removed: dict, key: str) -> dict[str, Any]:
    """Documents kept and removed per `key` (junk kind, language, source)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for lab in labels:
        groups[lab[key]].append(lab["id"])
    out = {}
    for name, ids in sorted(groups.items()):
        gone = [i for i in ids if i not in kept]
        by_filter = [i for i in gone if not is_dedup(_reason(removed, i))]
        out[name] = {
            "kept": _rate(len(ids) - len(gone), len(ids)),
            "removed": _rate(len(gone), len(ids)),
            "removed_by_filter": _rate(len(by_filter), len(ids)),
            "removed_reasons": _reasons(gone, removed),
        }
    return out


def _grams(text: str, n: int = 8) -> set[tuple[str, ...]]:
    words = text.split()
    return {tuple(words[i : i + n]) for i in range(max(len(words) - n + 1, 1))}


def _retained(part: str, text: str) -> float:
    grams = _grams(part)
    return len(grams & _grams(text)) / len(grams)


def score_repeated_spans(labels: list[dict], kept: dict, removed: dict, inputs: dict[str, str]) -> dict[str, Any]:
    c: Counter[str] = Counter()
    for lab in labels:
        role = "first" if lab["first"] else "later"
        c[f"{role}_docs"] += 1
        text = kept.get(lab["id"])
        if text is None:
            continue
        c[f"{role}_kept"] += 1
        block = _retained(lab["block_text"], text)
        host = inputs[lab["id"]].replace(lab["block_text"], "")
        c["host_intact"] += _retained(host, text) >= HOST_INTACT
        c["block_removed" if role == "later" else "block_kept"] += (
            block <= BLOCK_GONE if role == "later" else block >= BLOCK_KEPT
        )
    gone = [lab["id"] for lab in labels if lab["id"] not in kept]
    return {
        "blocks": len({lab["block"] for lab in labels}),
        "later_block_removed": _rate(c["block_removed"], c["later_kept"]),
        "first_block_kept": _rate(c["block_kept"], c["first_docs"]),
        "documents_kept": _rate(c["first_kept"] + c["later_kept"], len(labels)),
        "host_text_intact": _rate(c["host_intact"], c["first_kept"] + c["later_kept"]),
        "removed_reasons": _reasons(gone, removed),
    }


def accounting(summary: dict, inputs: dict[str, str], kept: dict, removed: dict, seen: Counter) -> dict[str, Any]:
    t = summary["totals"]
    missing = [i for i in inputs if i not in seen]
    return {
        "docs_in": t["docs_in"],
        "kept": t["docs_kept"],
        "removed": t["docs_removed"],
        "stats_balance": t["docs_in"] == t["docs_kept"] + t["docs_removed"] == len(inputs),
        "ids_missing": len(missing),
        "ids_written_twice": sum(1 for i in inputs if seen[i] > 1),
        "ids_unknown": sum(1 for i in seen if i not in inputs),
        "kept_files_match_stats": len(kept) == t["docs_kept"],
        "all_accounted": not missing and all(seen[i] == 1 for i in inputs) and len(seen) == len(inputs),
        "examples_missing": missing[:5],
    }


def score(labels: list[dict], inputs: dict[str, str], summary: dict, curated: Path) -> dict[str, Any]:
    kept, removed, seen = read_outputs(curated)
    by_class: dict[str, list[dict]] = defaultdict(list)
    for lab in labels:
        by_class[lab["class"]].append(lab)
    return {
        "duplicates": score_duplicates(by_class["duplicates"], kept, removed),
        "secrets": score_planted("secrets", by_class["secrets"], kept, removed),
        "lookalikes": score_planted("lookalikes", by_class["lookalikes"], kept, removed),
        "junk": score_removed(by_class["junk"], kept, removed, "kind"),
        "languages": score_removed(by_class["languages"], kept, removed, "language"),
        "repeated_spans": score_repeated_spans(by_class["repeated_spans"], kept, removed, inputs),
        "control": score_removed(by_class["control"], kept, removed, "source"),
        "accounting": accounting(summary, inputs, kept, removed, seen),
    }


def _fmt(r: dict[str, Any]) -> str:
    return f"{r['rate']:.3f} ({r['hits']}/{r['of']})" if r["rate"] is not None else f"-     (0/{r['of']})"


def table(report: dict[str, Any]) -> str:
    s = report["scores"]
    rows = [("class / group", "measure", "value")]
    d = s["duplicates"]
    rows.append(("duplicates", "pairs: exactly one kept, other removed as duplicate", _fmt(d["handled"])))
    rows += [(f"  {k}", "handled", _fmt(v["handled"])) for k, v in d["per_damage"].items()]
    rows.append(("", "pair outcomes", json.dumps(d["outcomes"])))
    for cls, measure in (("secrets", "caught"), ("lookalikes", "kept")):
        p = s[cls]
        rows.append((cls, f"planted values {measure} (in kept documents)", _fmt(p[measure])))
        rows += [(f"  {k}", measure, _fmt(v)) for k, v in p["groups"].items() if "/" not in k and "@" not in k]
        weak = [f"{k} {v['hits']}/{v['of']}" for k, v in p["groups"].items() if "/" in k and v["rate"] != 1.0]
        rows.append(("", f"formats under 1.0 ({len(weak)})", "; ".join(weak) or "none"))
        rows.append(("", "documents kept", f"{p['documents_kept']}/{p['documents']} {p['removed_reasons'] or ''}"))
        if cls == "secrets":
            rows.append(("", "values left in removed/ text", str(p["leaked_in_removed_text"])))
    junk = s["junk"]
    removed_all = sum(v["removed"]["hits"] for v in junk.values())
    total = sum(v["removed"]["of"] for v in junk.values())
    by_filter = sum(v["removed_by_filter"]["hits"] for v in junk.values())
    rows.append(
        ("junk", "pages removed (any reason)", _fmt({"rate": removed_all / total, "hits": removed_all, "of": total}))
    )
    rows.append(
        ("", "pages removed by a filter, not dedup", _fmt({"rate": by_filter / total, "hits": by_filter, "of": total}))
    )
    rows += [(f"  {k}", "removed", f"{_fmt(v['removed'])} {v['removed_reasons']}") for k, v in junk.items()]
    for lang, v in s["languages"].items():
        rows.append((f"languages {lang}", "kept", f"{_fmt(v['kept'])} {v['removed_reasons'] or ''}"))
    r = s["repeated_spans"]
    rows.append(("repeated_spans", f"later occurrences removed ({r['blocks']} blocks)", _fmt(r["later_block_removed"])))
    rows.append(("", "first occurrences kept", _fmt(r["first_block_kept"])))
    rows.append(("", "documents kept", f"{_fmt(r['documents_kept'])} {r['removed_reasons'] or ''}"))
    rows.append(("", "rest of the document intact", _fmt(r["host_text_intact"])))
    for src, v in s["control"].items():
        rows.append((f"control {src}", "kept", f"{_fmt(v['kept'])} {v['removed_reasons'] or ''}"))
    a = s["accounting"]
    rows.append(("accounted", "in = kept + removed; every id once", f"{a['all_accounted'] and a['stats_balance']}"))
    rows.append(("", "in / kept / removed", f"{a['docs_in']} / {a['kept']} / {a['removed']}"))
    width = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{row[0]:<{width[0]}}  {row[1]:<{width[1]}}  {row[2]}" for row in rows)


def code_under_test() -> dict[str, Any]:
    import tasks

    root = Path(tasks.__file__).resolve().parents[1]
    git = ["git", "-C", str(root)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    return {"tasks_module": tasks.__file__, "commit": head, "modified_files": dirty.stdout.split("\n")[:-1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=200, help="cases per class (see curation_cases.py)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--corpora", type=Path, default=Path("/work/shared/corpora"), help="WikiText-2, tiny-shakespeare")
    ap.add_argument("--work", type=Path, help="folder for the input, the run and logs (default: a temporary one)")
    ap.add_argument("--keep-work", action="store_true", help="leave the work folder in place")
    ap.add_argument("--out", type=Path, help="write the JSON report here")
    args = ap.parse_args()
    work = (args.work or Path(tempfile.mkdtemp(prefix="curation-classes-"))).resolve()
    ours = [work / name for name in ("input", "run", "logs", "prefect-home", "labels.jsonl")]
    for path in ours:  # a previous run's: the flow would resume from it
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    # A Prefect home of the run's own (a fresh SQLite database), set before Prefect is imported.
    os.environ["PREFECT_HOME"] = str(work / "prefect-home")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        code = code_under_test()
        print(f"code under test: {code['tasks_module']} at {code['commit'][:12]}", file=sys.stderr)
        start = time.perf_counter()
        cases = build_cases(args.cases, args.seed, args.corpora)
        write_cases(cases, work / "input", work / "labels.jsonl")
        built = time.perf_counter() - start
        cfg, passed = curation_config(work / "input")
        summary = run_flow(work, cfg)
        inputs = {d["id"]: d["text"] for d in cases.docs}
        report = {
            "cases_per_class": args.cases,
            "seed": args.seed,
            "documents": len(cases.docs),
            "classes": dict(Counter(lab["class"] for lab in cases.labels)),
            "code": code,
            "newer_config_keys_passed": passed,
            "config": json.loads(cfg.model_dump_json()),
            "seconds": {"build": round(built, 1), "total": round(time.perf_counter() - start, 1)},
            "scores": score(cases.labels, inputs, summary, work / "run" / "curated"),
        }
        print(table(report))
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
            print(f"wrote {args.out}", file=sys.stderr)
    finally:
        if args.keep_work:
            print(f"work kept in {work}", file=sys.stderr)
        elif args.work:
            for path in ours:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
