"""Where our cgroup v2 directory is, read from /proc's text for every setup, and how ours are named."""

from __future__ import annotations

from pathlib import PurePosixPath

from supervisor.system import cgrouppath

# A hybrid host (this test machine's layout): v1 controllers, cgroup2 at /sys/fs/cgroup/unified.
HYBRID_CGROUP = """9:name=systemd:/
8:pids:/
4:memory:/process_api/fc58b5d2
1:cpu:/
0::/
"""
HYBRID_MOUNTINFO = """31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

# A unified host under systemd: the unit's cgroup, one optional field (shared:) in mountinfo.
UNIT_CGROUP = "0::/system.slice/jarlpm.service\n"
UNIFIED_MOUNTINFO = """22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
"""

# cgroup v1 only: no 0:: line, no cgroup2 mount.
V1_CGROUP = """12:pids:/user.slice
1:name=systemd:/user.slice/user-1000.slice/session-2.scope
"""
V1_MOUNTINFO = """25 24 0:22 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
26 24 0:23 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
"""

# A container without its own cgroup namespace: /sys/fs/cgroup is the container's subtree.
CONTAINER_CGROUP = "0::/docker/4f1e2d\n"
CONTAINER_MOUNTINFO = "700 650 0:30 /docker/4f1e2d /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n"


class TestOwnDirectory:
    """The directory of our cgroup v2, or None where there is none to manage."""

    def test_hybrid_host_uses_the_unified_mount(self) -> None:
        """Hybrid: the 0:: line beside the v1 lines, cgroup2 mounted at /sys/fs/cgroup/unified."""
        assert cgrouppath.own_directory(HYBRID_CGROUP, HYBRID_MOUNTINFO) == PurePosixPath("/sys/fs/cgroup/unified")

    def test_systemd_unit_on_a_unified_host(self) -> None:
        """A nested path (the unit's cgroup) joins the mount point; optional fields are skipped."""
        assert (cgrouppath.own_directory(UNIT_CGROUP, UNIFIED_MOUNTINFO)
                == PurePosixPath("/sys/fs/cgroup/system.slice/jarlpm.service"))

    def test_v1_only_has_none(self) -> None:
        """No 0:: line and no cgroup2 mount: nothing to own."""
        assert cgrouppath.own_directory(V1_CGROUP, V1_MOUNTINFO) is None

    def test_in_v2_but_not_mounted(self) -> None:
        """A 0:: line but no cgroup2 mount in our mount namespace: None."""
        assert cgrouppath.own_directory(UNIT_CGROUP, V1_MOUNTINFO) is None

    def test_container_mounting_its_subtree(self) -> None:
        """A mount whose root is our own path: its mount point is our directory."""
        assert cgrouppath.own_directory(CONTAINER_CGROUP, CONTAINER_MOUNTINFO) == PurePosixPath("/sys/fs/cgroup")

    def test_path_outside_the_mounted_subtree(self) -> None:
        """Our path not under the mount's root: not reachable from here."""
        assert cgrouppath.own_directory("0::/system.slice/other\n", CONTAINER_MOUNTINFO) is None

    def test_outside_our_cgroup_namespace(self) -> None:
        """A path shown as /.. (outside our cgroup namespace) is never ours."""
        assert cgrouppath.own_directory("0::/../../user.slice\n", UNIFIED_MOUNTINFO) is None

    def test_escaped_mount_point(self) -> None:
        """mountinfo writes a space as \\040."""
        mountinfo = "35 24 0:30 / /mnt/cgroup\\040v2 rw - cgroup2 cgroup2 rw\n"
        assert cgrouppath.own_directory("0::/a\n", mountinfo) == PurePosixPath("/mnt/cgroup v2/a")


class TestNames:
    """A run's directory names its supervisor's pid; leaves never repeat within a run."""

    def test_run_name_round_trip(self) -> None:
        """The pid comes back out of the name; names not ours give None."""
        assert cgrouppath.run_pid(cgrouppath.run_name(4242, "9f3a61c2")) == 4242
        assert cgrouppath.run_pid("jarlpm-probe-12") is None
        assert cgrouppath.run_pid("system.slice") is None

    def test_leaf_names(self) -> None:
        """A slot's leaf names its slot and sequence; a standby's (negative slot) only the sequence."""
        assert cgrouppath.leaf_name("server", 0, 3) == "server-0-3"
        assert cgrouppath.leaf_name("server", -1, 4) == "server-4"


class TestPopulated:
    """cgroup.events tells an empty cgroup from one still holding a process."""

    def test_populated_flag(self) -> None:
        assert cgrouppath.populated("populated 1\nfrozen 0\n") is True
        assert cgrouppath.populated("populated 0\nfrozen 0\n") is False
        assert cgrouppath.populated("") is True  # unreadable as expected: not removable yet
