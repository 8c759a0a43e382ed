import pytest
from pydantic import ValidationError

from flows.config import PipelineConfig
from infra.app.config import ConfigError, load_config


def test_presets_load_and_validate():
    debug = load_config("debug")
    assert debug.model.d_model == 48 and debug.training.num_workers == 2
    assert load_config("demo").curation.input_path == "demo"


def test_unknown_key_is_named_with_the_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown key 'training.learning_rate'.*valid keys here: .*\blr\b"):
        load_config("debug", ["training.learning_rate=0.1"])


def test_unknown_key_in_yaml_file(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("curation:\n  minhash:\n    bandz: 3\n")
    with pytest.raises(ConfigError, match=r"(?s)cfg.yaml.*unknown key 'curation.minhash.bandz'.*bands"):
        load_config(path)


def test_every_problem_is_reported_together():
    with pytest.raises(ConfigError) as err:
        load_config("debug", ["training.max_steps=0", "model.n_head=5", "bogus=1"])
    msg = str(err.value)
    assert "training.max_steps" in msg and "divisible by n_head" in msg and "unknown key 'bogus'" in msg


def test_overrides_are_typed_like_yaml():
    cfg = load_config("debug", ["training.lr=3e-4", "curation.exact_dedup.enabled=false", "run_id=my-run"])
    assert cfg.training.lr == pytest.approx(3e-4)
    assert cfg.curation.exact_dedup.enabled is False
    assert cfg.run_id == "my-run"


@pytest.mark.parametrize("bad", ["noequals", "=3"])
def test_malformed_override(bad):
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        load_config("debug", [bad])


def test_missing_file_and_unknown_preset(tmp_path):
    with pytest.raises(ConfigError, match=r"not found.*preset name"):
        load_config(tmp_path / "nope.yaml")


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(path)


def test_run_id_characters():
    with pytest.raises(ConfigError, match="run_id"):
        load_config("debug", ["run_id=../escape"])


def test_warmup_must_be_below_max_steps():
    with pytest.raises(ConfigError, match="warmup_steps"):
        load_config("debug", ["training.warmup_steps=12"])


def test_model_preset_expands_with_overrides_on_top():
    cfg = load_config("debug", ["model.preset=llama-1b", "model.n_layer=2"])
    assert cfg.model.norm == "rmsnorm" and cfg.model.n_kv_head == 8 and cfg.model.n_layer == 2
    with pytest.raises(ConfigError, match=r"'model\.preset': unknown model preset 'gpt9'; valid presets"):
        load_config("debug", ["model.preset=gpt9"])


@pytest.mark.parametrize("bad", ["../../../tmp/x", "a/b", ".hidden", "run\n", "x" * 101, ""])
def test_run_id_is_one_folder_name_in_the_model_itself(bad):
    # The model checks it, so deployments and library callers cannot leave runs_dir either.
    with pytest.raises(ValidationError, match="run_id"):
        PipelineConfig(run_id=bad)
    assert PipelineConfig(run_id="run-1.b_2").run_id == "run-1.b_2"


def test_run_id_is_text_however_it_looks():
    assert load_config("debug", run_id="20240101").run_id == "20240101"
    assert load_config("debug", run_id="null").run_id == "null"
    assert load_config("debug", ["run_id=20240101"]).run_id == "20240101"  # a text field keeps the text
    assert load_config("debug", ["runs_dir=2024"]).runs_dir == "2024"
    assert load_config("debug", ["training.lr=1e-3"]).training.lr == 1e-3  # numbers stay numbers
    assert load_config("debug", ["previous_run=null"]).previous_run is None


def test_a_yaml_alias_bomb_is_refused_briefly(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < 400
    with pytest.raises(ConfigError, match="expands to more than 100,000 values") as err:
        load_config(path)
    assert len(str(err.value)) < 500


def test_a_large_bad_value_is_shown_briefly(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("training:\n  lr: [" + ", ".join(["[1, 2, 3, 4, 5, 6, 7, 8]"] * 5000) + "]\n")
    with pytest.raises(ConfigError, match=r"'training.lr'") as err:
        load_config(path)
    assert len(str(err.value)) < 1000
