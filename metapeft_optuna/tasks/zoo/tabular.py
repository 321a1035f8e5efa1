"""scikit-learn's bundled tabular datasets written as short text."""

from __future__ import annotations

import numpy as np


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _describe(names: list[str], row: np.ndarray) -> str:
    return ", ".join(f"{name} {_number(value)}" for name, value in zip(names, row))


def _top_features(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    # Short prompts: keep the k most class-informative features (ANOVA F).
    from sklearn.feature_selection import f_classif

    scores, _ = f_classif(x, y)
    return np.sort(np.argsort(-np.nan_to_num(scores))[:k])


def _sklearn_task(loader: str, question: str, k: int | None = None, labels=None):
    def build(rng: np.random.Generator) -> list[tuple[str, str]]:
        import sklearn.datasets

        data = getattr(sklearn.datasets, loader)()
        x, y = data.data, data.target
        names = [str(n).replace("(cm)", "").replace("_", " ").strip() for n in data.feature_names]
        classes = labels or [str(n).replace("_", " ") for n in data.target_names]
        cols = _top_features(x, y, k) if k else np.arange(x.shape[1])
        return [
            (f"{_describe([names[c] for c in cols], row[cols])}\n{question}", f" {classes[int(t)]}")
            for row, t in zip(x, y)
        ]

    build.__doc__ = f"scikit-learn {loader.removeprefix('load_')} as text."
    return build


iris = _sklearn_task("load_iris", "Species:")
wine = _sklearn_task("load_wine", "Cultivar:", k=4, labels=["one", "two", "three"])
breast_cancer = _sklearn_task("load_breast_cancer", "Diagnosis:", k=4)
