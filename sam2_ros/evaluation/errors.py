"""The one exception the evaluation tools raise for bad input, and how their commands report it."""

import sys


class EvaluationInputError(ValueError):
    """Input that cannot be evaluated: a missing topic, unmatched stamps, an unreadable image.

    The message names what is wrong and where, because the command-line tools print
    it as it is (exit status 2) instead of a traceback.
    """


def run_command(prog: str, work, interrupted_note: str) -> int:
    """Run a command's ``work()`` (returning its exit status) with the tools' error contract:
    bad input prints one line and gives 2, Ctrl-C gives 130, never a traceback."""
    try:
        return work()
    except EvaluationInputError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {interrupted_note}", file=sys.stderr)
        return 130
