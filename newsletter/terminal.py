"""Text safe for an operator's terminal, for every place that prints (the CLI, the logs).

Names, titles, URLs and error messages come from subscribers, publishers and remote servers; ESC,
BEL or a bidi override in them would drive the terminal. Control characters are removed from what
is shown; JSON keeps every character but escapes the ones a terminal acts on.
"""

from __future__ import annotations

import json
import re
from typing import Any

# C0 controls but newline and tab, DEL, C1 controls, and the invisible bidi and line controls
# that reorder or hide what the terminal shows.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# In JSON: the same set, beyond what json.dumps already escapes (it escapes C0 itself).
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def clean(text: object) -> str:
    """`text` with every control character removed: safe to show on a terminal."""
    return _UNSAFE.sub("", str(text))


def json_text(data: Any, indent: int | None = 2) -> str:
    """JSON with non-ASCII kept readable but every character a terminal acts on escaped."""
    text = json.dumps(data, indent=indent, ensure_ascii=False, default=str)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
