"""Chat tasks: questions and answers from packaged data, as chat conversations.

Each example is a system message and a user question; the answer is the assistant's
reply (no leading space: it follows the chat template's assistant header), and the
prompt is rendered with the tokenizer's chat template. Builders read their data in a
sorted, machine-independent order and ignore the random generator they are given.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..task import Example
from .stdlib_docs import documented


def chat_example(system: str, question: str, answer: str) -> Example:
    """A two-message conversation (system, user) answered by ``answer``.

    Example:
        >>> chat_example("Be brief.", "Hi?", "Hello.").messages[1]
        (('role', 'user'), ('content', 'Hi?'))
    """
    messages = (
        (("role", "system"), ("content", system)),
        (("role", "user"), ("content", question)),
    )
    return Example("", answer, messages=messages)


PYTHON_SYSTEM = "You are a Python expert. Answer in one sentence."


def chat_python_docs(rng: np.random.Generator) -> list[Example]:
    """Say in one sentence what a standard-library method does (its docstring summary)."""
    # Methods only: docstring_summary asks about the functions and classes, so the two
    # tasks share no answer.
    return [
        chat_example(PYTHON_SYSTEM, f"What does the `{qualified}` method do?", summary)
        for qualified, _, summary in documented(("method",))
    ]


GEOGRAPHY_SYSTEM = "You are a geography assistant. Answer with the country's name only."


def chat_subdivision_country(rng: np.random.Generator) -> list[Example]:
    """Name the country of a province, region or other ISO 3166-2 subdivision."""
    import pycountry

    countries = {c.alpha_2: getattr(c, "common_name", None) or c.name for c in pycountry.countries}
    subdivisions = sorted(pycountry.subdivisions, key=lambda s: s.code)
    homes = defaultdict(set)
    for sub in subdivisions:
        homes[sub.name].add(sub.country_code)
    return [
        chat_example(
            GEOGRAPHY_SYSTEM,
            f"In which country is {sub.name} ({sub.type.lower()})?",
            countries[sub.country_code],
        )
        for sub in subdivisions
        # A name shared by subdivisions of several countries (San Juan) has no one answer.
        if len(homes[sub.name]) == 1
    ]
