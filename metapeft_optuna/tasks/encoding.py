"""Reading a data file's text: UTF-8, byte-order marks, and a clear line otherwise.

Spreadsheets save CSV as Windows-1252 or UTF-8 with a byte-order mark, some tools write
UTF-16; a raw ``UnicodeDecodeError`` names neither the file nor the line. Files with a
byte-order mark are decoded by it; other files must be UTF-8, and a file that is not
gets a ``file:line`` error naming the likely encoding (guessed by ``charset_normalizer``)
and the ``iconv`` command that converts it.
"""

from __future__ import annotations

import codecs
import re
import shlex
from pathlib import Path

from ..errors import DataFormatError

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Among encodings that decode a file equally well, the one to suggest. Windows-1252 comes
# first: Excel and Windows editors write it in Western locales, and on a short file
# charset_normalizer cannot tell it from near-identical code pages (it often says cp1250).
_PREFERRED = ("cp1252", "latin_1", "iso8859_15", "cp1250", "cp1251", "cp932", "gb18030")
# Python codec name -> (how to call it, iconv's name) where the generic rule is wrong.
_NAMES = {
    "latin_1": ("Latin-1", "ISO-8859-1"),
    "cp932": ("Shift_JIS", "CP932"),
    "shift_jis": ("Shift_JIS", "SHIFT_JIS"),
    "mac_roman": ("Mac Roman", "MACINTOSH"),
    "mac_cyrillic": ("Mac Cyrillic", "MACCYRILLIC"),
    "utf_16_le": ("UTF-16LE without a byte-order mark", "UTF-16LE"),
    "utf_16_be": ("UTF-16BE without a byte-order mark", "UTF-16BE"),
    "utf_32_le": ("UTF-32LE without a byte-order mark", "UTF-32LE"),
    "utf_32_be": ("UTF-32BE without a byte-order mark", "UTF-32BE"),
}


def read_text(path: Path) -> str:
    """A data file's text: UTF-8, or any Unicode encoding announced by a byte-order mark.

    The mark is removed, so it never ends up in a CSV header or the first JSON key.

    Args:
        path: The data file.

    Returns:
        The decoded text.

    Raises:
        DataFormatError: The file is not UTF-8 and has no byte-order mark; the message
            gives the line of the first undecodable byte, the likely encoding, and the
            ``iconv`` command that converts the file.
    """
    raw = path.read_bytes()
    body, encoding = raw, "utf-8"
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            body, encoding = raw[len(bom) :], codec
            break
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        raise _decode_error(path, body, encoding, exc) from None
    if encoding == "utf-8" and "\x00" in text:
        # UTF-16 without a byte-order mark is valid UTF-8, full of NUL characters.
        raise _nul_error(path, body, text)
    return text


def _line_of(body: bytes, encoding: str, offset: int) -> int:
    return body[:offset].decode(encoding, errors="replace").count("\n") + 1


def _decode_error(path: Path, body: bytes, encoding: str, exc: UnicodeDecodeError) -> Exception:
    line = _line_of(body, encoding, exc.start)
    byte = f"byte 0x{body[exc.start]:02x}"
    if encoding != "utf-8":
        name = encoding.upper()
        return DataFormatError(
            path,
            line,
            f"invalid {name} ({byte}) although the byte-order mark says {name}; the file "
            "is damaged: export it again as UTF-8.",
        )
    if body.startswith(b"PK\x03\x04"):
        return DataFormatError(
            path, None, "a ZIP archive (an .xlsx workbook?), not text; save it as CSV UTF-8."
        )
    if re.search(r"[^\x00-\x7f\ufffd]", body.decode("utf-8", errors="replace")):
        # Other non-ASCII characters decode as UTF-8: converting the whole file would
        # garble them, so point at the damaged character instead.
        return DataFormatError(
            path,
            line,
            f"not UTF-8: {byte} cannot be decoded, though the rest of the file is UTF-8; "
            "fix or delete the damaged character on this line.",
        )
    guess = _guess_encoding(body)
    if guess is None:
        return DataFormatError(
            path,
            line,
            f"not UTF-8 ({byte}); save it as UTF-8, e.g. with: {_iconv('YOUR-ENCODING', path)}",
        )
    name, iconv_name = guess
    return DataFormatError(
        path,
        line,
        f"not UTF-8 (looks like {name}: {byte}); convert it with: {_iconv(iconv_name, path)}",
    )


def _nul_error(path: Path, body: bytes, text: str) -> Exception:
    line = text.count("\n", 0, text.index("\x00")) + 1
    guess = _guess_encoding(body)
    if guess is None or not guess[1].startswith("UTF-"):
        return DataFormatError(
            path, line, "NUL bytes in a text file; is it binary? Save it as UTF-8 text."
        )
    name, iconv_name = guess
    return DataFormatError(
        path,
        line,
        f"NUL bytes: looks like {name}; convert it with: {_iconv(iconv_name, path)}",
    )


def _iconv(encoding: str, path: Path) -> str:
    target = path.with_name(f"{path.stem}.utf8{path.suffix}")
    return f"iconv -f {encoding} -t UTF-8 {shlex.quote(str(path))} > {shlex.quote(str(target))}"


def _guess_encoding(body: bytes) -> tuple[str, str] | None:
    """The likely encoding of ``body`` as (a readable name, iconv's name), if any.

    Example:
        >>> _guess_encoding("input,label\\nx,café\\n".encode("cp1252"))
        ('Windows-1252', 'WINDOWS-1252')
    """
    from charset_normalizer import from_bytes  # only the error path needs it

    matches = list(from_bytes(body))
    if not matches:
        return None
    best = matches[0]
    # Every encoding that decodes the file as well as the best guess (charset_normalizer's
    # ranking among these is arbitrary on short files).
    tied = {best.encoding, *best.could_be_from_charset}
    for match in matches[1:]:
        if match.chaos <= best.chaos and match.coherence >= best.coherence:
            tied.update([match.encoding, *match.could_be_from_charset])
    codec = next((c for c in _PREFERRED if c in tied), best.encoding)
    return _encoding_names(codec)


def _encoding_names(codec: str) -> tuple[str, str]:
    """(readable name, iconv name) of a Python codec name.

    Example:
        >>> _encoding_names("cp1251"), _encoding_names("iso8859_15")
        (('Windows-1251', 'WINDOWS-1251'), ('ISO-8859-15', 'ISO-8859-15'))
    """
    if codec in _NAMES:
        return _NAMES[codec]
    if match := re.fullmatch(r"cp(125\d)", codec):
        return f"Windows-{match[1]}", f"WINDOWS-{match[1]}"
    if match := re.fullmatch(r"iso8859_(\d+)", codec):
        return f"ISO-8859-{match[1]}", f"ISO-8859-{match[1]}"
    name = codec.upper().replace("_", "-")
    return name, name
