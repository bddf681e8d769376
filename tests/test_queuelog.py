from __future__ import annotations

from pathlib import Path

from acdbridge.lab import queuelog

SAMPLE = """\
1795393812|acdlab-1795393812.256|water|NONE|ENTERQUEUE||555000005|1
1795393830|acdlab-1795393812.256|water|Li Wei|CONNECT|18|acdlab-1795393830.300|2
1795393857|acdlab-1795393812.256|water|Li Wei|BLINDTRANSFER|6100|inbound|18|27|2
1795393800|MANAGER|water|Li Wei|ADDMEMBER|
1795393800|NONE|NONE|NONE|QUEUESTART|
not a queue_log line
"""


def test_parse_lines_reads_fields_and_skips_garbage() -> None:
    entries = list(queuelog.parse_lines(SAMPLE.splitlines()))
    assert len(entries) == 5
    blind = entries[2]
    assert (blind.callid, blind.queue, blind.agent) == ("acdlab-1795393812.256", "water", "Li Wei")
    assert blind.event == "BLINDTRANSFER"
    assert blind.data == ("6100", "inbound", "18", "27", "2")


def test_read_filters_by_time_and_counts_events(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    path.write_text(SAMPLE)
    entries = queuelog.read(path, since=1795393812.9)  # queue_log has whole seconds
    assert [e.event for e in entries] == ["ENTERQUEUE", "CONNECT", "BLINDTRANSFER"]
    counts = queuelog.event_counts(queuelog.read(path))
    assert counts["ENTERQUEUE"] == 1 and counts["QUEUESTART"] == 0 and counts["ADDMEMBER"] == 1
    assert queuelog.read(tmp_path / "missing") == []
