"""One exception type for mistakes a user can fix.

Every message is a single line that names the fix; the CLI prints it without a traceback.
"""


class DgnamError(Exception):
    """A user-facing error: bad unit address, missing data set, unsafe weights file, ..."""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message for a one-line error, or its type's name when it has none (an
    ``EOFError`` from an empty file has an empty message)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
