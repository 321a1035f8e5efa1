"""Free-form text tasks: human-written answers shipped in Python or in PyPI packages.

Each answer is text a person wrote (a Unicode or CLDR name, an ISO language name; the
standard-library docstrings are in :mod:`.stdlib_docs`), so exact match stays near 0
for a small model whatever the fine-tune does: these tasks are scored by held-out
answer loss (``quality="val_loss"``).

Every builder reads its data in a sorted, machine-independent order and ignores the
random generator it is given.
"""

from __future__ import annotations

import unicodedata

import numpy as np

# Unicode blocks of letters and symbols that byte-level tokenizers handle well.
UNICODE_BLOCKS = (
    (0x00C0, 0x0100),  # Latin-1 Supplement letters
    (0x0100, 0x0180),  # Latin Extended-A
    (0x0180, 0x0250),  # Latin Extended-B
    (0x0250, 0x02B0),  # IPA Extensions
    (0x0370, 0x0400),  # Greek and Coptic
    (0x0400, 0x0500),  # Cyrillic
    (0x1E00, 0x1F00),  # Latin Extended Additional
    (0x1F00, 0x2000),  # Greek Extended
    (0x20A0, 0x20D0),  # Currency Symbols
    (0x2100, 0x2150),  # Letterlike Symbols
    (0x2190, 0x2200),  # Arrows
    (0x2200, 0x2300),  # Mathematical Operators
    (0x25A0, 0x2600),  # Geometric Shapes
    (0x2600, 0x2700),  # Miscellaneous Symbols
    (0x2700, 0x27C0),  # Dingbats
)


def unicode_name(rng: np.random.Generator) -> list[tuple[str, str]]:
    """Name a Latin, Greek, Cyrillic or symbol character (its official Unicode name)."""
    # The frozen Unicode 3.2 database ships with every Python, unlike the current one
    # (which grows with the Python version), so the pool is the same everywhere.
    ucd = unicodedata.ucd_3_2_0
    out = []
    for low, high in UNICODE_BLOCKS:
        for code in range(low, high):
            char = chr(code)
            name = ucd.name(char, None)
            if name and ucd.category(char)[0] in "LS":
                out.append((f"Character: {char}\nUnicode name:", f" {name.lower()}"))
    return out


# Emoji up to Emoji 14.0 (2021): later emoji package releases only add newer ones, so
# the pool stays the same across package versions.
MAX_EMOJI_VERSION = 14


def emoji_name(rng: np.random.Generator) -> list[tuple[str, str]]:
    """Name an emoji (its CLDR short name, skin tones included)."""
    import emoji

    qualified = emoji.STATUS["fully_qualified"]
    out = []
    for char, data in sorted(emoji.EMOJI_DATA.items()):
        if data["status"] == qualified and data["E"] <= MAX_EMOJI_VERSION:
            name = data["en"].strip(":").replace("_", " ")
            out.append((f"Emoji: {char}\nName:", f" {name}"))
    return out


def language_name(rng: np.random.Generator) -> list[tuple[str, str]]:
    """Name the language with a given ISO 639-3 code."""
    import pycountry

    languages = sorted(pycountry.languages, key=lambda language: language.alpha_3)
    return [(f"ISO 639-3 code: {lang.alpha_3}\nLanguage:", f" {lang.name}") for lang in languages]
