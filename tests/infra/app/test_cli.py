"""The CLI rejects bad configuration and input before starting anything, without a traceback."""

import subprocess
import sys
from pathlib import Path

CRUCIBLE = str(Path(sys.executable).parent / "crucible")


def _run(*args, cwd=None):
    return subprocess.run([CRUCIBLE, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_unknown_config_key(tmp_path):
    r = _run("run", "-c", "debug", "--set", "training.warmup=3", "--set", f"runs_dir={tmp_path}")
    assert r.returncode == 2
    assert "unknown key 'training.warmup'" in r.stderr and "warmup_steps" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert not any(tmp_path.iterdir())  # nothing started, nothing written


def test_empty_input_folder(tmp_path):
    empty = tmp_path / "in"
    empty.mkdir()
    r = _run("curate", "-c", "debug", "--set", f"curation.input_path={empty}", "--set", f"runs_dir={tmp_path}/runs")
    assert r.returncode == 2
    assert f"no input files in {empty}" in r.stderr and "curation.input_path" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_stage_on_a_missing_run(tmp_path):
    r = _run("train", "-c", "debug", "--run-id", "nope", "--set", f"runs_dir={tmp_path}")
    assert r.returncode == 2 and "does not exist" in r.stderr and "crucible run" in r.stderr


def test_help_lists_every_subcommand():
    r = _run("--help")
    assert r.returncode == 0
    for cmd in ("run", "curate", "tokenize", "train", "evaluate", "resume", "serve", "server", "report"):
        assert cmd in r.stdout


def test_plan_for_a_preset_and_a_budget():
    r = _run("plan", "--preset", "llama2-7b", "--tokens", "2e12")
    assert r.returncode == 0, r.stderr
    assert "parameters:          6,738,415,616" in r.stdout and "A100: 182,356 GPU-hours" in r.stdout
    r = _run("plan", "--budget", "1.2e20")  # 6 N (20 N) = 1.2e20 -> N = 1e9
    assert r.returncode == 0 and "parameters:          1,000,000,000" in r.stdout
    r = _run("plan", "--preset", "tiny", "--mfu", "2")
    assert r.returncode == 2 and "--mfu must be in (0, 1]" in r.stderr


def test_bad_training_combination_is_refused_before_anything_starts(tmp_path):
    r = _run(
        "run",
        "-c",
        "debug",
        "--set",
        "training.zero_stage=0",
        "--set",
        "training.offload_optimizer=true",
        "--set",
        "training.num_workers=3",
        "--set",
        "training.global_batch_size=8",
        "--set",
        f"runs_dir={tmp_path}",
    )
    assert r.returncode == 2, r.stderr
    assert "training cannot start" in r.stderr
    assert "offload_optimizer needs ZeRO; set training.zero_stage to 1, 2 or 3" in r.stderr
    assert "global batch of 8 sequences is not divisible by 3 rank(s) x micro-batch 4" in r.stderr
    assert "bf16 without ZeRO" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert not any(tmp_path.iterdir())  # no server, no Ray, no run directory


def test_a_server_beyond_loopback_without_auth_is_refused():
    import os

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_SERVER_API_AUTH_STRING"}
    result = subprocess.run(
        [CRUCIBLE, "server", "--host", "0.0.0.0", "--port", "4299"], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 2
    assert "PREFECT_SERVER_API_AUTH_STRING" in result.stderr and "or bind 127.0.0.1" in result.stderr


def test_resume_of_an_unknown_run_names_where_it_looked(tmp_path):
    result = _run("resume", "nope", "--runs-dir", str(tmp_path))
    assert result.returncode == 2 and f"{tmp_path}/nope" in result.stderr and "config.yaml" in result.stderr


def test_export_and_noise_refuse_a_folder_they_did_not_write(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    (precious / "part-00000.jsonl").write_text('{"text": "mine"}\n')
    before = sorted((p.name, p.read_bytes()) for p in precious.iterdir())
    (tmp_path / "in.jsonl").write_text('{"text": "a document"}\n')
    for args in (
        ("export", str(tmp_path / "no-such-run"), "--out", str(precious)),
        ("noise", "--input", str(tmp_path / "in.jsonl"), "--out", str(precious)),
    ):
        r = _run(*args)
        assert r.returncode == 2, r.stderr
        assert "refusing to write the" in r.stderr and str(precious) in r.stderr and "--force" in r.stderr
        assert "Traceback" not in r.stderr + r.stdout
        assert sorted((p.name, p.read_bytes()) for p in precious.iterdir()) == before
    r = _run("export", str(tmp_path / "no-such-run"), "--out", str(tmp_path.parent), "--force", cwd=tmp_path)
    assert r.returncode == 2 and "it holds" in r.stderr  # the current directory, even with --force


def test_a_run_id_that_is_a_path_is_refused_before_anything_starts(tmp_path):
    for bad in ("../../escape", "a/b"):
        r = _run("run", "-c", "debug", "--run-id", bad, "--set", f"runs_dir={tmp_path / 'runs'}")
        assert r.returncode == 2 and "is not a run name" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "escape").exists()
