"""What a submission's code can see and touch while it is graded.

On Linux, where unprivileged user namespaces are allowed, the worker (and so
the kernel it starts) runs under ``unshare --user --map-root-user --pid --fork
--mount --net --kill-child``: the worker is process 1 of a new PID namespace,
which the kernel cannot signal and whose end kills every process left in it
(``setsid`` daemons included); it has no network but a loopback for the
kernel's sockets; a fresh ``/proc`` shows only its own processes. Before any
submission code exists, :func:`enter` (run by the worker as process 1) makes
every mount read-only except the submission's folder, brings ``lo`` up, then
gives up every capability and becomes non-dumpable, so neither the kernel nor
the graded code can undo the read-only mounts or open the worker's memory and
file descriptors. bubblewrap would do the same; it is not used, so that one
tested path exists.

Elsewhere (macOS, Windows, Linux without user namespaces) the grader still
isolates what it can (own folders, ``python -I``, results over a pipe, a process
group killed at the end) and says so in the log and in the CSV's notes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

__all__ = ["NAMESPACES", "enter", "harden", "probe", "wrap"]

NAMESPACES = "namespaces"
_UNSHARE = ["--user", "--map-root-user", "--pid", "--fork", "--mount", "--net", "--kill-child"]
_probed: dict[str, str] = {}


def probe(mode: str = "auto") -> str:
    """``"namespaces"`` when the worker can run in its own namespaces here, else
    ``"none: <why>"``. ``mode`` "none" (or COURSE_LIB_GRADE_ISOLATION=none)
    turns isolation off, e.g. to compare."""
    if mode == "none" or os.environ.get("COURSE_LIB_GRADE_ISOLATION") == "none":
        return "none: turned off (isolation=\"none\" or COURSE_LIB_GRADE_ISOLATION=none)"
    if mode in _probed:
        return _probed[mode]
    if not sys.platform.startswith("linux"):
        why = f"none: {sys.platform} has no Linux namespaces"
    elif shutil.which("unshare") is None:
        why = "none: `unshare` (util-linux) is not installed"
    else:
        try:
            done = subprocess.run(["unshare", *_UNSHARE, "true"], stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=20)
            why = NAMESPACES if done.returncode == 0 else (
                "none: unprivileged user namespaces are not allowed here ("
                + (done.stderr.decode(errors="replace").strip().splitlines() or ["unshare failed"])[-1][:120] + ")")
        except (OSError, subprocess.SubprocessError) as exc:
            why = f"none: unshare failed ({type(exc).__name__})"
    _probed[mode] = why
    return why


def wrap(cmd: list[str], isolation: str) -> list[str]:
    """The command that starts the worker under ``isolation``."""
    return ["unshare", *_UNSHARE, "--", *cmd] if isolation == NAMESPACES else list(cmd)


# ---------------------------------------------------------------- inside the namespaces (Linux only)

_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_BIND = 2, 4, 8, 4096
_AT_FDCWD, _AT_RECURSIVE, _MOUNT_ATTR_RDONLY = -100, 0x8000, 1
_SYS_MOUNT_SETATTR = 442  # the same number on every architecture (Linux >= 5.12)
_PR_SET_DUMPABLE, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS = 4, 24, 38


def _libc():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    return libc


def _check(result: int, what: str) -> None:
    import ctypes

    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount_setattr(libc, path: str, recursive: bool, set_: int, clear: int) -> None:
    import ctypes

    class MountAttr(ctypes.Structure):
        _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                    ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]

    attr = MountAttr(set_, clear, 0, 0)
    _check(libc.syscall(_SYS_MOUNT_SETATTR, _AT_FDCWD, path.encode(), _AT_RECURSIVE if recursive else 0,
                        ctypes.byref(attr), ctypes.sizeof(attr)), f"read-only mounts ({path})")


def _loopback_up() -> None:
    import fcntl
    import socket
    import struct

    with socket.socket() as s:  # SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP
        flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0)))[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))


def _drop_capabilities(libc) -> None:
    import ctypes

    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
    except (OSError, ValueError):
        last = 63
    for cap in range(last + 1):
        libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    _check(libc.capset(ctypes.byref(Header(0x20080522, 0)), (Data * 2)()), "dropping capabilities")
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def enter(writable: str) -> None:
    """Inside fresh namespaces, as their process 1: a fresh /proc, everything
    read-only but ``writable``, loopback up, then no capabilities left and not
    dumpable. Raises OSError saying which step failed."""
    libc = _libc()
    _check(libc.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None), "a fresh /proc")
    _mount_setattr(libc, "/", True, _MOUNT_ATTR_RDONLY, 0)
    path = os.path.realpath(writable).encode()
    _check(libc.mount(path, path, None, _MS_BIND, None), "binding the submission's folder")
    _mount_setattr(libc, path.decode(), False, 0, _MOUNT_ATTR_RDONLY)
    _loopback_up()
    _drop_capabilities(libc)
    harden()


def harden() -> None:
    """Make this process non-dumpable (Linux): a same-user process can then
    neither read its memory nor open its file descriptors through /proc."""
    if sys.platform.startswith("linux"):
        try:
            _libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
        except OSError:
            pass
