"""Specifications of ``supervisor.supervision.server_process``'s exit decoding, with wait statuses of real processes."""

from __future__ import annotations

import os
import signal

import pytest

from supervisor.supervision.server_process import ExitStatus, exit_hint, unresponsive_hint


def wait_status(script: str) -> int:
    """Run ``sh -c script`` and return the raw status os.waitpid reports for it."""
    pid = os.posix_spawnp("sh", ["sh", "-c", script], dict(os.environ))
    _, status = os.waitpid(pid, 0)
    return status


class TestFromWaitStatus:
    """A wait status decodes to an exit code or to the signal that killed the process, never both."""

    def test_exit_code(self) -> None:
        status = ExitStatus.from_wait_status(wait_status("exit 3"))
        assert status == ExitStatus(code=3, signal=None)
        assert status.as_fields() == {"exit_code": 3}
        assert status.describe() == "exit 3"
        assert status.signal_name is None

    def test_clean_exit(self) -> None:
        assert ExitStatus.from_wait_status(wait_status("exit 0")) == ExitStatus(code=0, signal=None)

    def test_sigkill(self) -> None:
        status = ExitStatus.from_wait_status(wait_status("kill -9 $$"))
        assert status == ExitStatus(code=None, signal=signal.SIGKILL)
        assert status.as_fields() == {"signal": "SIGKILL"}
        assert status.describe() == "killed by SIGKILL"

    def test_sigterm_is_not_mistaken_for_an_exit_code(self) -> None:
        # `status >> 8` would say exit 0 here.
        status = ExitStatus.from_wait_status(wait_status("kill -TERM $$"))
        assert (status.code, status.signal_name) == (None, "SIGTERM")

    def test_unknown_signal_number_gets_a_name(self) -> None:
        assert ExitStatus(code=None, signal=200).signal_name == "SIG200"


class TestExitHint:
    """Each kind of exit gets a hint that says where to look."""

    def test_requested_stop(self) -> None:
        hint = exit_hint(ExitStatus(None, signal.SIGKILL), was_ready=True, requested=True)
        assert hint == "stopped by the supervisor"

    @pytest.mark.parametrize("was_ready", [True, False])
    def test_sigkill_suggests_the_oom_killer(self, was_ready: bool) -> None:
        hint = exit_hint(ExitStatus(None, signal.SIGKILL), was_ready=was_ready, requested=False)
        assert "out of memory?" in hint and "dmesg" in hint

    def test_other_signal_from_outside(self) -> None:
        hint = exit_hint(ExitStatus(None, signal.SIGSEGV), was_ready=True, requested=False)
        assert hint == "killed by SIGSEGV from outside the supervisor"

    def test_lifespan_failure(self) -> None:
        assert "lifespan" in exit_hint(ExitStatus(3, None), was_ready=False, requested=False)

    def test_died_before_ready(self) -> None:
        assert "before becoming ready" in exit_hint(ExitStatus(1, None), was_ready=False, requested=False)

    def test_exited_on_its_own(self) -> None:
        assert "exited on its own" in exit_hint(ExitStatus(0, None), was_ready=True, requested=False)


class TestUnresponsiveHint:
    """child.unresponsive tells a stopped process from a blocking call."""

    def test_stopped_process_is_not_blamed_on_code(self) -> None:
        hint = unresponsive_hint("stopped", has_stacks=False)
        assert "stopped" in hint and "blocking call" not in hint

    def test_no_stacks_blames_no_python_call(self) -> None:
        assert "no Python call" in unresponsive_hint("sleeping", has_stacks=False)

    def test_stacks_point_at_a_blocking_call(self) -> None:
        assert "blocking call" in unresponsive_hint("sleeping", has_stacks=True)
