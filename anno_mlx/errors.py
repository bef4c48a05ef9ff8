"""The one exception type a user sees: a one-line message that says what is wrong and what to do."""


class AnnoError(Exception):
    """A user mistake or an unusable input; the CLI prints it as one line, without a traceback."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
