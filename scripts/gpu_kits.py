"""Model kits for the GPU check: a folder per model holding only a config.json of a real
architecture and a real tokenizer (no weights: vLLM's `load_format="dummy"` fills them with random
values on the device). A few MB each, so they travel to a lent GPU with the trip
(scripts/gpu_trip.py), where no hub is reachable.

Sizes:
  gpu: the shapes of the 7-9B models of the GPU presets (Qwen2-7B, Llama-3.1-8B, gemma-2-9b, as
       published in their config.json), at full width; `layers` cuts the depth (a faster start,
       fewer compile seconds) and None keeps every layer
  cpu: the three CPU models' own configs (qwen2, llama, gemma3), `layers` deep (default 2)
Tokenizers come from the CPU models prepared by harness.models (Qwen2.5's tokenizer is Qwen2's;
the llama kit borrows SmolLM2's, the gemma kits gemma-3's) and each config's vocabulary is set to
its tokenizer's size. The gemma kits get a chat template that refuses a system message the way
gemma-2's does, so the check meets that template on every device.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json")

# gemma-2's turn format; a system message raises, as gemma-2's own template does
REFUSING_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}"
    "{% endif %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)

# name (conf/model) -> (tokenizer source (conf/model of a CPU model), config class, shape, refuses)
GPU_KITS = {
    "qwen2-7b-instruct": (
        "qwen2.5-coder-0.5b-instruct",
        "Qwen2Config",
        dict(
            hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
            num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
            rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 1e6},
            tie_word_embeddings=False, hidden_act="silu", architectures=["Qwen2ForCausalLM"],
        ),
        False,
    ),
    "llama-3.1-8b-instruct": (
        "smollm2-135m-instruct",
        "LlamaConfig",
        dict(
            hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
            num_attention_heads=32, num_key_value_heads=8, head_dim=128,
            max_position_embeddings=131072, rms_norm_eps=1e-5,
            rope_parameters={
                "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            },
            tie_word_embeddings=False, hidden_act="silu", architectures=["LlamaForCausalLM"],
        ),
        False,
    ),
    "gemma-2-9b-it": (
        "gemma-3-270m",
        "Gemma2Config",
        dict(
            hidden_size=3584, intermediate_size=14336, num_hidden_layers=42,
            num_attention_heads=16, num_key_value_heads=8, head_dim=256,
            max_position_embeddings=8192, rms_norm_eps=1e-6, query_pre_attn_scalar=256,
            sliding_window=4096, attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
            hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            architectures=["Gemma2ForCausalLM"],
        ),
        True,
    ),
}  # fmt: skip
CPU_KITS = {  # the CPU models' own configs; the gemma kit with the refusing template
    "qwen2.5-coder-0.5b-instruct": False,
    "smollm2-135m-instruct": False,
    "gemma-3-270m": True,
}
TOKEN_IDS = ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id")


def tokenizer_size(folder: Path) -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size(
        with_added_tokens=True
    )


def parameters(config) -> int:
    """Parameters of a model of this config (built on the meta device: no memory, no time)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def cut(config: dict, layers: int | None) -> dict:
    """The config with its first `layers` layers (and their layer types), or whole."""
    if layers is None or layers >= config["num_hidden_layers"]:
        return config
    config = dict(config, num_hidden_layers=layers)
    if isinstance(config.get("layer_types"), list):
        config["layer_types"] = config["layer_types"][:layers]
    if "max_window_layers" in config:
        config["max_window_layers"] = min(config["max_window_layers"], layers)
    return config


def write_kit(out: Path, config, source: Path, refuses: bool, layers: int | None) -> dict:
    """A kit in `out`: the config (vocabulary = the tokenizer's, `layers` deep) and `source`'s
    tokenizer files; returns its description (parameters at full depth and as cut)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, out / name)
    template = REFUSING_TEMPLATE if refuses else (source / "chat_template.jinja").read_text()
    (out / "chat_template.jinja").write_text(template)
    own = json.loads((source / "config.json").read_text())
    config.vocab_size = tokenizer_size(source)
    for key in TOKEN_IDS:  # the tokenizer's special tokens, not the original model's
        if own.get(key) is not None:
            setattr(config, key, own[key])
    full = parameters(config)
    whole = config.to_dict()
    small = cut(whole, layers)
    kind = type(config)
    config = kind.from_dict(small)
    config.save_pretrained(out)
    return {
        "architecture": whole["architectures"][0],
        "tokenizer": source.name,
        "vocab_size": config.vocab_size,
        "layers": small["num_hidden_layers"],
        "full_layers": whole["num_hidden_layers"],
        "parameters": parameters(config),
        "full_parameters": full,
        "refuses_system_role": refuses,
    }


def build_kits(size: str, dest: Path, layers: int | None = None) -> dict[str, dict]:
    """The three kits of `size` in dest/<model name>/, described in dest/kits.json."""
    import transformers
    from transformers import AutoConfig

    from harness.models import prepare

    made = {}
    if size == "gpu":
        for name, (source, cls, shape, refuses) in GPU_KITS.items():
            config = getattr(transformers, cls)(**shape)
            made[name] = write_kit(dest / name, config, prepare(source), refuses, layers)
    else:
        for name, refuses in CPU_KITS.items():
            source = prepare(name)
            config = AutoConfig.from_pretrained(source)
            made[name] = write_kit(dest / name, config, source, refuses, layers or 2)
    (dest / "kits.json").write_text(json.dumps({"size": size, "kits": made}, indent=1) + "\n")
    return made


def copy_prompts(dest: Path, data_dir: Path | None = None) -> Path | None:
    """GSM8K's test questions (the check's prompts) into dest/gsm8k/, from the shared data."""
    src = (data_dir or Path(__file__).resolve().parents[2] / "shared/data") / "gsm8k/test.jsonl"
    if not src.exists():
        return None
    (dest / "gsm8k").mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(src, dest / "gsm8k" / "test.jsonl"))
