import pytest

from models.flops import parameter_count, training_flops_per_token
from models.gpt import GPT
from models.presets import PRESETS, get_preset
from models.sizing import GPUS, plan_budget, plan_model, plan_parameters

A100 = next(g for g in GPUS if g.name == "A100")


@pytest.mark.parametrize("name", ["debug", "tiny"])
def test_parameter_count_matches_the_built_model(name):
    p = PRESETS[name]
    assert parameter_count(p.model, p.vocab_size, p.seq_len) == GPT(p.model, p.vocab_size, p.seq_len).num_parameters()


def test_published_parameter_counts():
    # Llama 2 7B and 70B and GPT-2 small, as their released checkpoints count them.
    for name, expected in (("llama2-7b", 6_738_415_616), ("llama2-70b", 68_976_648_192), ("gpt2-124m", 124_439_808)):
        p = get_preset(name)
        assert parameter_count(p.model, p.vocab_size, p.seq_len) == expected


@pytest.mark.parametrize("name, public_hours", [("llama2-7b", 184_320), ("llama2-70b", 1_720_320)])
def test_llama2_gpu_hours_at_a_realistic_utilisation(name, public_hours):
    """Llama 2's paper: 2T tokens, 184,320 A100 GPU-hours for 7B and 1,720,320 for 70B."""
    p = get_preset(name)
    hours = plan_model(p.model, p.vocab_size, p.seq_len, tokens=2e12).gpu_hours(A100, mfu=0.45)
    assert hours == pytest.approx(public_hours, rel=0.05)


def test_compute_optimal_defaults():
    p = get_preset("tiny")
    plan = plan_model(p.model, p.vocab_size, p.seq_len)
    assert plan.tokens == 20 * plan.parameters
    assert plan.training_flops == plan.tokens * training_flops_per_token(p.model, p.vocab_size, p.seq_len)
    approx = plan_parameters(1e9)
    assert approx.tokens == 2e10 and approx.training_flops == pytest.approx(6 * 1e9 * 2e10)
    budget = plan_budget(approx.training_flops)
    assert budget.parameters == pytest.approx(1e9, rel=1e-6) and budget.tokens == pytest.approx(2e10)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid presets: debug, tiny, gpt2-124m"):
        get_preset("gpt5")
