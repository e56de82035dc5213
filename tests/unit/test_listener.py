"""Socket activation's protocol (sd_listen_fds): whose socket it is, and what our children inherit."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from procs import REPO

from supervisor.supervision import listener


class TestActivated:
    """LISTEN_FDS/LISTEN_PID are honoured only for this process, and never passed on."""

    def test_not_for_us_when_pid_differs(self) -> None:
        """A parent's activation (LISTEN_PID of another process) is ignored, and the variables removed."""
        env = {"LISTEN_FDS": "1", "LISTEN_PID": "1", "LISTEN_FDNAMES": "x", "OTHER": "kept"}
        assert listener.activated(env, pid=4242) is None
        assert env == {"OTHER": "kept"}

    def test_nothing_passed(self) -> None:
        assert listener.activated({}, pid=1) is None
        assert listener.activated({"LISTEN_FDS": "0", "LISTEN_PID": "1"}, pid=1) is None

    def test_takes_descriptor_3(self) -> None:
        """In a fresh process with a listening socket on fd 3, that socket is used, with its address."""
        code = textwrap.dedent("""
            import os, socket
            from supervisor.supervision import listener
            s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
            os.dup2(s.fileno(), 3)
            env = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid())}
            got = listener.activated(env)
            print(listener.describe(got) == s.getsockname(), got.get_inheritable(), env == {})
        """)
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert out.stdout.split() == ["True", "True", "True"], out.stderr

    def test_a_socket_that_does_not_listen_is_a_configuration_error(self) -> None:
        """fd 3 not listening: exit 78 with a hint at the socket unit."""
        code = textwrap.dedent("""
            import os, socket
            from supervisor.contract.exitcodes import SupervisorError
            from supervisor.supervision import listener
            s = socket.socket(); os.dup2(s.fileno(), 3)
            try:
                listener.activated({"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid())})
            except SupervisorError as exc:
                print(int(exc.exit_code))
        """)
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == "78", out.stderr
