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


class StartupError(AcdError):
    """`acdbridge run` cannot start; the message names the cause. Each cause has its own exit
    status (docs/daemon.md), so a supervisor or a script can tell them apart without parsing."""

    code = "startup"
    exit_status = 10


class HttpPortInUse(StartupError):
    code = "http_port_in_use"
    exit_status = 11


class AgiPortInUse(StartupError):
    code = "agi_port_in_use"
    exit_status = 12


class StoreUnusable(StartupError):
    """The store cannot be opened for writing: a directory, a read-only place, not SQLite."""

    code = "store_unusable"
    exit_status = 13


class StoreLocked(StartupError):
    """Another daemon holds the store's lock file: two writers would interleave their records."""

    code = "store_locked"
    exit_status = 14


class DirectoryUnreadable(StartupError):
    """The caller directory cannot be read (a greeting would then greet nobody by name)."""

    code = "directory_unreadable"
    exit_status = 15
