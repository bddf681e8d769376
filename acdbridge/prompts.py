"""Spoken prompts built offline: espeak-ng speaks the text, sox turns it into the 8 kHz mono 16-bit
WAV that Asterisk's format_wav plays. A prompt lands in `<sounds>/<language>/acdbridge/<name>.wav`,
so dialplan plays it as `acdbridge/<name>` and Asterisk picks the file from CHANNEL(language)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from acdbridge.errors import AcdError

# Asterisk language code -> espeak-ng voice. Not plain `cmn`: espeak-ng 1.51 (Debian 12) turns hanzi
# into pinyin with tone digits and `cmn` then reads the digits in English ("nin two hao three").
LANGUAGE_VOICES: dict[str, str] = {"zh": "cmn-latn-pinyin", "es": "es", "en": "en-us"}
SPEED_WPM = 150  # a little slower than espeak-ng's 175: narrowband phone audio loses clarity
# Trim leading silence, resample, peak-normalise to -1 dBFS, 10 ms fade-in so the cut does not click.
SOX_EFFECTS = ["silence", "1", "0.05", "0.1%", "rate", "8000", "norm", "-1", "fade", "t", "0.01"]
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
TOOL_PACKAGES = {"espeak-ng": "espeak-ng", "sox": "sox"}  # command -> Debian package
TIMEOUT_S = 60.0


class PromptError(AcdError):
    code = "prompt"
    exit_status = 2


@dataclass
class BuildReport:
    built: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    seconds: float = 0.0  # total audio duration of all prompts, built or skipped


def prompt_path(sounds_dir: Path, language: str, name: str) -> Path:
    return sounds_dir / language / "acdbridge" / f"{name}.wav"


def _run(args: list[str], what: str, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise PromptError(f"{args[0]} took over {TIMEOUT_S:.0f} s for {what}") from exc
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise PromptError(f"{args[0]} failed (exit {done.returncode}) for {what}", detail=tail)
    return done.stdout


def _digest(voice: str, text: str) -> str:
    # The render settings are part of the key, so changing them rebuilds every prompt.
    key = "\0".join([voice, str(SPEED_WPM), " ".join(SOX_EFFECTS), text])
    return hashlib.sha256(key.encode()).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; Asterisk runs as its own user
    os.replace(tmp, path)


def _read_manifest(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}  # missing or damaged: everything is rebuilt, which is always safe
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _validate(texts: dict[str, dict[str, str]], sounds_dir: Path) -> None:
    # Everything is checked before anything is built: a typo never leaves a half-built set.
    if not sounds_dir.is_dir():
        raise PromptError(f"sounds directory {sounds_dir} does not exist (Asterisk would never look there)")
    for language, prompts in texts.items():
        if language not in LANGUAGE_VOICES:
            known = ", ".join(sorted(LANGUAGE_VOICES))
            raise PromptError(f"unknown prompt language {language!r}; known languages: {known}")
        for name, text in prompts.items():
            if not NAME_RE.fullmatch(name):
                raise PromptError(f"bad prompt name {name!r} ({language}): must match {NAME_RE.pattern}")
            if not text.strip():
                raise PromptError(f"prompt {language}/{name} has empty text")
    for tool, package in TOOL_PACKAGES.items():
        if shutil.which(tool) is None:
            raise PromptError(f"{tool} is not installed: apt-get install {package} (or make deps)")


def _render(voice: str, text: str, out: Path) -> None:
    what = str(out)
    with tempfile.TemporaryDirectory(prefix="acdbridge-prompt-") as tmpdir:
        raw = Path(tmpdir) / "espeak.wav"
        # Text on stdin (-b 1: UTF-8 whatever the locale) so a leading "-" is never taken as an option.
        espeak = ["espeak-ng", "-v", voice, "-s", str(SPEED_WPM), "-b", "1", "--stdin", "-w", str(raw)]
        _run(espeak, what, stdin=text)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".wav")
        os.close(fd)
        try:
            fmt = ["-t", "wav", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"]
            _run(["sox", "-R", str(raw), *fmt, tmp, *SOX_EFFECTS], what)  # -R: same dither, same bytes
            os.chmod(tmp, 0o644)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def language_dir(sounds_dir: Path, language: str, root: Path | None = None) -> Path:
    """sounds/<language>, its symlinks followed; an absolute link (Debian's en -> /etc/alternatives/...)
    is read inside `root` when the sounds live in a chroot, as the lab's do."""
    path = sounds_dir / language
    for _ in range(8):
        if not path.is_symlink():
            break
        target = os.readlink(path)
        absolute = root is not None and target.startswith("/")
        path = root / target.lstrip("/") if absolute and root is not None else path.parent / target
    return path


def build_prompts(
    texts: dict[str, dict[str, str]],
    sounds_dir: Path,
    *,
    say: Callable[[str], None] = print,
    force: bool = False,
    root: Path | None = None,
) -> BuildReport:
    _validate(texts, sounds_dir)
    report = BuildReport()
    for language, prompts in texts.items():
        voice = LANGUAGE_VOICES[language]
        folder = language_dir(sounds_dir, language, root) / "acdbridge"
        for d in (folder.parent, folder):
            if not d.is_dir():  # only directories we create; en/ and the like belong to Debian
                d.mkdir()
                d.chmod(0o755)
        manifest_path = folder / ".manifest.json"
        manifest = _read_manifest(manifest_path)
        for name, text in prompts.items():
            path, digest = folder / f"{name}.wav", _digest(voice, text)
            if not force and manifest.get(name) == digest and path.exists():
                report.skipped.append(path)
                state = "unchanged"
            else:
                _render(voice, text, path)
                manifest[name] = digest
                # Saved after each prompt so an interrupted build keeps what it finished.
                _write_atomic(manifest_path, json.dumps(manifest, indent=1, sort_keys=True).encode())
                report.built.append(path)
                state = "built"
            seconds = float(_run(["sox", "--i", "-D", str(path)], str(path)).strip())
            report.seconds += seconds
            say(f"{state} {path} ({seconds:.2f} s)")
    return report
