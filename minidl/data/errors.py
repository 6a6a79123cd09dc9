"""The one exception type of the data layer."""


class DataError(ValueError):
    """A data file is missing, corrupt, truncated or not in the expected format.

    The message always names the file (or data set) and says what is wrong.
    """
