"""Standard MIDI files assembled byte by byte.

A MIDI library writes only well-formed files; these pieces also make the malformed ones the
reader must refuse or survive: chunk lengths that lie, headers naming more tracks than follow,
tracks without an end-of-track event, any division. The robustness and property tests and
benchmarks/fuzz_midi.py build their inputs from them; the toolkit reads and writes MIDI through
`converters.midi_io`.
"""

from collections.abc import Iterable

END_OF_TRACK = b"\x00\xff\x2f\x00"  # delta 0, then the end-of-track meta event


def vlq(value: int) -> bytes:
    """A variable-length quantity: 7 bits a byte, most significant first, the high bit set on
    every byte but the last."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def chunk(kind: bytes, body: bytes, length: int | None = None) -> bytes:
    """A chunk (b"MThd", b"MTrk") with its 4-byte length: the body's, or `length` (modulo
    2**32) when a wrong one is wanted."""
    size = len(body) if length is None else length % 2**32
    return kind + size.to_bytes(4, "big") + body


def header_chunk(tracks: int, division: int = 480, midi_format: int = 1) -> bytes:
    """The MThd chunk: format, the number of tracks it announces and the division (ticks per
    quarter note), each 16 bits."""
    fields = (midi_format, tracks, division)
    return chunk(b"MThd", b"".join(value.to_bytes(2, "big") for value in fields))


def track_body(events: Iterable[tuple[int, bytes]], end: bytes = END_OF_TRACK) -> bytes:
    """The body of an MTrk chunk: each event's bytes after its delta time in ticks, then `end`
    (b"" leaves the track unterminated)."""
    return b"".join(vlq(delta) + event for delta, event in events) + end
