"""``python -m finetune`` (also ``accelerate launch -m finetune ...`` for data parallel)."""

from finetune.cli import main

if __name__ == "__main__":
    main()
