"""Text from operators and admins: markup out, the text kept."""

from __future__ import annotations

import html.parser


class _TextOnly(html.parser.HTMLParser):
    """Markup out, text kept; a script's or style's content goes with its tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style") and self._skip > 0

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def plain(text: str) -> str:
    parser = _TextOnly()
    parser.feed(text)
    parser.close()
    return " ".join("".join(parser.parts).replace("<", " ").replace(">", " ").split())
