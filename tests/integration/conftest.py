"""The real Asterisk 22 lab, brought up once per test run. If it cannot start, every test that
needs it fails with the reason: integration tests never skip."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from acdbridge.errors import LabError
from acdbridge.lab import pbx
from tests.conftest import LAB_FACTS


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.asterisk)


@pytest.fixture(scope="session")
def lab_settings() -> pbx.LabSettings:
    return pbx.LabSettings()


@pytest.fixture(scope="session")
def lab(lab_settings: pbx.LabSettings, request: pytest.FixtureRequest) -> Iterator[pbx.LabSettings]:
    was_running = pbx.running_state(lab_settings) is not None
    try:
        pbx.up(lab_settings, print)
    except LabError as exc:
        pytest.fail(f"the Asterisk lab could not start: {exc}", pytrace=False)
    version = pbx.asterisk_cli(lab_settings.root, "core show version").stdout.split(" built by")[0]
    ami = f"{lab_settings.host}:{lab_settings.ami_port}"
    request.config.stash[LAB_FACTS] = f"{version} in {lab_settings.root}, AMI {ami}"
    yield lab_settings
    if not was_running:  # leave a lab someone else started as we found it
        pbx.down(lab_settings, print)
