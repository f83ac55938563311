#!/usr/bin/env bash
# The retrieval arm of the CPU mini-study (issue 22): SmolLM2-135M-Instruct and the concept-transfer
# run's three LoRA adapters (../transfer), each scored on the retrieval-augmented mirror of every
# X->ID task that run scored (its first 30 documents, the shipped bm25 candidates, k = 10), bm25 itself
# on the same documents, and one report of both families beside the committed plain results.
#
#   bash benchmarks/results/mini_study/rag/run.sh WORKTREE
#
# WORKTREE: a checkout where ../transfer/study.yaml was run, so that it holds the adapters
#   (benchmarks/results/mini_study/transfer/study-out/train-<key>/adapter; not committed). The model
#   commands run there, so the adapters are named by the relative paths of the committed plain results
#   and both merge into one run per adapter. Results land in this folder (base/, eval-<key>/,
#   retrieve/, report/); as in ../transfer, the home folder is then written ~ and the worktree
#   prefix removed from every file (the committed plain results were made path-free the same way).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
work=$(cd "$1" && pwd)
model=$(python -c "from termnorm_eval.models import prepared_path; print(prepared_path())")
transfer=benchmarks/results/mini_study/transfer/study-out
common=(--limit 30 --apply-chat-template --batch-size 16 --device cpu --log-samples)
rag() { printf 'termnorm-rag_%s,' "$@" | sed 's/,$//'; }
go=$(rag go_term2id_train go_term2id_val go_synonym2id_train go_synonym2id_val)
hpo=$(rag hpo_term2id_train hpo_term2id_val hpo_synonym2id_train hpo_synonym2id_val hpo_lay2id_train hpo_lay2id_val)
gene=$(rag gene_name2symbol_train gene_name2symbol_val gene_alias2symbol_train gene_alias2symbol_val \
           gene_prev2symbol_train gene_prev2symbol_val)
rm -rf "$here/base" "$here/eval-go" "$here/eval-hpo" "$here/eval-gene"
termnorm retrieve eval --out "$here/retrieve" --limit 30 --force \
  --tasks "$(echo "$go,$hpo,$gene" | sed 's/termnorm-rag_/termnorm_/g')"
cd "$work"
termnorm eval --model-args "pretrained=$model" --tasks "$go,$hpo,$gene" --output-path "$here/base" "${common[@]}"
for key in go hpo gene; do
  termnorm eval --model-args "pretrained=$model,peft=$transfer/train-$key/adapter" --tasks "${!key}" \
    --output-path "$here/eval-$key" "${common[@]}"
done
cd "$root"
# path-free: the home folder as ~, the worktree and repository prefixes removed (file contents;
# lm-eval's folder names from pretrained= keep the form the committed plain results have)
find "$here" -type f \( -name '*.json' -o -name '*.jsonl' \) -print0 |
  xargs -0 sed -i -e "s#$work/##g" -e "s#$root/##g" -e "s#$HOME/#~/#g"
rel=benchmarks/results/mini_study/rag  # the report names its inputs as given: relative
termnorm report --base "$transfer/base/results" --base "$rel/base" \
  --tuned "$transfer/eval-go/results" --tuned "$rel/eval-go" --label eval-go --label eval-go \
  --tuned "$transfer/eval-hpo/results" --tuned "$rel/eval-hpo" --label eval-hpo --label eval-hpo \
  --tuned "$transfer/eval-gene/results" --tuned "$rel/eval-gene" --label eval-gene --label eval-gene \
  --retriever "$rel/retrieve" --out "$rel/report"
