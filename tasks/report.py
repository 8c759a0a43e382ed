"""`report.md` and the loss-curve PNG, written from the files each stage left in the run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from infra.core.storage import RunDir, atomic_path, read_json, write_text


def plot_loss(metrics: list[dict[str, Any]], dest: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([m["step"] for m in metrics], [m["loss"] for m in metrics], label="train loss")
    val = [m for m in metrics if "val_loss" in m]
    if val:
        ax.plot([m["step"] for m in val], [m["val_loss"] for m in val], "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_eval(metrics: list[dict[str, Any]], keys: list[str], dest: Path) -> None:
    """training.eval_tasks' scores over the steps: one line per `eval/<task>/<metric>`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key in keys:
        points = [m for m in metrics if key in m]
        style = "s--" if key.endswith("_norm") else "o-"
        ax.plot([m["step"] for m in points], [m[key] for m in points], style, label=key.removeprefix("eval/"))
    ax.set_xlabel("step")
    ax.set_ylabel("score on the first items of each task")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _eval_lines(run: RunDir, metrics: list[dict[str, Any]]) -> list[str]:
    """training.eval_tasks: the curves, and each score at the first and last points and its best."""
    from tasks.training.metrics import EVAL_PREFIX, eval_keys

    keys = eval_keys(metrics)
    if not keys:
        return []
    plot_eval(metrics, keys, run.eval_curves)
    scored = [m for m in metrics if any(k in m for k in keys)]
    first, last = scored[0]["step"], scored[-1]["step"]
    rows = []
    for key in keys:
        values = [m[key] for m in scored if key in m]
        task, _, metric = key.removeprefix(EVAL_PREFIX).partition("/")
        rows.append([task, metric, values[0], values[-1], max(values)])
    return [
        "### Benchmarks during training",
        f"The first items of each of `training.eval_tasks`, scored on the weights of the moment at "
        f"{len(scored)} points (the evaluation stage's prompts and scoring, 0-shot). Small samples: "
        "a trend, not a result.",
        "",
        f"![benchmark curves]({run.eval_curves.name})",
        "",
        _table(rows, ["task", "metric", f"step {first}", f"step {last}", "best"]),
        "",
    ]


def _table(rows: list[list[Any]], header: list[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:,.4g}" if isinstance(v, float) else (f"{v:,}" if isinstance(v, int) else str(v))

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows])


STEP_ORDER = ("filter", "dedup_redact")


def curation_section(c: dict[str, Any]) -> list[str]:
    """Each curation step's counts (in = kept + removed by reason), then the step details."""
    t = c["totals"]
    rows = [["all", "in", t["docs_in"], t["bytes_in"]]]
    for name in sorted(c["steps"], key=lambda n: list(STEP_ORDER).index(n) if n in STEP_ORDER else 99):
        s = c["steps"][name]
        rows += [[name, f"removed: {r}", v["docs"], v["bytes"]] for r, v in s["removed_by_reason"].items()]
        rows += [[name, f"changed: {k}", n, ""] for k, n in s.get("changes", {}).items()]
        rows += [[name, f"redacted: {k}", n, ""] for k, n in s["redactions"].items()]
        rows.append([name, "kept", s["docs_kept"], s["bytes_kept"]])
    out = [
        "## Curation",
        f"Input: `{c['input']}` ({c['input_files']} files).",
        "",
        _table(rows, ["step", "documents", "count", "bytes"]),
        "",
    ]
    d = c.get("details", {})
    if "quality_model" in d:
        m = d["quality_model"]["metrics"]
        out.append(
            f"- fastText quality classifier ({d['quality_model']['hq_source']} vs "
            f"{d['quality_model']['lq_source']}): held-out precision {m['precision']:.3f}, "
            f"recall {m['recall']:.3f}"
            + (
                f"; it keeps {m['lq_kept_share']:.1%} of held-out {d['quality_model']['lq_source']}."
                if "lq_kept_share" in m
                else "."
            )
        )
    if "languages" in d:
        langs = ", ".join(f"{lang} {n:,}" for lang, n in d["languages"].items())
        out.append(f"- Languages identified in the pages (before the language filter): {langs}.")
    if "minhash" in d:
        m = d["minhash"]
        out.append(
            f"- MinHash: {m['candidate_pairs']:,} candidate pairs, {m['verified_pairs']:,} verified, "
            f"{m['component_rounds']} component rounds, {m['dropped']:,} documents in clusters dropped."
        )
    if "decontamination" in d:
        bench = d["decontamination"]["benchmarks"]
        out.append(
            "- Decontamination against "
            + (", ".join(f"{k} ({v:,} n-grams)" for k, v in bench.items()) or "no benchmark files (none found)")
            + "."
        )
    if "noise" in d:
        out.append(f"- Planted noise (labels in `curated/noise_labels.jsonl`): {d['noise']['counts']}.")
    if "nodes" in c:
        out.append(f"- Tasks per node: {_per_node(c['nodes'])}.")
    return [*out, ""]


def _per_node(nodes: dict[str, Any]) -> str:
    return ", ".join(f"{node} {n}" for node, n in nodes["tasks_by_node"].items())


def tokenization_section(m: dict[str, Any], stats: dict[str, Any] | None = None) -> list[str]:
    """Tokenizer figures, token counts per split and the planned vs realised training mixture."""
    t = m["tokenizer"]
    rows = [[s, v["docs"], v["rows"], v["tokens"], v["padding_tokens"]] for s, v in m["splits"].items()]
    mix = [
        [
            s,
            p["available_tokens"],
            f"{p['natural_share']:.1%}",
            f"{p['planned_share']:.1%}",
            p["epoch_rows"],
            f"{p['repeats']:.2f}",
            p["realised_tokens"],
            f"{p['realised_share']:.1%}",
        ]
        for s, p in m["mixture"]["sources"].items()
    ]
    return [
        "## Tokenization",
        f"Byte-level BPE, {t['vocab_size']:,} tokens ({'reused' if t['reused'] else 'trained in this run'}); "
        f"{t['val_bytes_per_token']:.2f} bytes per token on held-out text (the validation documents, "
        f"never in the BPE's sample). Sequences of {m['seq_len']} tokens stored as {m['dtype']}.",
        "",
        _table(rows, ["split", "documents", "sequences", "tokens", "padding tokens"]),
        "",
        "Training mixture (shares of tokens per epoch):",
        "",
        _table(
            mix,
            [
                "source",
                "tokens",
                "natural",
                "planned",
                "sequences per epoch",
                "repeats",
                "tokens per epoch",
                "realised",
            ],
        ),
        "",
    ] + ([f"Tasks per node: {_per_node(stats['nodes'])}.", ""] if stats and "nodes" in stats else [])


def training_section(run: RunDir) -> list[str]:
    """The loss curve, speed (tokens/s, MFU), memory and every spike event of the run."""
    from tasks.training.metrics import read_metrics

    metrics, events = read_metrics(run.metrics)
    if not metrics:
        return []
    plot_loss(metrics, run.loss_curve)
    s = read_json(run.train_summary) if run.train_summary.exists() else {}
    val = [m for m in metrics if "val_loss" in m]
    flops = (
        f" ({s['training_flops_per_token']:,} training FLOPs per token, {s['training_flops']:.3g} in all)"
        if "training_flops" in s
        else ""
    )
    zero = f", ZeRO stage {s['zero_stage']}" if "zero_stage" in s else ""
    layout = s.get("parallel") or {}
    if layout.get("pipeline", 1) * layout.get("tensor", 1) > 1:
        zero += (
            f", {layout['pipeline']} pipeline stage(s) x {layout['tensor']} tensor shard(s) x "
            f"{layout['data']} data-parallel replica(s)"
        )
    out = [
        "## Training",
        f"{s.get('parameters', 0):,} parameters{flops}, {s.get('steps')} steps on "
        f"{s.get('world_size')} DeepSpeed ranks ({s.get('device', 'cpu')}) in {s.get('precision')}{zero}; "
        f"final train loss {metrics[-1]['loss']:.4f}"
        + (f", validation loss {val[-1]['val_loss']:.4f}" if val else "")
        + ".",
        "",
        f"![loss curve]({run.loss_curve.name})",
        "",
    ]
    return out + _eval_lines(run, metrics) + _speed_lines(metrics) + _spike_lines(events) + _summary_lines(s)


def _speed_lines(metrics: list[dict[str, Any]]) -> list[str]:
    # Speed over the second half of the steps: the first ones include start-up and warm caches.
    half = metrics[len(metrics) // 2 :]
    tps = sum(m["tokens_per_s"] for m in half) / len(half)
    mfus = [m["mfu"] for m in half if m.get("mfu") is not None]
    return [
        f"Speed: {tps:,.0f} tokens/s (real tokens, all ranks)"
        + (
            f", MFU {sum(mfus) / len(mfus):.1%}"
            if mfus
            else ", MFU not reported (no peak FLOP/s known for this device; set training.peak_flops)"
        )
        + f"; peak memory per rank {max(m.get('peak_mem_mb') or 0 for m in metrics):,.0f} MB.",
        "",
    ]


def _spike_lines(events: list[dict[str, Any]]) -> list[str]:
    if not events:
        return []
    rows = [
        [e["step"], e["reason"], e["rolled_back_to"], f"{e['skipped_samples'][0]}-{e['skipped_samples'][1]}"]
        for e in events
    ]
    return [
        "Loss spikes rolled back (their batches skipped):",
        "",
        _table(rows, ["step", "why", "rolled back to step", "stream samples skipped"]),
        "",
    ]


def _summary_lines(s: dict[str, Any]) -> list[str]:
    """What train_summary.json adds: the 3D export check, hosts, lost ranks, the data served."""
    out: list[str] = []
    check = s.get("export_check")
    if check:
        out += [
            f"Final model: joined from the stages and shards; its logits on {check['rows']} validation rows "
            f"differ from the sharded model's by {check['max_abs_diff']:.2g} at most "
            f"({check['relative']:.2g} of the largest logit).",
            "",
        ]
    if s.get("hosts"):
        out += ["Ranks' hosts: " + ", ".join(f"rank {r} on {h}" for r, h in enumerate(s["hosts"])) + ".", ""]
    if s.get("events"):
        out += [
            "Lost ranks and hosts, and what training did:",
            "",
            _table(
                [[time.strftime("%H:%M:%S", time.gmtime(e["time"])), e["event"], e["message"]] for e in s["events"]],
                ["time (UTC)", "event", "what happened"],
            ),
            "",
        ]
    if "data" in s:
        d = s["data"]
        out += [
            f"Data served: {d['samples']:,} sequences ({d['epochs']:.2f} epochs of the mixture); "
            "tokens by source: "
            + ", ".join(f"{k} {v:,} ({d['share_by_source'][k]:.1%})" for k, v in d["tokens_by_source"].items())
            + ".",
            "",
        ]
    return out


SHOWN_GENERATIONS = 3


def _cell(text: str, limit: int = 300) -> str:
    """Text safe inside a Markdown table cell."""
    text = text if len(text) <= limit else text[:limit] + "…"
    return text.replace("|", "\\|").replace("\n", "<br>") or "(empty)"


def generation_section(eval_dir: Path, e: dict[str, Any]) -> list[str]:
    """Per generation task: its settings, stops, judges and its first few generations."""
    parts: list[str] = []
    for key, t in e["tasks"].items():
        if t.get("formulation") != "generate":
            continue
        s = t["settings"]
        stops = ", ".join(f"{n} {w}" for w, n in t["stops"].items())
        parts += [
            f"### Generations: {key}",
            f"{t['n']} items; {'sampled' if s['do_sample'] else 'greedy'}, until {s['until']!r} or "
            f"end-of-text, at most {t.get('max_gen_toks_used', s['max_gen_toks'])} new tokens (asked: "
            f"{s['max_gen_toks']}); stopped by: {stops}; "
            f"{t['truncated_prompts']} prompt(s) cut on the left to fit the window. "
            "BLEU and ROUGE as lm-evaluation-harness computes them (sacrebleu, rouge-score): `_max` the best "
            "true reference, `_acc` best true beats best false, `_diff` their difference.",
        ]
        if t.get("references_from"):
            parts.append(f"**References:** {t['references_from']}.")
        for name, j in t.get("judges", {}).items():
            parts.append(
                f"Judge `{name}` ({j['kind']}, {j['model']}, {j['aspect']}): template `{_cell(j['template'], 400)}`."
            )
        samples = eval_dir / "samples" / f"{key}.jsonl"
        items = []
        if samples.is_file():
            with samples.open(encoding="utf-8") as f:
                items = [json.loads(line) for _, line in zip(range(SHOWN_GENERATIONS), f)]
        if items:
            rows = [
                [
                    _cell(i["question"]),
                    _cell(i["generation"]),
                    _cell(i["references"][0]),
                    f"{i['bleu_max']:.1f} / {i['rougeL_max']:.1f}",
                ]
                for i in items
            ]
            parts += ["", _table(rows, ["question", "generation", "a true reference", "BLEU / ROUGE-L"])]
        parts.append("")
    return parts


def write_report(run_dir: Path) -> Path:
    run = RunDir(Path(run_dir))
    parts = [f"# Run `{run.root.name}`", ""]
    if run.curation_stats.exists():
        parts += curation_section(read_json(run.curation_stats))
    if run.manifest.exists():
        parts += tokenization_section(
            read_json(run.manifest), read_json(run.tokenization_stats) if run.tokenization_stats.exists() else None
        )
    if run.metrics.exists():
        parts += training_section(run)
    from tasks.scaling.records import SWEEP_FILE

    if (run.root / SWEEP_FILE).exists():
        from tasks.scaling.report import sweep_section

        parts += sweep_section(run.root)
    if run.eval_results.exists():
        from tasks.evaluation.summary import results_rows

        e = read_json(run.eval_results)
        rows = [
            [
                r["task"],
                r["metric"],
                r["value"],
                "" if r["stderr"] is None else r["stderr"],
                "" if r["chance"] is None else r["chance"],
            ]
            for r in results_rows(e)
        ]
        parts += [
            "## Evaluation",
            "Multiple-choice and generation tasks with lm-evaluation-harness's prompts and "
            "metrics (`_letters`: the options listed as A/B/C/D and the letter scored; `judge_`: the share "
            "of generations a judge model rates positive; `human_`: people's ratings, `kappa_`: a judge's "
            "agreement with them); standard errors are sample standard deviations over items / sqrt(n).",
            "",
            _table(rows, ["task", "metric", "value", "stderr", "random chance"]),
            "",
        ]
        parts += generation_section(run.eval_results.parent, e)
        for why in e.get("substituted_inputs", {}).values():
            parts += [
                f"**Not the real benchmarks:** {why} (the few items bundled for the demo). Set "
                f"evaluation.benchmarks_dir and text_file to the real files for figures that mean anything.",
                "",
            ]
    write_text(run.report, "\n".join(parts))
    return run.report
