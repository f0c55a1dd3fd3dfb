"""Which codec a call is taken in (telephony/stasis.py ``narrowband_only``): a caller's
line that carries G.711 alone is taken as it is; anything with G.722 (or unknown) gets
``media.format``."""

from __future__ import annotations

import pytest

from smartpbx_ari.telephony.stasis import narrowband_only

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("native", "codec"), [
    ("(ulaw)", "ulaw"), ("(alaw)", "alaw"), ("ULAW", "ulaw"),
    ("(g722)", ""), ("(g722|ulaw)", ""), ("(ulaw|alaw)", ""), ("(opus)", ""), ("", ""),
])
def test_only_a_line_of_g711_alone_is_taken_in_its_codec(native: str, codec: str) -> None:
    assert narrowband_only(native) == codec
