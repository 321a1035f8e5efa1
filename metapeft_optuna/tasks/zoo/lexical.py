"""Tasks from real lexical data shipped in PyPI packages: VADER and wordfreq."""

from __future__ import annotations

import os
import re
from functools import cache

import numpy as np

_WORD = re.compile(r"[a-z]+")
LANGUAGES = {
    "en": "English",
    "fr": "French",
    "de": "German",
    "es": "Spanish",
    "it": "Italian",
    "nl": "Dutch",
    "pt": "Portuguese",
}


@cache
def vader_lexicon() -> tuple[tuple[str, float], ...]:
    """(token, mean human valence in [-4, 4]) for the ~7,500 entries of VADER's lexicon."""
    import vaderSentiment

    path = os.path.join(os.path.dirname(vaderSentiment.__file__), "vader_lexicon.txt")
    with open(path, encoding="utf-8") as fh:
        rows = [line.rstrip("\n").split("\t") for line in fh if line.strip()]
    return tuple((row[0], float(row[1])) for row in rows)


def sentiment_strength(rng: np.random.Generator) -> list[tuple[str, str]]:
    """Whether a word's valence is strong (|v| >= 2) or mild (0.5 <= |v| < 1.5)."""
    pairs = []
    for w, v in vader_lexicon():
        if _WORD.fullmatch(w) and (abs(v) >= 2.0 or 0.5 <= abs(v) < 1.5):
            pairs.append((w, "strong" if abs(v) >= 2.0 else "mild"))
    return [(f"Word: {w}\nIntensity:", f" {label}") for w, label in pairs]


@cache
def _top_words(lang: str, n: int) -> tuple[str, ...]:
    import wordfreq

    return tuple(wordfreq.top_n_list(lang, n, wordlist="best"))


def language_id(rng: np.random.Generator) -> list[tuple[str, str]]:
    """Language of a frequent word that is not frequent in any other listed language."""
    frequent = {lang: set(_top_words(lang, 30000)) for lang in LANGUAGES}
    pairs = []
    for lang, name in LANGUAGES.items():
        unique = [
            w
            for w in _top_words(lang, 4000)
            if len(w) >= 4
            and w.isalpha()
            and not any(w in frequent[o] for o in LANGUAGES if o != lang)
        ]
        pairs += [(w, name) for w in unique[:600]]
    return [(f"Word: {w}\nLanguage:", f" {name}") for w, name in pairs]


def english_words(n: int = 20000) -> list[str]:
    """Frequent alphabetic English words (for the algorithmic string tasks)."""
    return [w for w in _top_words("en", n) if w.isalpha() and w.isascii() and len(w) >= 3]
