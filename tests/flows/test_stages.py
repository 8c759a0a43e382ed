"""Stage keys: a re-run skips exactly the unchanged stages, and a change under a trained
model is refused with what changed, never silently skipped or redone."""

from __future__ import annotations

import pytest

from flows import stages
from infra.app.config import load_config
from infra.core.storage import RunDir, write_json


def _cfg(*overrides: str):
    return load_config("debug", list(overrides))


def _finished_run(tmp_path, cfg) -> RunDir:
    """A run directory whose four stages finished with `cfg` (markers and keys recorded)."""
    run = RunDir(tmp_path / "run")
    for stage, key in stages.expected_keys(cfg).items():
        write_json(stages.done_marker(run, stage), {"stage": stage})
        stages.mark(run, key, "finished")
    (run.checkpoints / "step12").mkdir(parents=True)
    return run


def test_a_change_moves_the_key_of_its_stage_and_of_every_later_one():
    base = stages.expected_keys(_cfg())
    assert base == stages.expected_keys(_cfg())  # deterministic
    evaluation = stages.expected_keys(_cfg("evaluation.limit=4"))
    assert [s for s in stages.STAGES if evaluation[s].key != base[s].key] == ["evaluate"]
    curation = stages.expected_keys(_cfg("curation.minhash.min_similarity=0.7"))
    assert all(curation[s].key != base[s].key for s in stages.STAGES)
    lr = stages.expected_keys(_cfg("training.lr=0.001"))
    assert [s for s in stages.STAGES if lr[s].key != base[s].key] == ["train", "evaluate"]


def test_settings_that_do_not_change_the_model_leave_the_train_key_alone():
    base = stages.expected_keys(_cfg())["train"].key
    for override in (
        "training.checkpoint_every=3",
        "training.keep_last=5",
        "training.eval_every=4",
        "training.retries=0",
        "training.max_failures=3",
        "training.tensorboard=true",
        "training.eval_tasks=[{task: arc_easy, limit: 5}]",
        "training.eval_tasks_every=10",
    ):
        assert stages.expected_keys(_cfg(override))["train"].key == base, override
    assert stages.expected_keys(_cfg("training.seed=1"))["train"].key != base


def test_the_code_version_follows_the_source(tmp_path, monkeypatch):
    for part in ("tasks/evaluation", "models"):
        (tmp_path / part).mkdir(parents=True)
        (tmp_path / part / "a.py").write_text("x = 1\n")
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "evaluate.py").write_text("")
    monkeypatch.setattr(stages, "_ROOT", tmp_path)
    before = stages.code_version("evaluate")
    (tmp_path / "models" / "a.py").write_text("x = 2\n")
    assert stages.code_version("evaluate") != before


def test_an_unchanged_rerun_skips_every_stage(tmp_path):
    cfg = _cfg()
    run = _finished_run(tmp_path, cfg)
    assert stages.plan(run, cfg) == dict.fromkeys(stages.STAGES, "skip")


def test_a_missing_output_is_redone_even_with_the_same_key(tmp_path):
    cfg = _cfg()
    run = _finished_run(tmp_path, cfg)
    run.eval_results.unlink()
    assert stages.plan(run, cfg)["evaluate"] == "its output is missing"


def test_only_evaluation_is_redone_after_an_evaluation_change(tmp_path):
    run = _finished_run(tmp_path, _cfg())
    actions = stages.plan(run, _cfg("evaluation.limit=4"))
    assert [s for s, a in actions.items() if a == "skip"] == ["curate", "tokenize", "train"]
    assert actions["evaluate"].startswith("changed: limit: 8 -> 4")


def test_a_training_change_on_a_finished_run_is_refused_naming_it(tmp_path):
    run = _finished_run(tmp_path, _cfg())
    with pytest.raises(
        stages.StageChangeRefused,
        match=r"(?s)training finished.*training.lr: 0.005 -> 0.001"
        r".*another --run-id",
    ):
        stages.plan(run, _cfg("training.lr=0.001"))
    # A stage command is held to the same rule.
    with pytest.raises(stages.StageChangeRefused, match=r"training\.lr"):
        stages.plan(run, _cfg("training.lr=0.001"), ("train",))


def test_a_data_change_under_a_trained_model_is_refused(tmp_path):
    run = _finished_run(tmp_path, _cfg())
    with pytest.raises(stages.StageChangeRefused, match=r"(?s)another curate configuration.*minhash.min_similarity"):
        stages.plan(run, _cfg("curation.minhash.min_similarity=0.7"))
    with pytest.raises(stages.StageChangeRefused, match=r"another tokenize configuration.*"):
        stages.plan(run, _cfg("tokenization.vocab_size=512"), ("tokenize",))


def test_a_data_change_before_training_started_redoes_the_stages_after_it(tmp_path):
    cfg = _cfg()
    run = _finished_run(tmp_path, cfg)
    run.train_summary.unlink()
    (run.checkpoints / "step12").rmdir()
    actions = stages.plan(run, _cfg("tokenization.vocab_size=512"))
    assert actions["curate"] == "skip"
    assert all(actions[s].startswith("changed") for s in ("tokenize", "train", "evaluate"))
    assert "its input, the tokenize stage, changed" in actions["train"]


def test_an_unfinished_training_leaves_its_own_changes_to_the_resume_check(tmp_path):
    cfg = _cfg()
    run = _finished_run(tmp_path, cfg)
    run.train_summary.unlink()
    stages.mark(run, stages.expected_keys(cfg)["train"], "running")
    assert stages.plan(run, _cfg("training.lr=0.001"))["train"].startswith("changed: training.lr")


def test_a_resumable_change_on_a_finished_training_continues_it(tmp_path):
    cfg = _cfg("training.schedule=constant")
    run = _finished_run(tmp_path, cfg)
    actions = stages.plan(run, _cfg("training.schedule=constant", "training.max_steps=20"))
    assert actions["train"] == "changed: training.max_steps: 12 -> 20"


def test_a_code_fix_after_a_crash_resumes_but_a_finished_training_is_not_redone_for_it(tmp_path):
    cfg = _cfg()
    run = _finished_run(tmp_path, cfg)
    key = stages.expected_keys(cfg)["train"]
    fixed = stages.StageKey("train", key.config, "0123456789abcdef", key.upstream, key.inputs)
    records = stages.recorded(run)
    records["train"] = fixed.record("finished")
    write_json(stages.stages_file(run), records)  # as if trained by other code
    with pytest.raises(stages.StageChangeRefused, match="the train code changed"):
        stages.plan(run, cfg)
    records["train"]["status"] = "running"
    run.train_summary.unlink()
    write_json(stages.stages_file(run), records)
    assert stages.plan(run, cfg)["train"].startswith("changed: the train code changed")


def _made_by_older_code(tmp_path, cfg, older=("curate", "tokenize", "train"), drop=None) -> RunDir:
    """A run whose stages were recorded by another version of the code of the stages in
    `older` (as an earlier release would have), its training started but not finished. `drop`
    removes a config key from the curate record, as a release before that key would have."""
    run = _finished_run(tmp_path, cfg)
    records, upstream = {}, None
    for stage, key in stages.expected_keys(cfg).items():
        config = {k: v for k, v in key.config.items() if k != drop}
        code = "0ld" + key.code[3:] if stage in older else key.code
        then = stages.StageKey(stage, config, code, upstream, key.inputs)
        records[stage] = then.record("running" if stage in ("train", "evaluate") else "finished")
        upstream = then.key
    del records["evaluate"]
    write_json(stages.stages_file(run), records)
    run.train_summary.unlink()
    run.eval_results.unlink()
    return run


def test_a_training_started_under_earlier_code_resumes_keeping_the_data_it_started_on(tmp_path):
    cfg = _cfg()
    run = _made_by_older_code(tmp_path, cfg, drop="filters")
    actions = stages.plan(run, cfg)
    assert actions["curate"].startswith("skip (kept: made by an earlier version of its code")
    assert actions["tokenize"].startswith("skip (kept:")
    assert actions["train"].startswith("changed: the train code changed")  # resumes: not refused
    assert actions["evaluate"] == "not run yet"
    assert stages.recorded(run)["curate"]["code"].startswith("0ld")  # planning writes nothing


def test_kept_stages_rechain_a_training_whose_own_code_is_unchanged(tmp_path):
    cfg = _cfg()
    run = _made_by_older_code(tmp_path, cfg, older=("curate",))
    actions = stages.plan(run, cfg)
    assert actions["curate"].startswith("skip (kept:") and actions["tokenize"] == "skip"
    assert actions["train"] == "unfinished"


def test_earlier_code_does_not_excuse_a_config_change_or_a_stage_asked_for_by_name(tmp_path):
    cfg = _cfg()
    run = _made_by_older_code(tmp_path, cfg)
    with pytest.raises(stages.StageChangeRefused, match=r"(?s)another curate configuration.*minhash.min_similarity"):
        stages.plan(run, _cfg("curation.minhash.min_similarity=0.7"))
    with pytest.raises(stages.StageChangeRefused, match="the curate code changed"):
        stages.plan(run, cfg, ("curate",))  # `crucible curate` would redo the data under the model


def test_before_training_started_earlier_code_redoes_its_stages(tmp_path):
    cfg = _cfg()
    run = _made_by_older_code(tmp_path, cfg)
    for step in run.checkpoints.glob("step*"):
        step.rmdir()
    now = stages.code_version("curate")
    assert stages.plan(run, cfg)["curate"] == f"changed: the curate code changed (version 0ld{now[3:]} -> {now})"
