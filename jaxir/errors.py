"""Exceptions with the offending id, file, line or shape in their message.

All derive from ValueError so callers that only know the standard library still catch them.
`names_file` makes a write's OSError (a full disk) name its file; `utf8_lines` / `utf8_line` /
`utf8_text` read text whose bytes that are not UTF-8 are a DataError naming the file and line,
and `json_lines` reads JSONL the same way.
Standard library only.
"""
import contextlib
import gzip
import json
import os
from collections.abc import Iterator


class JaxirError(ValueError):
    """Base class of every error jaxir raises on bad input."""


class DataError(JaxirError):
    """A data file is missing, malformed or inconsistent (message names file and line)."""


class EmptyInputError(JaxirError):
    """A query or document is empty (or only whitespace) where text is required."""


class IndexFormatError(JaxirError):
    """An index on disk is corrupt, truncated, or from another format version / model / method."""


class CheckpointError(JaxirError):
    """A checkpoint is corrupt or was written for another model or config."""


class OptionError(JaxirError):
    """An unknown method, or an option the chosen method does not take."""


class NonFiniteError(JaxirError):
    """A number that must be finite (a loss, a gradient norm, a parameter, a model's score) is
    nan or inf (message names which: the step, the parameter path, the query)."""


@contextlib.contextmanager
def names_file(path, *, temps: str | None = None):
    """An OSError raised in the block that names no file (a write's: a full disk, or NumPy's
    errno-less "N requested and M written"), or one whose name starts with `temps` (where the
    block writes what becomes `path`), is re-raised naming `path`, what the block writes, so
    the one line a user reads says where (`jaxir.cli_errors.disk_full_line`)."""
    try:
        yield
    except OSError as e:
        if e.filename is None or (temps and os.fspath(e.filename).startswith(temps)):
            if e.errno is None and e.strerror is None:  # keep the message str(e) would lose
                e.strerror = str(e)
            e.filename = os.fspath(path)
        raise


def utf8_line(raw: bytes, path, lineno: int) -> str:
    """Line `lineno` of `path` (bytes) as text (a BOM on line 1 dropped); a DataError naming
    the file, line and byte if it is not UTF-8."""
    return utf8_text(raw, path, first_line=lineno)


def utf8_lines(path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line of a UTF-8 text file (gzipped if it ends in .gz),
    streamed; bytes that are not UTF-8 are a DataError naming the file and line."""
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "rb") as lines:
        for lineno, raw in enumerate(lines, start=1):
            yield lineno, utf8_line(raw, path, lineno)


def json_lines(path) -> Iterator[tuple[int, object]]:
    """(line number, parsed value) of each non-blank line of a JSONL file (gzipped if .gz),
    streamed; text that is not UTF-8 or not JSON is a DataError naming the file and line."""
    for lineno, line in utf8_lines(path):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{lineno}: malformed JSON ({err.msg})") from None


def utf8_text(raw: bytes, path, *, first_line: int = 1) -> str:
    """Bytes of `path` from line `first_line` on (a whole file by default) as text, a BOM at the
    file's start dropped; a DataError naming the line and byte where they are not UTF-8."""
    if first_line == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = first_line + raw.count(b"\n", 0, e.start)
        column = e.start - raw.rfind(b"\n", 0, e.start)
        raise DataError(f"{path}:{line}: not UTF-8 (byte {raw[e.start]:#04x}) at column {column}: "
                        "save the file as UTF-8") from None
