"""A tiny randomly initialised causal LM with a real (byte-level BPE) tokenizer.

For plumbing tests and benchmarks only: it loads in milliseconds, trains in seconds on a CPU, and
goes through every code path a real model does (``AutoModelForCausalLM``, a chat template, PEFT,
lm-eval's ``hf`` backend). It knows nothing, so its baseline accuracy is zero.

The tokenizer keeps case and punctuation exactly (byte level), because identifiers are scored
case-sensitively: a lower-casing tokenizer would make every ``GO:`` answer wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|pad|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]


def _default_corpus() -> list[str]:
    """Prompt templates and the shipped split records, so common pieces become single tokens."""
    from termnorm_eval.splits import store
    from termnorm_eval.terminologies import BUILTIN

    texts: list[str] = []
    for term in BUILTIN.values():
        for d in term.directions:
            texts.extend(d.templates)
    for key in store.available():
        for rec in store.load_records(key, "train"):
            texts.extend(str(v) for v in rec.values() if isinstance(v, str))
    return texts or ["GO:0005634 nucleus HP:0001250 Seizure HGNC:11998 TP53"]


def build_tiny_model(
    out_dir: str | Path,
    *,
    seed: int = 0,
    layers: int = 2,
    hidden: int = 64,
    vocab_size: int = 1024,
    corpus: Iterable[str] | None = None,
) -> Path:
    """Write a tiny Llama-architecture model and its tokenizer to ``out_dir``; return the path."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(list(corpus) if corpus is not None else _default_corpus(), trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        pad_token="<|pad|>",
        additional_special_tokens=SPECIAL[2:],
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(out)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    return out
