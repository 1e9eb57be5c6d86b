"""One exception type for mistakes a user can fix.

Every message is a single line that names the fix; the CLI prints it without a traceback.
"""


class DgnamError(Exception):
    """A user-facing error: bad unit address, missing data set, unsafe weights file, ..."""
