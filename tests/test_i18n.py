"""Every word a page shows has its Chinese and Spanish (acdbridge/web/static/i18n.js).

The pages mark static text data-i18n and word what their scripts build with t("..."); a word
missing from a dictionary would show in English on a Chinese or Spanish page without a sound.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

STATIC = Path(__file__).parent.parent / "acdbridge" / "web" / "static"
PAIR = re.compile(r'"((?:[^"\\]|\\.)*)":\s*\n?\s*"(?:[^"\\]|\\.)*"')


def _dictionary(name: str) -> set[str]:
    text = (STATIC / "i18n.js").read_text(encoding="utf-8")
    block = re.search(rf"const {name} = \{{(.*?)\n  \}};", text, re.S)
    assert block, f"no {name} dictionary in i18n.js"
    return {m[1] for m in PAIR.finditer(block[1])}


def _page_words() -> set[str]:
    words: set[str] = set()
    for page in STATIC.glob("*.html"):
        for m in re.finditer(r"<(\w+)[^>]*\bdata-i18n\b[^>]*>([^<]*)<", page.read_text(encoding="utf-8")):
            words.add(html.unescape(m[2]).strip())
    for script in STATIC.glob("*.js"):
        text = script.read_text(encoding="utf-8")
        words |= set(re.findall(r'\bt\("((?:[^"\\]|\\.)*)"', text))
        words |= set(re.findall(r'\bbutton\("([^"]+)"', text))  # supervisor.js words its buttons with t()
    words.discard("")
    return words


@pytest.mark.parametrize("name", ["ZH", "ES"])
def test_every_word_on_a_page_is_in_the_dictionary(name: str) -> None:
    words = _page_words()
    assert {"Supervisor", "Listen", "Sign in", "{shown} of {total} agents"} <= words  # the scan finds them
    missing = sorted(words - _dictionary(name))
    assert missing == [], f"{name} lacks {missing}"
