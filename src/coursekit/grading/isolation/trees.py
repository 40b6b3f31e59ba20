"""Counting and removing folders a kernel wrote, whatever their shape (stdlib only).

A kernel can leave a chain of folders thousands deep, longer than ``PATH_MAX`` and deeper than Python's
recursion limit, where ``os.walk`` (recursive before Python 3.12) and ``shutil.rmtree`` raise
``RecursionError``. These walk one folder at a time by descriptor (``openat`` with ``O_NOFOLLOW``), never
recurse, never follow a link and never leave the folder's file system.
"""

from __future__ import annotations

import os
import stat

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_child(name: str, parent: int, device: int) -> int | None:
    """A descriptor of folder ``name`` in ``parent`` if it is a folder on ``device`` (not a link, not a
    mount point), else None."""
    try:
        fd = os.open(name, _DIR, dir_fd=parent)
    except OSError:
        return None
    if os.fstat(fd).st_dev != device:
        os.close(fd)
        return None
    return fd


def usage(folder: str | os.PathLike, *, limit: int) -> tuple[int, int]:
    """How many entries ``folder`` holds below it and how many bytes they take on disk (allocated blocks,
    so a sparse or ``fallocate``d file counts what it holds, not its length). Stops counting past ``limit``
    entries (the caller's limit is passed anyway). ``(0, 0)`` when ``folder`` is gone.

    Holds one descriptor at a time, and for each level above it the names of the subfolders still to read."""
    try:
        fd = os.open(folder, _DIR)
    except OSError:
        return 0, 0
    device = os.fstat(fd).st_dev
    entries = size = 0
    todo: list[list[str]] = []  # per level from the top: subfolders not yet read
    while True:
        folders = []
        with os.scandir(fd) as listing:
            for entry in listing:
                entries += 1
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                size += st.st_blocks * 512
                if stat.S_ISDIR(st.st_mode):
                    folders.append(entry.name)
        todo.append(folders)
        if entries > limit:
            os.close(fd)
            return entries, size
        child = None
        while todo:
            while child is None and todo[-1]:
                child = _open_child(todo[-1].pop(), fd, device)
            if child is not None:
                break
            todo.pop()  # this level done: back up
            if todo:
                parent = os.open("..", _DIR, dir_fd=fd)
                os.close(fd)
                fd = parent
        os.close(fd)
        if child is None:
            return entries, size
        fd = child


def remove(folder: str | os.PathLike) -> None:
    """Remove ``folder`` and everything below it on its file system; what cannot be removed stays, silently.

    Holds one descriptor at a time: it goes down into the first subfolder it finds and back up (``..``)
    when a folder is empty. Meant for trees no live process is changing (the kernel that wrote it is dead)."""
    try:
        st = os.lstat(folder)
    except OSError:
        return
    if not stat.S_ISDIR(st.st_mode):
        try:
            os.unlink(folder)
        except OSError:
            pass
        return
    try:
        fd = os.open(folder, _DIR)
    except OSError:
        return
    device = st.st_dev
    names: list[str] = []  # the path from ``folder`` down to ``fd``
    stuck: set[tuple[int, int]] = set()  # folders that could not be emptied: not entered again
    while True:
        child = None
        with os.scandir(fd) as listing:
            for entry in listing:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    if (info.st_dev, info.st_ino) in stuck or info.st_dev != device:
                        continue
                    child = _open_child(entry.name, fd, device)
                    if child is not None:
                        names.append(entry.name)
                        break
                    stuck.add((info.st_dev, info.st_ino))
                else:
                    try:
                        os.unlink(entry.name, dir_fd=fd)
                    except OSError:
                        pass
        if child is not None:
            os.close(fd)
            fd = child
            continue
        if not names:
            os.close(fd)
            try:
                os.rmdir(folder)
            except OSError:
                pass
            return
        here = os.fstat(fd)
        parent = os.open("..", _DIR, dir_fd=fd)
        os.close(fd)
        fd = parent
        name = names.pop()
        try:
            os.rmdir(name, dir_fd=fd)
        except OSError:
            stuck.add((here.st_dev, here.st_ino))
