"""The data layer's one error, in a module of its own so that both the loader and the stand-in can raise it."""


class DataError(RuntimeError):
    """The data could not be found, fetched or read; the message says what to do."""
