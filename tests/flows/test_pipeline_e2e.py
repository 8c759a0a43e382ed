"""End to end: `crucible run` on the debug preset through a real Prefect server, real Ray and
real DeepSpeed (the session's run, tests/conftest.py), then re-runs, resumes and changed
settings, each on a copy of that run."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from infra.core.storage import RunDir, read_json
from tasks.tokenization.reader import TokenRows
from tests.flows.e2e_env import CRUCIBLE, ROOT, crucible

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_curation_accounts_for_every_document(pipeline_run):
    run = pipeline_run.run
    stats = read_json(run.curation_stats)
    t = stats["totals"]
    removed = t["removed_by_reason"]
    labels = [json.loads(line) for line in (run.curated / "noise_labels.jsonl").open()]
    planted = {lab["id"]: lab for lab in labels if lab["kind"] != "original"}
    # 306 fixture records + 1 broken line + the noise injector's planted documents.
    assert t["docs_in"] == 307 + len(planted) and len(planted) > 0
    assert t["docs_in"] == t["docs_kept"] + sum(v["docs"] for v in removed.values())
    assert t["bytes_in"] == t["bytes_kept"] + sum(v["bytes"] for v in removed.values())
    # The fixture's short sections go on a count: C4's sentences, or Gopher's words after C4's line removals.
    short = sum(removed.get(r, {"docs": 0})["docs"] for r in ("c4.too_few_sentences", "gopher_quality.word_count"))
    assert removed["malformed"]["docs"] == 1 and short >= 1
    assert stats["steps"]["filter"]["docs_kept"] == stats["steps"]["dedup_redact"]["docs_in"]
    kept = [r for p in sorted(run.curated.glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]
    gone = [r for p in sorted(run.removed.glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert len(kept) == t["docs_kept"] and len(gone) == t["docs_removed"]
    reason = {r["id"]: r["reason"] for r in gone}
    kept_ids = {r["id"] for r in kept}
    # Every planted copy is gone. An exact copy meets the same filters as its source, so when
    # the source is kept the copy must have gone as a duplicate (edited copies may fail a filter).
    for pid, lab in planted.items():
        if lab["kind"] in ("exact_dup", "near_dup"):
            assert pid not in kept_ids, lab
        if lab["kind"] == "exact_dup" and lab["dup_of"] in kept_ids:
            assert reason[pid] == "exact_duplicate", lab
    assert removed["exact_duplicate"]["docs"] >= 1 and removed["minhash_duplicate"]["docs"] >= 1
    # Kept and removed text alike: no planted PII value survives, and the fixture's own addresses.
    everything = "\n".join(str(r["text"]) for r in kept + gone)
    for lab in planted.values():
        for p in lab.get("pii", []):
            assert p["value"] not in everything, p["type"]
    assert "jane.doe@example.org" not in everything and "192.168.10.20" not in everything
    assert {"email", "ipv4", "ipv6", "phone", "credit_card", "us_ssn", "iban", "secret"} <= set(t["redactions"])
    assert stats["details"]["quality_model"]["metrics"]["precision"] > 0.8
    assert stats["details"]["decontamination"]["benchmarks"]["hellaswag/validation"] > 0
    assert not (run.curated / "_work").exists()


def test_token_shards_match_their_manifest(pipeline_run):
    run = pipeline_run.run
    m = read_json(run.manifest)
    for split, totals in m["splits"].items():
        entries = [e for e in m["shards"] if e["split"] == split]
        assert sum(e["rows"] for e in entries) == totals["rows"] > 0
        assert totals["tokens"] == totals["rows"] * m["row_len"] - totals["padding_tokens"]
        assert len(TokenRows.open(run.shards, split, verify="full")) == totals["rows"]
        assert sum(t["docs"] for t in m["sources"][split].values()) == totals["docs"]
    kept = sum(pq.ParquetFile(p).metadata.num_rows for p in run.curated.glob("part-*.parquet"))
    assert m["splits"]["train"]["docs"] + m["splits"]["val"]["docs"] == kept  # every curated document
    assert m["vocab_size"] <= 1024 and m["dtype"] == "uint16"
    assert 1.5 < m["tokenizer"]["val_bytes_per_token"] < 8
    plan = m["mixture"]["sources"]
    assert sum(p["epoch_rows"] for p in plan.values()) == m["splits"]["train"]["rows"]  # natural mixture
    assert "bytes per token on held-out text" in run.report.read_text()


def test_tokenize_rerun_skips_finished_shards(pipeline_run, e2e, tmp_path):
    run = pipeline_run.copy(tmp_path / "e2e", upto="tokenize")  # a run directory moved elsewhere
    files = {p: p.stat().st_mtime_ns for p in run.shards.rglob("*.arrow")}
    manifest = run.manifest.read_bytes()
    result = crucible("tokenize", "--run-id", "e2e", "--set", f"runs_dir={tmp_path}", *e2e.runtime_sets())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shards = len(list(run.curated.glob("part-*.parquet")))
    assert f"resuming: {shards + 1} finished task(s) will be skipped" in result.stdout + result.stderr
    assert {p: p.stat().st_mtime_ns for p in run.shards.rglob("*.arrow")} == files
    assert run.manifest.read_bytes() == manifest


def test_training_loss_is_finite_and_falls(pipeline_run):
    run = pipeline_run.run
    metrics = [json.loads(ln) for ln in run.metrics.read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, 13))
    assert all(math.isfinite(m["loss"]) and m["grad_norm"] > 0 and m["tokens_per_s"] > 0 for m in metrics)
    assert all(m["peak_mem_mb"] > 0 and m["tokens"] > 0 for m in metrics)
    first, last = metrics[0]["loss"], sum(m["loss"] for m in metrics[-3:]) / 3
    assert last < first - 0.3
    assert metrics[-1]["lr"] == pytest.approx(0.005 * 0.1, rel=1e-3)  # cosine floor: 10% of peak
    assert [m["step"] for m in metrics if "val_loss" in m] == [6, 12]
    summary = read_json(run.train_summary)
    assert 80_000 < summary["parameters"] < 150_000 and summary["world_size"] == 2
    assert summary["precision"] == "bf16" and summary["zero_stage"] == 1 and summary["device"] == "cpu"
    assert len(summary["hosts"]) == 2
    assert summary["training_flops"] == summary["training_flops_per_token"] * 12 * summary["tokens_per_step"]
    assert "training FLOPs per token" in run.report.read_text()
    data = summary["data"]
    assert data["samples"] == 12 * 2 * 4 and sum(data["rows_by_source"].values()) == data["samples"]
    assert (run.checkpoints / "latest").read_text().strip() == "step12"


def test_evaluation_results_are_in_range(pipeline_run):
    run = pipeline_run.run
    e = read_json(run.eval_results)
    for ppl in e["perplexity"].values():  # held-out shards and the configured text file
        assert 1 < ppl["perplexity"] < 1024 and 0 < ppl["bits_per_byte"] < 8
    tasks = e["tasks"]
    expected = {"arc_easy", "arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc1", "truthfulqa_mc2"}
    assert set(tasks) == expected | {f"{t}_letters" for t in expected} | {"truthfulqa_gen"}
    gen = tasks["truthfulqa_gen"]  # the fixture's three items, 32 tokens at most in a 64-token window
    assert gen["n"] == 3 and gen["settings"]["max_gen_toks"] == 256 and gen["truncated_prompts"] == 3
    assert gen["max_gen_toks_used"] == 32
    assert all(0 <= gen[f"{m}_max"] <= 100 for m in ("bleu", "rouge1", "rouge2", "rougeL"))
    assert tasks["hellaswag"]["n"] == 8 and tasks["arc_easy"]["num_fewshot"] == 2
    for t in tasks.values():
        for m in ("acc", "acc_norm", "mc1", "mc2"):
            if m in t:
                assert 0 <= t[m] <= 1 and 0 < t["random_chance"] < 1
    assert set(tasks["mmlu"]["subjects"]) == {"elementary_mathematics", "world_religions"}
    samples = [json.loads(ln) for ln in (run.eval_results.parent / "samples" / "hellaswag.jsonl").open()]
    assert len(samples) == 8 and all(len(s["loglikelihoods"]) == 4 for s in samples)
    report = run.report.read_text()
    for section in ("## Curation", "## Tokenization", "## Training", "## Evaluation", "random chance"):
        assert section in report
    assert run.loss_curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_prefect_shows_four_completed_stages(pipeline_run, prefect_api):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    flow_run_id = pipeline_run.flow_run_id
    with temporary_settings(updates={PREFECT_API_URL: prefect_api}), get_client(sync_client=True) as client:
        parent = client.read_flow_run(flow_run_id)
        assert parent.state.is_completed()
        # Subflows are linked to the parent through a task run of the parent.
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])),
            sort=FlowRunSort.START_TIME_ASC,
            limit=50,
        )
        names = {client.read_flow(r.flow_id).name: r.state.type.value for r in children}
        child_ids = {str(r.id) for r in children}
        # Over plain HTTP: this client version sends null filters, which the server rejects.
        body = {
            "artifacts": {"key": {"exists_": True}, "flow_run_id": {"any_": sorted(child_ids)}},
            "limit": 50,
            "offset": 0,
            "sort": "KEY_ASC",
        }
        response = httpx.post(f"{prefect_api}/artifacts/filter", json=body, timeout=30)
        response.raise_for_status()
        keys = {a["key"] for a in response.json()}
    assert names == dict.fromkeys(("curate", "tokenize", "train", "evaluate"), "COMPLETED")
    assert {
        "curation-stats",
        "tokenization-stats",
        "data-mixture",
        "training-metrics",
        "training-progress",
        "loss-curve",
        "evaluation-results",
    } <= keys


def test_training_resumes_exactly_from_the_newest_valid_checkpoint(pipeline_run, e2e, tmp_path):
    """Through Ray Train: the newest checkpoint is damaged, so `crucible train` falls back to
    the one before it and trains the same steps to the same losses."""
    source = pipeline_run.run
    run = pipeline_run.copy(tmp_path / "e2e", upto="train")
    before = [json.loads(ln) for ln in source.metrics.read_text().splitlines()]
    final = torch.load(source.checkpoints / "final" / "model.pt", weights_only=True)
    newest = run.checkpoints / "step12"
    victim = next(newest.glob("*optim_states.pt"))
    victim.write_bytes(victim.read_bytes()[:100])  # truncated
    run.train_summary.unlink()  # the pipeline's train stage is no longer finished
    result = crucible("train", "--run-id", "e2e", "--set", f"runs_dir={tmp_path}", *e2e.runtime_sets())
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    assert "checkpoint step12 is not usable" in out and victim.name in out
    assert "step6 at step 6" in out
    after = [json.loads(ln) for ln in run.metrics.read_text().splitlines()]
    assert [m["step"] for m in after] == list(range(1, 13))
    assert [m["loss"] for m in after] == [m["loss"] for m in before]  # bit for bit, bf16 on 2 ranks
    again = torch.load(run.checkpoints / "final" / "model.pt", weights_only=True)
    assert again.keys() == final.keys() and all(torch.equal(again[k], final[k]) for k in final)
    assert (run.checkpoints / "latest").read_text().strip() == "step12"
    assert read_json(run.checkpoints / "step12" / "manifest.json")["data"]["samples"] == 12 * 2 * 4


def test_a_resume_that_would_reshape_the_schedule_is_refused_before_training(pipeline_run, e2e, tmp_path):
    pipeline_run.copy(tmp_path / "e2e", upto="train")
    result = crucible(
        "train", "--run-id", "e2e", "--set", f"runs_dir={tmp_path}", *e2e.runtime_sets(),
        "--set", "training.max_steps=16",
    )  # fmt: skip
    assert result.returncode != 0
    assert "max_steps 12 -> 16 would reshape the cosine schedule" in result.stdout + result.stderr
    assert "start a new --run-id" in result.stdout + result.stderr


def test_an_unchanged_rerun_does_nothing_and_starts_nothing(pipeline_run, e2e, tmp_path):
    run = pipeline_run.copy(tmp_path / "e2e")
    stamps = {p: p.stat().st_mtime_ns for p in run.root.rglob("*") if p.is_file()}
    result = crucible("run", "--run-id", "e2e", "--set", f"runs_dir={tmp_path}", *e2e.runtime_sets())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "every stage is unchanged since it finished" in result.stdout
    assert "Prefect UI" not in result.stdout  # no server, no Ray, no flow run
    assert {p: p.stat().st_mtime_ns for p in run.root.rglob("*") if p.is_file()} == stamps


def test_an_evaluation_change_redoes_only_evaluation(pipeline_run, e2e, tmp_path):
    run = pipeline_run.copy(tmp_path / "e2e")
    made = {
        p: p.stat().st_mtime_ns
        for p in (run.curation_stats, run.manifest, run.train_summary, run.checkpoints / "final" / "model.pt")
    }
    result = crucible(
        "run", "--run-id", "e2e", "--set", f"runs_dir={tmp_path}", *e2e.runtime_sets(), "--set", "evaluation.limit=4"
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "curate: skip; tokenize: skip; train: skip; evaluate: changed: limit: 8 -> 4" in out
    assert read_json(run.eval_results)["tasks"]["hellaswag"]["n"] == 4
    assert {p: p.stat().st_mtime_ns for p in made} == made
    assert "limit: 4" in run.config.read_text()  # config.yaml describes what the run holds now


def test_a_training_change_on_the_finished_run_is_refused_and_config_yaml_kept(pipeline_run, e2e, tmp_path):
    run = pipeline_run.copy(tmp_path / "e2e")
    saved = run.config.read_bytes()
    for command in ("run", "train"):
        result = crucible(
            command, "--run-id", "e2e", "--set", f"runs_dir={tmp_path}", *e2e.runtime_sets(),
            "--set", "training.lr=0.001",
        )  # fmt: skip
        assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
        assert "training finished with another train configuration" in result.stderr
        assert "training.lr: 0.005 -> 0.001" in result.stderr and "another --run-id" in result.stderr
        assert run.config.read_bytes() == saved


def test_tensor_parallel_training_through_ray_matches_the_data_parallel_run(pipeline_run, e2e, tmp_path):
    """`crucible train` with training.parallel.tensor=2 on the e2e run's token shards: Ray
    Train's two workers hold one shard each of every block (bf16, document masks), and
    train the steps of the 2-replica run (the same global batch) to the same losses."""
    run = pipeline_run.run
    tp = RunDir(tmp_path / "e2e-tp")
    for part in ("curated", "tokenizer", "shards"):
        shutil.copytree(run.root / part, tp.root / part)
    result = crucible(
        "train", "-c", "debug", "--run-id", "e2e-tp", "--set", f"runs_dir={tmp_path}", *e2e.runtime_sets(),
        "--set", "training.parallel.tensor=2", "--set", "training.global_batch_size=8",
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    summary = read_json(tp.train_summary)
    assert summary["parallel"] == {"pipeline": 1, "tensor": 2, "data": 1}
    assert summary["export_check"]["relative"] < 0.05  # bf16 shards against the fp32 master weights
    dp = [json.loads(ln) for ln in run.metrics.read_text().splitlines()]
    got = [json.loads(ln) for ln in tp.metrics.read_text().splitlines()]
    assert [m["tokens"] for m in got] == [m["tokens"] for m in dp]
    assert np.allclose([m["loss"] for m in got], [m["loss"] for m in dp], rtol=2e-2, atol=0)
    assert "1 pipeline stage(s) x 2 tensor shard(s)" in (tp.root / "report.md").read_text()


def _tiny_judge(kind: str, tokenizer: Path, dest: Path) -> Path:
    """A random two-layer GPT-2 judge with the run's own tokenizer (nothing comes from a hub)."""
    import transformers
    from tokenizers import Tokenizer

    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_file(str(tokenizer)), eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=len(tok),
        n_positions=512,
        n_embd=32,
        n_layer=2,
        n_head=2,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.eos_token_id,
    )
    model = (transformers.GPT2LMHeadModel if kind == "causal_lm" else transformers.GPT2ForSequenceClassification)(cfg)
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


def test_generation_judges_and_human_ratings_end_to_end(pipeline_run, e2e, tmp_path):
    """`crucible evaluate` with truthfulqa_gen, a held-out file and two judges on Ray workers,
    then `crucible eval-sheet` and `crucible eval-ratings` fold people's ratings into the report."""
    run = pipeline_run.run
    copy = pipeline_run.copy(tmp_path / "runs" / "e2e-gen", upto="train")
    judge = _tiny_judge("causal_lm", run.tokenizer, tmp_path / "judge")
    classifier = _tiny_judge("classifier", run.tokenizer, tmp_path / "classifier")
    held_out = ROOT / "tests" / "fixtures" / "generation" / "held_out.jsonl"
    judges = (
        f"[{{name: tiny, kind: causal_lm, model: '{judge}'}}, "
        f"{{name: cls, kind: classifier, model: '{classifier}', aspect: informative, tasks: [held_out]}}]"
    )
    result = crucible(
        "evaluate", "--run-id", "e2e-gen", "--set", f"runs_dir={tmp_path / 'runs'}", *e2e.runtime_sets(),
        "--set", "evaluation.tasks=[arc_easy, truthfulqa_gen]", "--set", "evaluation.formulations=[cloze]",
        "--set", f"evaluation.generation_files=[{{name: held_out, file: '{held_out}', max_gen_toks: 12}}]",
        "--set", f"evaluation.judges={judges}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    tasks = read_json(copy.eval_results)["tasks"]
    assert set(tasks) == {"arc_easy", "truthfulqa_gen", "held_out"}
    tq, mine = tasks["truthfulqa_gen"], tasks["held_out"]
    assert mine["n"] == 3 and mine["settings"]["max_gen_toks"] == 12 and mine["bleu_acc_n"] == 1
    assert 0 <= tq["judge_tiny_truthful"] <= 1 and "judge_cls_informative" not in tq
    assert 0 <= mine["judge_cls_informative_probability"] <= 1 and mine["judges"]["cls"]["kind"] == "classifier"
    samples = [json.loads(ln) for ln in (copy.eval_results.parent / "samples" / "held_out.jsonl").open()]
    assert [s["id"] for s in samples] == ["held_out:rain", "held_out:sun", "held_out:boil"]
    assert all(0 <= s["judges"]["tiny"]["probability"] <= 1 for s in samples)

    # The judges ran as tasks of the evaluate flow (each on a Ray worker of the flow's task runner).
    flow_run_id = re.search(r"flow run: http://127.0.0.1:\d+/v2/runs/flow-run/([0-9a-f-]+)", result.stdout).group(1)
    names = _task_run_names(e2e.api, flow_run_id)
    assert {"judge-tiny", "judge-cls"} <= names and "held_out-generate" in names

    report = copy.report.read_text()
    assert "### Generations: truthfulqa_gen" in report and "### Generations: held_out" in report
    assert "Judge `tiny` (causal_lm" in report and "| truthfulqa_gen (3 items) | bleu_max |" in report

    out = subprocess.run(
        [CRUCIBLE, "eval-sheet", str(copy.root)], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-2000:]
    sheet = copy.eval_results.parent / "review" / "sheet.csv"
    assert (sheet.parent / "sheet.html").is_file()
    import csv

    with sheet.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    for i, r in enumerate(rows):
        r["truthful"], r["informative"] = ("yes" if i % 2 else "no"), "yes"
    filled = _write_csv(tmp_path / "filled.csv", rows)
    out = subprocess.run(
        [CRUCIBLE, "eval-ratings", str(copy.root), str(filled)], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    tasks = read_json(copy.eval_results)["tasks"]
    for task in ("truthfulqa_gen", "held_out"):
        said = [r["truthful"] == "yes" for r in rows if r["task"] == task]
        assert tasks[task]["human_truthful"] == pytest.approx(sum(said) / 3)
    assert "kappa_tiny" in tasks["truthfulqa_gen"] and "kappa_cls" in tasks["held_out"]
    assert "human_truthful" in copy.report.read_text()
    rows[0]["truthful"] = "perhaps"
    _write_csv(filled, rows)
    out = subprocess.run(
        [CRUCIBLE, "eval-ratings", str(copy.root), str(filled)], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert out.returncode != 0 and "row 1" in out.stderr + out.stdout and "'perhaps'" in out.stderr + out.stdout


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    import csv

    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _task_run_names(api: str, flow_run_id: str) -> set[str]:
    """Names of the task runs of a flow run and of its subflows (over plain HTTP: this client
    version sends null sorts and limits, which the server rejects)."""
    body = {"flow_runs": {"parent_flow_run_id": {"any_": [flow_run_id]}}, "sort": "START_TIME_ASC", "limit": 50}
    children = httpx.post(f"{api}/flow_runs/filter", json=body, timeout=30).raise_for_status().json()
    ids = [flow_run_id] + [c["id"] for c in children]
    body = {"flow_runs": {"id": {"any_": ids}}, "sort": "EXPECTED_START_TIME_ASC", "limit": 200}
    return {r["name"] for r in httpx.post(f"{api}/task_runs/filter", json=body, timeout=30).raise_for_status().json()}
