"""The product's exception tree, in one place.

``UserFacingError`` and its subclasses carry a one-line message meant for the person at
the command line; anything else is a bug and keeps its traceback.
"""


class UserFacingError(Exception):
    """An error whose message is the whole story for the user."""

    code = "error"
