"""Session titles taken from the first user message."""

from __future__ import annotations

TITLE_CHARS = 60


def title_from(text: str) -> str | None:
    """First line, cut at a word boundary to at most TITLE_CHARS characters."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if len(line) <= TITLE_CHARS:
        return line or None
    cut = line[:TITLE_CHARS]
    if not (cut[-1].isspace() or line[TITLE_CHARS].isspace()):  # inside a word: drop that word
        words = cut.rsplit(None, 1)
        if len(words) == 2:  # (a single word longer than the limit is cut hard)
            cut = words[0]
    return cut.rstrip(" ,;:.-") or line[:TITLE_CHARS]
