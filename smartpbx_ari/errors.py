"""The product's exception tree, in one place.

``UserFacingError`` and its subclasses carry a one-line message meant for the person at
the command line; anything else is a bug and keeps its traceback.
"""


class UserFacingError(Exception):
    """An error whose message is the whole story for the user."""

    code = "error"


class StageError(UserFacingError):
    """A model stage of a call (``stage``: stt, search, llm) raised or missed its deadline
    (``timed_out``). The call goes on: the caller hears a phrase, the operators an alert."""

    stage = "model"
    code = "model-failed"

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out
        if timed_out:
            self.code = f"{self.stage}-timeout"
