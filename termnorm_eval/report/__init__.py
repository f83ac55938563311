"""What fine-tuning did: base vs fine-tuned ``lm_eval`` results of the termnorm_* tasks.

``results`` reads results and sample files, ``compare`` computes accuracies, gains, item
transitions and the popularity effect, ``render`` writes tables, Markdown, CSV and figures.
"""
