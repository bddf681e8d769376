"""One path from AMI bytes to records, shared by the live daemon and `acdbridge replay`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from acdbridge.core.ami import AmiMessage, FrameParser
from acdbridge.core.calls import CallTracker

Record = dict[str, Any]


class Pipeline:
    def __init__(
        self,
        wrapup_s: dict[str, float] | None = None,
        on_visit: Callable[[Record], None] | None = None,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        self.parser = FrameParser(on_error=on_problem)
        self.calls = CallTracker(wrapup_s, on_visit=on_visit, on_problem=on_problem)

    def new_connection(self) -> None:
        """A new AMI connection starts with a banner: parse it afresh; tracked state stays."""
        self.parser = FrameParser(on_error=self.parser.on_error)

    def feed_bytes(self, data: bytes, received_at: float = 0.0) -> list[AmiMessage]:
        messages = self.parser.feed(data)
        for msg in messages:
            self.calls.feed(msg, received_at)
        return messages

    def feed(self, msg: AmiMessage, received_at: float = 0.0) -> None:
        self.calls.feed(msg, received_at)

    def finish(self) -> None:
        self.calls.finish()
