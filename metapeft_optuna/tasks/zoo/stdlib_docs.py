"""Standard-library docstrings: a function's one-line summary, human-written text that
ships with every Python (``docstring_summary``; ``chat_python_docs`` asks the same of
methods).

The modules are read in a sorted, machine-independent order. The docstrings do change
between Python minor versions, so the pool is fixed per Python version, not across them.
"""

from __future__ import annotations

import importlib
import inspect
import re
from functools import cache
from typing import Any

import numpy as np

# Standard-library modules with the same public API on every platform and build that
# runs MLX (Linux, macOS; CPython >= 3.11). Left out on purpose: OS-specific modules
# (os, posix, signal, socket, select, time), optional C extensions (ssl, sqlite3, lzma,
# bz2, zlib, hashlib, tkinter, curses), modules whose classes depend on them (ftplib,
# http.client, imaplib, poplib, smtplib, urllib.request), POSIX-only classes
# (socketserver, multiprocessing), and everything removed by PEP 594 in 3.13.
STDLIB_MODULES = (
    "abc",
    "argparse",
    "array",
    "ast",
    "asyncio.base_events",
    "asyncio.events",
    "asyncio.exceptions",
    "asyncio.futures",
    "asyncio.locks",
    "asyncio.protocols",
    "asyncio.queues",
    "asyncio.runners",
    "asyncio.streams",
    "asyncio.subprocess",
    "asyncio.taskgroups",
    "asyncio.tasks",
    "asyncio.timeouts",
    "asyncio.transports",
    "base64",
    "bdb",
    "binascii",
    "bisect",
    "calendar",
    "cmath",
    "cmd",
    "code",
    "codecs",
    "codeop",
    "collections",
    "collections.abc",
    "colorsys",
    "compileall",
    "concurrent.futures.thread",
    "configparser",
    "contextlib",
    "contextvars",
    "copy",
    "copyreg",
    "csv",
    "dataclasses",
    "datetime",
    "dbm.dumb",
    "decimal",
    "difflib",
    "dis",
    "doctest",
    "email.charset",
    "email.contentmanager",
    "email.errors",
    "email.feedparser",
    "email.generator",
    "email.header",
    "email.headerregistry",
    "email.message",
    "email.parser",
    "email.policy",
    "email.utils",
    "enum",
    "filecmp",
    "fileinput",
    "fnmatch",
    "fractions",
    "functools",
    "getopt",
    "gettext",
    "glob",
    "graphlib",
    "heapq",
    "hmac",
    "html",
    "html.parser",
    "http.cookiejar",
    "http.cookies",
    "http.server",
    "importlib.abc",
    "importlib.machinery",
    "importlib.metadata",
    "importlib.resources",
    "importlib.util",
    "inspect",
    "io",
    "ipaddress",
    "itertools",
    "json",
    "json.decoder",
    "json.encoder",
    "keyword",
    "linecache",
    "logging",
    "logging.config",
    "logging.handlers",
    "mailbox",
    "math",
    "mimetypes",
    "modulefinder",
    "netrc",
    "numbers",
    "operator",
    "optparse",
    "pathlib",
    "pdb",
    "pickle",
    "pickletools",
    "pkgutil",
    "plistlib",
    "pprint",
    "profile",
    "pstats",
    "py_compile",
    "pyclbr",
    "pydoc",
    "queue",
    "quopri",
    "random",
    "re",
    "reprlib",
    "runpy",
    "sched",
    "secrets",
    "shelve",
    "shlex",
    "statistics",
    "string",
    "stringprep",
    "struct",
    "symtable",
    "tabnanny",
    "tempfile",
    "textwrap",
    "threading",
    "timeit",
    "tokenize",
    "tomllib",
    "trace",
    "traceback",
    "tracemalloc",
    "types",
    "typing",
    "unicodedata",
    "unittest.case",
    "unittest.loader",
    "unittest.mock",
    "unittest.result",
    "unittest.runner",
    "unittest.suite",
    "urllib.error",
    "urllib.parse",
    "urllib.robotparser",
    "uuid",
    "venv",
    "warnings",
    "wave",
    "weakref",
    "wsgiref.handlers",
    "wsgiref.headers",
    "wsgiref.simple_server",
    "wsgiref.util",
    "wsgiref.validate",
    "xml.dom",
    "xml.dom.minidom",
    "xml.dom.pulldom",
    "xml.etree.ElementTree",
    "xml.sax.handler",
    "xml.sax.saxutils",
    "xml.sax.xmlreader",
    "xmlrpc.client",
    "xmlrpc.server",
    "zipapp",
    "zipfile",
    "zipimport",
    "zoneinfo",
)
MIN_SUMMARY_WORDS = 4
MAX_SUMMARY_WORDS = 40
MAX_SIGNATURE_CHARS = 100
# A sentence ends at . ! or ? followed by a capital letter, so "e.g. foo" stays whole.
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)\]'\"`][.!?])\s+(?=[A-Z])")
_PLAIN_DEFAULTS = (type(None), bool, int, float, str)


class _Elided:
    """Shown in place of a default whose repr may differ between machines or runs."""

    def __repr__(self) -> str:
        return "..."


def summary_line(doc: str | None) -> str | None:
    """The first sentence of a docstring's first paragraph, on one line.

    Example:
        >>> summary_line("Return the square\\n  root of x. Raises on x < 0.\\n\\nMore.")
        'Return the square root of x.'
    """
    if not doc:
        return None
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    return _SENTENCE_END.split(paragraph)[0]


def plain_signature(obj: Any) -> str | None:
    """``obj``'s signature without annotations, with only literal defaults shown.

    Object defaults are elided because their reprs can hold memory addresses or
    machine-specific values; a signature longer than :data:`MAX_SIGNATURE_CHARS`
    drops its defaults. None when the signature cannot be read.

    Example:
        >>> def f(x: int, sep=", ", *, key=len) -> str: ...
        >>> plain_signature(f)
        "(x, sep=', ', *, key=...)"
    """
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = []
    for param in signature.parameters.values():
        param = param.replace(annotation=param.empty)
        if param.default is not param.empty and not isinstance(param.default, _PLAIN_DEFAULTS):
            param = param.replace(default=_Elided())
        params.append(param)
    plain = signature.replace(parameters=params, return_annotation=signature.empty)
    text = str(plain)
    if len(text) > MAX_SIGNATURE_CHARS:
        text = str(plain.replace(parameters=[p.replace(default=p.empty) for p in params]))
    return text


def _defined_in(obj: Any, module: str) -> bool:
    # Re-exports are documented where they are defined; C accelerators (_heapq for
    # heapq) count as their public module.
    owner = getattr(obj, "__module__", None)
    return owner in (module, "_" + module.rsplit(".", 1)[-1])


def _public_names(module: Any) -> list[str]:
    names = getattr(module, "__all__", None) or vars(module)
    return sorted(n for n in set(names) if not n.startswith("_") and hasattr(module, n))


@cache
def stdlib_docs() -> tuple[tuple[str, str, Any], ...]:
    """``(kind, qualified name, object)`` for the public functions, classes and methods
    defined in :data:`STDLIB_MODULES`, sorted by qualified name; kind is ``"function"``,
    ``"class"`` or ``"method"``."""
    out = []
    for module_name in STDLIB_MODULES:
        module = importlib.import_module(module_name)
        for name in _public_names(module):
            obj = getattr(module, name)
            if not _defined_in(obj, module_name):
                continue
            qualified = f"{module_name}.{name}"
            if inspect.isfunction(obj) or inspect.isbuiltin(obj):
                out.append(("function", qualified, obj))
            elif inspect.isclass(obj):
                out.append(("class", qualified, obj))
                for attr in sorted(vars(obj)):
                    raw = vars(obj)[attr]
                    if attr.startswith("_") or not _is_method(raw):
                        continue
                    out.append(("method", f"{qualified}.{attr}", getattr(obj, attr)))
    return tuple(sorted(out, key=lambda row: row[1]))


def _is_method(raw: Any) -> bool:
    return (
        inspect.isfunction(raw)
        or inspect.ismethoddescriptor(raw)
        or isinstance(raw, classmethod | staticmethod)
    )


def documented(kinds: tuple[str, ...]) -> list[tuple[str, Any, str]]:
    """``(qualified name, object, summary)`` of the :func:`stdlib_docs` entries of
    ``kinds`` with a docstring of their own whose first sentence has 4-40 words, each
    summary kept once (for the first name in sorted order: aliases share docstrings)."""
    out, seen = [], set()
    for kind, qualified, obj in stdlib_docs():
        if kind not in kinds:
            continue
        # The object's own docstring: inspect.getdoc would lend a class without one its
        # base class's ("This is an abstract base class ..." for ThreadPoolExecutor).
        doc = getattr(obj, "__doc__", None)
        summary = summary_line(inspect.cleandoc(doc) if isinstance(doc, str) else None)
        if summary is None or summary in seen or not _is_prose(summary, qualified):
            continue
        seen.add(summary)
        out.append((qualified, obj, summary))
    return out


def _is_prose(summary: str, qualified: str) -> bool:
    words = summary.split()
    name = qualified.rsplit(".", 1)[-1]
    # C docstrings sometimes open with a call signature ("setsockopt(level, ...)") or,
    # for ast nodes, a grammar rule: not a prose summary.
    return (
        MIN_SUMMARY_WORDS <= len(words) <= MAX_SUMMARY_WORDS
        and summary.endswith(".")
        and not words[0].startswith(name + "(")
    )


def docstring_summary(rng: np.random.Generator) -> list[tuple[str, str]]:
    """Summarise a standard-library function or class from its name and signature."""
    out = []
    for qualified, obj, summary in documented(("function", "class")):
        signature = plain_signature(obj)
        if signature is not None:
            out.append((f"{qualified}{signature}\nSummary:", f" {summary}"))
    return out
