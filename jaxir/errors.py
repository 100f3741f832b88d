"""Exceptions with the offending id, file, line or shape in their message.

All derive from ValueError so callers that only know the standard library still catch them.
"""


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
