"""``python -m termnorm_eval`` (also ``accelerate launch -m termnorm_eval study ...``)."""

from termnorm_eval.cli import main

if __name__ == "__main__":
    main()
