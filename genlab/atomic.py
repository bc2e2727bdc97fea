"""The one way genlab writes a file that must never be seen half-written (checkpoints,
feature statistics, eval JSON, reports): a temporary file in the same folder, flushed to
disk, renamed over the target, the folder entry flushed too. A crash, a signal or a full
disk at any moment leaves either the old file or the new one, and no temporary behind."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO

from genlab.errors import RunError


class NoSpaceError(RunError):
    """The disk filled up during a write; the target was left as it was."""

    def __init__(self, message: str, device: str = ""):
        super().__init__(message)
        self.device = device


def _no_space(path: Path, kept: str) -> NoSpaceError:
    device = mount_point(path.parent)
    return NoSpaceError(f"no space left on {device} writing {path}; {kept}", device)


def temp_path(path: Path) -> Path:
    """The temporary name a write to `path` by this process uses: .<name>.<pid>.tmp"""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call write(f) on a binary file object, then publish the result under `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _no_space(path, f"the previous {path} is intact" if path.exists() else f"{path} was not written") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def link_or_copy(src: Path, dst: Path) -> None:
    """Atomically make dst the same file as src: a hard link renamed over dst, or a copy
    where the file system has no hard links."""
    tmp = temp_path(dst)
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _no_space(dst, f"{src} is complete") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(dst.parent)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporaries that killed writers (kill -9, power loss) left in `folder`:
    .<name>.<pid>.tmp files whose process no longer runs. Returns what was removed."""
    removed = []
    if not folder.is_dir():
        return removed
    for tmp in folder.glob(".*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mount_point(path: Path) -> str:
    """The file system that holds `path`, as `df` names it: device (mounted at /point)."""
    p = Path(os.path.abspath(path))
    while not p.exists():
        p = p.parent
    while not os.path.ismount(p):
        p = p.parent
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            device, point, *_ = line.split()
            if point == str(p):
                return f"{device} (mounted at {p})"
    except OSError:
        pass
    return str(p)
