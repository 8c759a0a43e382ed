"""run_task end to end on the fixture benchmarks with a tiny random Crucible model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.config import ModelConfig
from tasks.evaluation.harness import TaskRun, contexts, encode_question, load_docs, run_task
from tasks.evaluation.models import load_eval_model
from tasks.training.checkpoint import FINAL, save_model


@pytest.fixture(scope="module")
def model(make_gpt, wrap, tok):
    # A 96-token window: the TruthfulQA prompt (~450 tokens) is cut on the left, as the harness does.
    return wrap(make_gpt(tok.get_vocab_size(), 96), max_length=96)


@pytest.mark.parametrize(
    "run",
    [
        TaskRun("arc_easy", num_fewshot=2),
        TaskRun("arc_challenge", "letters"),
        TaskRun("hellaswag", num_fewshot=1, limit=5),
        TaskRun("truthfulqa_mc1"),
        TaskRun("truthfulqa_mc2", "letters"),
    ],
    ids=lambda r: f"{r.key}",
)
def test_run_task_scores_every_item(model, eval_root, run):
    result = run_task(model, run, eval_root)
    spec, docs, pool = load_docs(run, eval_root, allow_hub=False)
    assert result["n"] == len(docs) == len(result["items"])
    assert [i["context"] for i in result["items"]] == contexts(
        spec, docs, pool, run.num_fewshot, run.formulation == "letters"
    )
    metrics = [m for m in spec.metrics if not (run.formulation == "letters" and m == "acc_norm")]
    assert [k for k in result if k in ("acc", "acc_norm", "mc1", "mc2")] == metrics
    for m in metrics:
        assert 0.0 <= result[m] <= 1.0
    for item, doc in zip(result["items"], docs):
        assert item["choices"] == doc.choices and item["gold"] == doc.gold
        assert len(item["loglikelihoods"]) == len(doc.choices) and max(item["loglikelihoods"]) < 0
    if metrics[0] in ("acc", "mc1"):  # the aggregate is the items' argmax hit rate
        hits = [float(np.argmax(i["loglikelihoods"]) == i["gold"]) for i in result["items"]]
        assert result[metrics[0]] == pytest.approx(np.mean(hits))
    assert result["random_chance"] == pytest.approx(
        np.mean([1 / len(d.choices) if metrics[0] != "mc2" else sum(d.labels) / len(d.choices) for d in docs])
    )


def test_loglikelihoods_are_the_models_scores_of_the_encoded_questions(model, eval_root):
    run = TaskRun("arc_easy", num_fewshot=1)
    result = run_task(model, run, eval_root)
    item = result["items"][2]
    scores = model.score([encode_question(model, item["context"], item["choices"])])[0]
    assert item["loglikelihoods"] == pytest.approx([s.loglikelihood for s in scores], abs=1e-6)


@pytest.mark.parametrize("formulation", ["cloze", "letters"])
def test_mmlu_reports_each_subject_and_their_means(model, eval_root, formulation):
    result = run_task(model, TaskRun("mmlu", formulation, num_fewshot=2), eval_root)
    subjects = result["subjects"]
    assert sorted(subjects) == ["elementary_mathematics", "world_religions"]
    assert [subjects[s]["n"] for s in sorted(subjects)] == [2, 1] and result["n"] == 3
    assert result["acc_subject_mean"] == pytest.approx(
        (subjects["elementary_mathematics"]["acc"] + subjects["world_religions"]["acc"]) / 2
    )
    assert result["acc"] == pytest.approx(
        (2 * subjects["elementary_mathematics"]["acc"] + subjects["world_religions"]["acc"]) / 3
    )
    assert math.isnan(result["acc_stderr"])  # a 1-item subject has no standard error
    assert ("acc_norm" in result) == (formulation == "cloze")
    assert result["random_chance"] == 0.25


def test_a_saved_run_loads_and_scores_as_the_model_in_memory(tmp_path, tok, model, eval_root):
    run_dir = tmp_path / "run-1"
    save_model(
        model.module,
        ModelConfig(n_layer=2, n_head=2, d_model=16),
        tok.get_vocab_size(),
        96,
        step=7,
        dest_dir=run_dir / "checkpoints" / FINAL,
    )
    (run_dir / "tokenizer").mkdir()
    tok.save(str(run_dir / "tokenizer" / "tokenizer.json"))
    loaded = load_eval_model(run_dir)
    assert (loaded.kind, loaded.name, loaded.max_length, loaded.eot_id) == ("crucible", "run-1", 96, 0)
    run = TaskRun("arc_challenge", num_fewshot=0)
    want = run_task(model, run, eval_root)["items"]
    got = run_task(loaded, run, eval_root)["items"]
    for g, w in zip(got, want, strict=True):
        assert g["loglikelihoods"] == pytest.approx(w["loglikelihoods"], abs=1e-5)
    # The checkpoint folder itself finds the run's tokenizer two levels up.
    assert load_eval_model(run_dir / "checkpoints" / FINAL).encode("the water") == model.encode("the water")
    with pytest.raises(FileNotFoundError, match="neither a Crucible run"):
        load_eval_model(tmp_path)


def test_a_hugging_face_folder_loads_with_its_window_and_end_of_text(tmp_path, tok, eval_root):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=tok.get_vocab_size(), n_positions=64, n_embd=32, n_layer=1, n_head=2, eos_token_id=0, bos_token_id=0
    )
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "hf")
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>").save_pretrained(
        tmp_path / "hf"
    )
    model = load_eval_model(tmp_path / "hf")
    assert (model.kind, model.max_length, model.eot_id, model.pad_id) == ("hf", 64, 0, 0)
    assert model.encode("the water boils") == tok.encode("the water boils").ids
    result = run_task(model, TaskRun("arc_challenge", "letters"), eval_root)
    assert result["n"] == 2 and all(max(i["loglikelihoods"]) < 0 for i in result["items"])
