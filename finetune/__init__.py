"""LoRA fine-tuning on termnorm training splits (Unsloth on GPU, transformers+PEFT anywhere)."""
