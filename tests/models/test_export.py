import pytest
import torch
from tokenizers import Tokenizer

from models.config import ModelConfig
from models.export import ExportError, export_hf, target_class
from models.gpt import GPT
from models.reference import greedy_generate
from tasks.tokenization.bpe import train_on_texts
from tasks.tokenization.config import TokenizationConfig

transformers = pytest.importorskip("transformers")

SHAPES = {
    "LlamaForCausalLM": {
        "norm": "rmsnorm",
        "activation": "swiglu",
        "position": "rope",
        "bias": False,
        "n_kv_head": 2,
        "tie_embeddings": False,
        "mlp_ratio": 2.5,
    },
    "GPT2LMHeadModel": {},
}


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory):
    tok = train_on_texts(
        ["the cat sat on the mat and the dog sat on the log"] * 20, TokenizationConfig(vocab_size=300, min_frequency=1)
    )
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.mark.parametrize("cls", SHAPES)
def test_exported_model_matches_ours(cls, tokenizer_json, tmp_path):
    torch.manual_seed(0)
    vocab = Tokenizer.from_file(str(tokenizer_json)).get_vocab_size()
    ours = GPT(ModelConfig(n_layer=2, n_head=4, d_model=32, **SHAPES[cls]), vocab, 32).eval()
    # Random weights are too smooth to tell mapping errors apart: perturb every parameter.
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    assert export_hf(ours, tokenizer_json, tmp_path / "hf") == cls
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert type(theirs).__name__ == cls
    ids = torch.randint(0, vocab, (2, 20))
    with torch.no_grad():
        diff = (ours(ids) - theirs(ids).logits).abs().max().item()
    assert diff < 1e-4
    prompt = ids[0, :5].tolist()
    hf_out = theirs.generate(torch.tensor([prompt]), max_new_tokens=10, do_sample=False, pad_token_id=0)[0].tolist()
    assert greedy_generate(ours, prompt, 10) == hf_out
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert tok.eos_token == "<|endoftext|>" and tok("the cat").input_ids


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"position": "alibi"}, "position='alibi'"),
        ({"norm_placement": "post"}, "norm_placement='post'"),
        ({"activation": "geglu"}, "activation='geglu'"),
    ],
)
def test_unrepresentable_models_are_refused(kwargs, message):
    with pytest.raises(ExportError, match=message):
        target_class(ModelConfig(n_layer=1, n_head=2, d_model=16, **kwargs))


def test_an_export_replaces_an_earlier_export_and_nothing_else(tokenizer_json, tmp_path):
    model = GPT(ModelConfig(n_layer=1, n_head=2, d_model=16), 300, 16).eval()
    dest = tmp_path / "hf"
    export_hf(model, tokenizer_json, dest)
    (dest / "stale-from-before.bin").write_text("x")
    export_hf(model, tokenizer_json, dest)  # an earlier export: replaced whole
    assert (dest / "config.json").is_file() and not (dest / "stale-from-before.bin").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # no staging folders left
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"not written by Crucible.*--force"):
        export_hf(model, tokenizer_json, foreign)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    export_hf(model, tokenizer_json, foreign, force=True)
    assert (foreign / "config.json").is_file() and not (foreign / "notes.txt").exists()
