"""Errors acdbridge reports to people. Each carries a stable code (part of the CLI's contract)
and a message that names the problem and, where there is one, the fix."""


class AcdError(Exception):
    code = "error"
    exit_status = 1

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.message}\n{self.detail}" if self.detail else self.message


class LabError(AcdError):
    """The real-Asterisk lab could not do what was asked."""

    code = "lab"


class ScenarioError(AcdError):
    """A traffic scenario file is invalid; the message names the file and key."""

    code = "scenario"
    exit_status = 2
