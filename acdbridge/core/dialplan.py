"""What a channel's own events tell the call tracker where the queue events fall short. Sans-IO.

A caller blocked at join (JOINEMPTY, FULL) gets no queue event naming the queue, only the
QUEUESTATUS VarSet: the dialplan's Newexten for `Queue(name,...)` names it. An attended transfer
whose consult call went to a phone (not into a dialplan exten) leaves TransferTargetExten empty:
the number dialled is in SecondTransfererExten, else in the target channel's name."""

from __future__ import annotations

from collections.abc import Mapping

from acdbridge.core.ledger import put_newest

QUEUE_APP_MARKER = b"\r\nApplication: Queue\r\n"  # the only Newexten frames parsed (core/ami.py)


class DialplanQueues:
    """channel uniqueid -> the queue its Queue() application names (bounded: oldest forgotten)."""

    def __init__(self, kept: int = 10_000) -> None:
        self.kept = kept
        self.queue_of: dict[str, str] = {}

    def newexten(self, headers: Mapping[str, str]) -> None:
        uid = headers.get("Uniqueid", "")
        queue = headers.get("AppData", "").split(",")[0].strip()
        if headers.get("Application") == "Queue" and uid and queue:
            put_newest(self.queue_of, uid, queue, self.kept)

    def hangup(self, uid: str) -> None:
        self.queue_of.pop(uid, None)


def transfer_target(h: Mapping[str, str]) -> str:
    """exten@context of an attended transfer's target (PJSIP/2001-0000002a names phone 2001)."""
    exten, context = h.get("TransferTargetExten", ""), h.get("TransferTargetContext", "")
    if exten:
        return f"{exten}@{context}"
    # the consult call's own channel dialled the number, in its context
    exten, context = h.get("SecondTransfererExten", ""), h.get("SecondTransfererContext", "") or context
    if not exten:
        peer = h.get("TransferTargetChannel", "").partition("/")[2]
        exten = peer.rpartition("-")[0] or peer
    return f"{exten}@{context}"
