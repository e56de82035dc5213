"""Specifications of ``supervisor.contract.control``: the supervisor↔server messages and their framing."""

from __future__ import annotations

import socket

import pytest

from supervisor.contract import control


class TestFraming:
    """One message per line, whatever way the bytes arrive."""

    def test_round_trip_through_a_socketpair(self) -> None:
        """What one end encodes, the other decodes, in order."""
        left, right = socket.socketpair()
        with left, right:
            for message in (control.GO, control.DRAIN, control.CLOSE):
                left.sendall(control.encode(message))
            decoder = control.Decoder()
            received: list[str] = []
            while len(received) < 3:
                received += decoder.feed(right.recv(4096))
        assert received == [control.GO, control.DRAIN, control.CLOSE]

    def test_partial_lines_wait_for_the_rest(self) -> None:
        """A message split across reads comes out once, when its line is complete."""
        decoder = control.Decoder()
        wire = control.encode(control.READY) + control.encode(control.DRAIN)
        assert decoder.feed(wire[:3]) == []
        assert decoder.feed(wire[3:7]) == [control.READY]
        assert decoder.feed(wire[7:]) == [control.DRAIN]

    def test_empty_lines_and_bad_bytes_do_not_break_the_reader(self) -> None:
        """Blank lines are skipped; undecodable bytes become replacement characters, not an exception."""
        assert control.Decoder().feed(b"\n\ndrain\n\xff\n") == [control.DRAIN, "\ufffd"]

    @pytest.mark.parametrize("bad", ["", "go\ndrain"])
    def test_a_message_is_one_line(self, bad: str) -> None:
        with pytest.raises(ValueError):
            control.encode(bad)

    def test_directions_do_not_overlap(self) -> None:
        """Each word has one direction, so a misrouted message cannot be mistaken for another."""
        assert not control.TO_SERVER & control.TO_SUPERVISOR
        assert control.MESSAGES == control.TO_SERVER | control.TO_SUPERVISOR
