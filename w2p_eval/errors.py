"""User-facing errors: bad input is reported as one line on stderr with exit code 2."""


class InputError(Exception):
    """Bad user input (missing file, wrong format, mismatched checkpoint...).

    The CLI prints ``w2p-eval: error: <message>`` on one line and exits with code 2.
    The message says what was expected and what arrived.
    """

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class MissingWeightsError(InputError):
    """A pretrained model's weights are not on disk (no download happens at run time)."""

    def __init__(self, what: str, filename: str, looked_in: str, how_to_get: str):
        super().__init__(
            f"{what} weights not found: expected {filename} in {looked_in}; get it from {how_to_get}"
        )
        self.filename = filename
        self.looked_in = looked_in


class RunFailed(Exception):
    """A run that cannot go on although its input was valid (e.g. training diverged to NaN).

    The CLI prints ``w2p-eval: failed: <message>`` on one line and exits with code 1; everything
    written before (complete checkpoints) stays valid.
    """

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class EnvironmentFailure(Exception):
    """Valid input, but the machine cannot do it: a results store locked by another process past
    ``--store-timeout``, a store on a full disk or a read-only mount. The CLI prints
    ``w2p-eval: error: <message>`` on one line and exits with code 1 (like an OSError)."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
