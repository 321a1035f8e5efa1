"""``setup_logger``: console and optional file logging, safe to call repeatedly."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logger(
    name: str, log_dir: str | Path | None = None, level: str = "INFO"
) -> logging.Logger:
    """Configure a logger with console and file handlers.

    Calling it again with the same name replaces the handlers it added before, so
    messages are never duplicated.

    Args:
        name: Logger name.
        log_dir: Directory for ``<name>.log`` (default: None, console only).
        level: Logging level name (default: "INFO").

    Returns:
        The configured logger.

    Example:
        >>> logger = setup_logger("meta_learning", level="DEBUG")
        >>> logger.level == logging.DEBUG
        True
    """
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(
            f"level={level!r} is not a logging level; use DEBUG, INFO, WARNING or ERROR."
        )
    logger = logging.getLogger(name)
    logger.setLevel(numeric)
    for handler in [h for h in logger.handlers if getattr(h, "_metapeft", False)]:
        logger.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_dir is not None:
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_dir / f"{name}.log"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler._metapeft = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False
    return logger
