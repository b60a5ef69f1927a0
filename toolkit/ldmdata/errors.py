"""The one error type users see: a single clear line, exit code 2 from the CLI."""


class LdmdataError(Exception):
    """A problem with the user's input, options, params or environment (not a bug)."""


class InputRejected(Exception):
    """One input sample cannot be used; the build records ``reason`` in rejects.jsonl."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
