"""Spoken prompts built with the real espeak-ng and sox (installed by `make deps`), checked as the
8 kHz mono 16-bit WAV that Asterisk's format_wav reads."""

from __future__ import annotations

import shutil
import stat
import subprocess
import wave
from pathlib import Path

import pytest

from acdbridge import prompts
from acdbridge.prompts import LANGUAGE_VOICES, PromptError, build_prompts, prompt_path

GREETINGS = {
    "zh": {"greeting": "您好，请讲"},  # noqa: RUF001 - the fullwidth comma is real Chinese punctuation
    "es": {
        "greeting": "Hola, el operador de la línea directa de suministro de agua está a su servicio, "
        "por favor hable"
    },
    "en": {"greeting": "Hello, water supply hotline, please speak"},
}


@pytest.fixture(autouse=True)
def _tools() -> None:
    # Fail, never skip: without the tools the prompts cannot be built on the lab either.
    for tool in ("espeak-ng", "sox"):
        assert shutil.which(tool), f"{tool} is not installed: run `make deps` (apt-get install {tool})"


def build(texts: dict[str, dict[str, str]], sounds: Path, *, force: bool = False) -> prompts.BuildReport:
    return build_prompts(texts, sounds, say=lambda _line: None, force=force)


def test_builds_asterisk_wav_for_each_language(tmp_path: Path) -> None:
    report = build(GREETINGS, tmp_path)
    paths = [prompt_path(tmp_path, lang, "greeting") for lang in ("zh", "es", "en")]
    assert paths[0] == tmp_path / "zh" / "acdbridge" / "greeting.wav"
    assert report.built == paths and report.skipped == []
    total = 0.0
    for path in paths:
        with wave.open(str(path)) as w:
            params = (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getcomptype())
            assert params == (8000, 1, 2, "NONE"), f"{path}: not 8 kHz mono 16-bit PCM: {params}"
            seconds = w.getnframes() / w.getframerate()
        assert 0.5 < seconds < 15, f"{path}: {seconds:.2f} s"
        total += seconds
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755
        assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o755
    assert report.seconds == pytest.approx(total, abs=0.01)
    # the long Spanish sentence is clearly longer than the four-syllable Mandarin one
    assert paths[1].stat().st_size > 2 * paths[0].stat().st_size
    assert not list(tmp_path.rglob(".greeting.wav.*")), "temporary files left behind"


def test_mandarin_voice_reads_hanzi_not_english_tone_digits() -> None:
    # espeak-ng 1.51's plain `cmn` voice reads 您好 as "nin two hao three": a switch to English.
    phonemes = subprocess.run(
        ["espeak-ng", "-q", "-x", "-v", LANGUAGE_VOICES["zh"], GREETINGS["zh"]["greeting"]],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert phonemes.strip() and "(en)" not in phonemes, phonemes


def test_rebuild_skips_unchanged_rebuilds_changed_and_force(tmp_path: Path) -> None:
    build(GREETINGS, tmp_path)
    again = build(GREETINGS, tmp_path)
    assert again.built == [] and len(again.skipped) == 3 and again.seconds > 1.5

    changed = {**GREETINGS, "en": {"greeting": "Hello, water supply hotline, an operator will answer"}}
    third = build(changed, tmp_path)
    assert third.built == [prompt_path(tmp_path, "en", "greeting")] and len(third.skipped) == 2

    before = {p: p.read_bytes() for p in third.built + third.skipped}
    forced = build(changed, tmp_path, force=True)
    assert len(forced.built) == 3 and forced.skipped == []
    assert {p: p.read_bytes() for p in forced.built} == before, "a rebuild gives the same bytes"


def test_deleted_wav_is_rebuilt(tmp_path: Path) -> None:
    build(GREETINGS, tmp_path)
    prompt_path(tmp_path, "zh", "greeting").unlink()
    assert build(GREETINGS, tmp_path).built == [prompt_path(tmp_path, "zh", "greeting")]


@pytest.mark.parametrize(
    ("texts", "match"),
    [
        ({"fr": {"greeting": "Bonjour"}}, r"unknown prompt language 'fr'; known languages: en, es, zh"),
        ({"en": {"Greeting": "Hello"}}, r"bad prompt name 'Greeting'"),
        ({"en": {"../x": "Hello"}}, r"bad prompt name '\.\./x'"),
        ({"en": {"greeting": "  "}}, r"prompt en/greeting has empty text"),
    ],
)
def test_invalid_input_is_refused_before_building(
    tmp_path: Path, texts: dict[str, dict[str, str]], match: str
) -> None:
    with pytest.raises(PromptError, match=match):
        build({"zh": GREETINGS["zh"], **texts}, tmp_path)
    assert list(tmp_path.iterdir()) == [], "nothing is built when any prompt is invalid"


def test_missing_sounds_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match=r"sounds directory .*/nowhere does not exist"):
        build(GREETINGS, tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


def test_missing_tool_names_debian_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PromptError, match=r"espeak-ng is not installed: apt-get install espeak-ng"):
        build(GREETINGS, tmp_path)


def test_failing_tool_shows_its_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LANGUAGE_VOICES, "en", "nosuchvoice")
    with pytest.raises(PromptError, match=r"espeak-ng failed \(exit 1\)") as caught:
        build({"en": GREETINGS["en"]}, tmp_path)
    assert "voice does not exist" in str(caught.value)
    assert not prompt_path(tmp_path, "en", "greeting").exists()
