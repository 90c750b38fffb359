"""The one exception the evaluation tools raise for bad input."""


class EvaluationInputError(ValueError):
    """Input that cannot be evaluated: a missing topic, unmatched stamps, an unreadable image.

    The message names what is wrong and where, because the command-line tools print
    it as it is (exit status 2) instead of a traceback.
    """
