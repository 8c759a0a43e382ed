import math
import typing

import pytest
import torch
from pydantic import ValidationError

from models.config import ModelConfig, Position
from models.gpt import GPT
from models.layers import RMSNorm, alibi_causal_bias, alibi_slopes, apply_rope, rope_tables, sinusoidal_table
from models.reference import lm_loss

BASE = {"n_layer": 2, "n_head": 4, "d_model": 32}
VARIANTS = {
    "gpt2": {},
    "post_ln": {"norm_placement": "post"},
    "rmsnorm": {"norm": "rmsnorm"},
    "relu": {"activation": "relu"},
    "silu": {"activation": "silu"},
    "swiglu": {"activation": "swiglu"},
    "geglu": {"activation": "geglu"},
    "sinusoidal": {"position": "sinusoidal"},
    "rope": {"position": "rope"},
    "alibi": {"position": "alibi"},
    "gqa": {"n_kv_head": 2},
    "mqa": {"n_kv_head": 1},
    "untied": {"tie_embeddings": False},
    "dropout": {"dropout": 0.1},
    "llama": {
        "norm": "rmsnorm",
        "activation": "swiglu",
        "position": "rope",
        "n_kv_head": 2,
        "bias": False,
        "tie_embeddings": False,
        "mlp_ratio": 2.6875,
    },
}


def _model(name: str, vocab: int = 64, seq: int = 16) -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(**BASE, **VARIANTS[name]), vocab_size=vocab, seq_len=seq)


@pytest.mark.parametrize("name", VARIANTS)
def test_output_shape(name):
    assert _model(name)(torch.randint(0, 64, (3, 16))).shape == (3, 16, 64)
    assert _model(name)(torch.randint(0, 64, (2, 5))).shape == (2, 5, 64)  # shorter than context


@pytest.mark.parametrize("name", VARIANTS)
def test_causal_future_tokens_do_not_change_past_logits(name):
    model = _model(name).eval()
    x = torch.randint(0, 64, (1, 16))
    y = x.clone()
    y[0, 10:] = (y[0, 10:] + 1) % 64
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.allclose(a[0, :10], b[0, :10], atol=1e-5)
    assert not torch.allclose(a[0, 10:], b[0, 10:])


@pytest.mark.parametrize("name", VARIANTS)
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(name):
    model = _model(name)
    data = torch.randint(0, 64, (4, 17), generator=torch.Generator().manual_seed(1))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = lm_loss(model(data[:, :-1]), data[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5


def test_tying_and_parameter_counts():
    tied, untied = _model("gpt2"), _model("untied")
    assert tied.head.weight is tied.tok_emb.weight
    assert untied.num_parameters() - tied.num_parameters() == 64 * 32
    # GQA shrinks only the key/value projection: from 2 x 4 heads x 8 dims (64 outputs)
    # to 2 x 2 x 8 (32 outputs), weights and biases, in each of the 2 layers.
    gqa = _model("gqa")
    assert tied.num_parameters() - gqa.num_parameters() == 2 * ((32 * 64 + 64) - (32 * 32 + 32))


def test_position_tables_carry_no_saved_state():
    for name in ("rope", "alibi", "sinusoidal"):
        keys = _model(name).state_dict().keys()
        assert not any(k.endswith(("cos", "sin", "alibi", "pos_table")) for k in keys)


def test_sequence_longer_than_context_is_refused():
    with pytest.raises(ValueError, match="exceeds the model's context"):
        _model("gpt2", seq=4)(torch.zeros(1, 5, dtype=torch.long))


def test_rmsnorm_matches_its_definition():
    x = torch.tensor([[3.0, 4.0]])
    out = RMSNorm(2, eps=0.0)(x)
    assert torch.allclose(out, x / math.sqrt((9 + 16) / 2))


def test_rope_scores_depend_only_on_relative_position():
    cos, sin = rope_tables(32, 8, 10_000.0)
    q, k = torch.randn(8), torch.randn(8)

    def score(m: int, n: int) -> float:
        rq = apply_rope(q.view(1, 1, 1, 8), cos[m : m + 1], sin[m : m + 1]).flatten()
        rk = apply_rope(k.view(1, 1, 1, 8), cos[n : n + 1], sin[n : n + 1]).flatten()
        return float(rq @ rk)

    assert score(5, 2) == pytest.approx(score(20, 17), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-4)


def test_alibi_slopes_and_bias():
    assert torch.allclose(alibi_slopes(8), torch.tensor([2.0 ** -(i + 1) for i in range(8)]))
    assert len(alibi_slopes(6)) == 6
    bias = alibi_causal_bias(2, 3)
    assert bias[0, 2, 0] == pytest.approx(-2 * 2**-4) and bias[0, 1, 1] == 0
    assert bias[0, 0, 1] == float("-inf")


def test_sinusoidal_table():
    t = sinusoidal_table(4, 6)
    assert t[0].tolist() == [0, 1, 0, 1, 0, 1]
    assert t[1, 0] == pytest.approx(math.sin(1.0)) and t[1, 2] == pytest.approx(math.sin(1 / 10_000 ** (2 / 6)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"d_model": 30, "n_head": 4}, "divisible by n_head"),
        ({"n_head": 4, "n_kv_head": 3}, "n_kv_head .3. must divide n_head .4."),
        ({"activation": "tanh"}, "'gelu', 'relu', 'silu', 'swiglu' or 'geglu'"),
        ({"position": "absolute"}, "'learned', 'sinusoidal', 'rope' or 'alibi'"),
        ({"norm": "batchnorm"}, "'layernorm' or 'rmsnorm'"),
    ],
)
def test_bad_configs_are_rejected_with_the_valid_options(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        ModelConfig(**kwargs)


# Document masking: rows pack two documents, split at a different point in each row.
SPLITS = (7, 10)
POSITIONS = typing.get_args(Position)


def _positional(position: str) -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(**BASE, position=position), vocab_size=64, seq_len=16).eval()


def _two_documents() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randint(0, 64, (len(SPLITS), 16), generator=torch.Generator().manual_seed(2))
    segments = torch.stack([(torch.arange(16) >= s).long() for s in SPLITS])
    return x, segments


@pytest.mark.parametrize("position", POSITIONS)
def test_segments_keep_attention_inside_each_document(position):
    model = _positional(position)
    x, segments = _two_documents()
    y = x.clone()
    for row, s in enumerate(SPLITS):  # change only the first document of each row
        y[row, :s] = (y[row, :s] + 1) % 64
    with torch.no_grad():
        masked, plain = model(x, segments=segments), model(x)
        masked_y, plain_y = model(y, segments=segments), model(y)
    for row, s in enumerate(SPLITS):
        # Causality already hides the second document from the first.
        assert torch.allclose(masked[row, :s], plain[row, :s], atol=1e-5)
        # The second document no longer sees the first one; without segments it does.
        assert torch.allclose(masked[row, s:], masked_y[row, s:], atol=1e-5)
        assert not torch.allclose(plain[row, s:], plain_y[row, s:], atol=1e-5)


@pytest.mark.parametrize("position", POSITIONS)
def test_a_single_segment_equals_no_segments(position):
    model = _positional(position)
    x, _ = _two_documents()
    with torch.no_grad():
        assert torch.allclose(model(x, segments=torch.zeros_like(x)), model(x), atol=1e-5)


def _loss_and_grads(model, *loss_fns):
    """(loss, every parameter's gradient) for each way of computing the same loss."""
    out = []
    for loss_fn in loss_fns:
        model.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        out.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    return out


@pytest.mark.parametrize("position", ["learned", "alibi"])  # the boolean and the float-bias paths
def test_masked_loss_path_equals_masked_logits_path(position):
    model = _positional(position).train()
    x, segments = _two_documents()
    targets = torch.roll(x, -1, dims=1)
    (l1, g1), (l2, g2) = _loss_and_grads(
        model, lambda: lm_loss(model(x, segments=segments), targets), lambda: model(x, targets, segments)
    )
    assert l1 == pytest.approx(l2, abs=1e-5)
    with torch.no_grad():  # the mask really reaches the loss
        assert model(x, targets).item() != pytest.approx(l2, abs=1e-5)
    for n in g1:
        assert torch.allclose(g1[n], g2[n], atol=1e-6), n


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_activation_checkpointing_gives_the_same_loss_and_gradients(name):
    model = _model(name).train()
    data = torch.randint(0, 64, (2, 17))
    x, y = data[:, :-1], data[:, 1:]
    ((l1, g1),) = _loss_and_grads(model, lambda: model(x, y))
    model.checkpoint_activations = True
    ((l2, g2),) = _loss_and_grads(model, lambda: model(x, y))
    assert l1 == l2
    assert all(torch.allclose(g1[n], g2[n], atol=1e-7) for n in g1)


def test_init_is_gpt2s_and_reproducible_one_parameter_at_a_time():
    model = _model("gpt2")
    again = _model("gpt2")
    for (name, p), (_, q) in zip(model.named_parameters(), again.named_parameters()):
        assert torch.equal(p, q), name
        if name.endswith("bias"):
            assert p.abs().max() == 0, name
        elif p.dim() == 1:
            assert torch.all(p == 1), name
    proj = dict(model.named_parameters())["blocks.0.attn.proj.weight"]
    qkv = dict(model.named_parameters())["blocks.0.attn.qkv.weight"]
    assert qkv.std().item() == pytest.approx(0.02, rel=0.1)
    assert proj.std().item() == pytest.approx(0.02 / math.sqrt(2 * model.cfg.n_layer), rel=0.15)
