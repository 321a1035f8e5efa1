"""Number-language tasks built with num2words (real linguistic rules, many languages)."""

from __future__ import annotations

import numpy as np

LANGUAGE_NAMES = {"en": "English", "fr": "French", "es": "Spanish", "de": "German"}


def _numbers(rng: np.random.Generator, n: int, high: int) -> list[int]:
    return sorted(rng.choice(high, size=min(n, high), replace=False).tolist())


def number_words(lang: str):
    def build(rng: np.random.Generator) -> list[tuple[str, str]]:
        from num2words import num2words

        suffix = "" if lang == "en" else f" in {LANGUAGE_NAMES[lang]}"
        return [
            (f"Number: {n}\nWords{suffix}:", f" {num2words(n, lang=lang)}")
            for n in _numbers(rng, 3000, 10000)
        ]

    build.__doc__ = f"Write a number 0-9999 in {LANGUAGE_NAMES[lang]} words."
    return build


def words_to_number(rng: np.random.Generator) -> list[tuple[str, str]]:
    """Read an English number written in words back into digits."""
    from num2words import num2words

    return [(f"Words: {num2words(n)}\nNumber:", f" {n}") for n in _numbers(rng, 3000, 10000)]


def ordinal_words(rng: np.random.Generator) -> list[tuple[str, str]]:
    """Write the ordinal of a number 1-999 in words (21 -> twenty-first)."""
    from num2words import num2words

    return [
        (f"Number: {n}\nOrdinal:", f" {num2words(n, to='ordinal')}")
        for n in _numbers(rng, 999, 999)
        if n > 0
    ]


_ROMAN = (
    (1000, "M"),
    (900, "CM"),
    (500, "D"),
    (400, "CD"),
    (100, "C"),
    (90, "XC"),
    (50, "L"),
    (40, "XL"),
    (10, "X"),
    (9, "IX"),
    (5, "V"),
    (4, "IV"),
    (1, "I"),
)


def to_roman(n: int) -> str:
    """Roman numeral of ``1 <= n < 4000``."""
    out = []
    for value, symbol in _ROMAN:
        count, n = divmod(n, value)
        out.append(symbol * count)
    return "".join(out)


def roman_numerals(rng: np.random.Generator) -> list[tuple[str, str]]:
    """Write a number 1-3999 as a Roman numeral."""
    return [(f"Number: {n}\nRoman:", f" {to_roman(n)}") for n in _numbers(rng, 3000, 4000) if n > 0]
