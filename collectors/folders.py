"""The files of an input folder, never one from outside it: links are refused, with a note naming them.

Fed by: the folders users name to `tapio replay` (`collectors.replayer`) and `tapio analyze`
(`collectors.bundlefiles`: bundles, must-gathers, folders of files). Feeds: their readers, with
each regular file under the folder, and an UnusableInput for each link not followed.

A folder handed to Tapio may hold links planted to make it read what the user never meant to hand
over (`events.json -> /etc/passwd`, which a dead letter would then quote):
- a symbolic link (to a file or a folder) whose target is outside the folder is refused, naming the
  link and its target; one whose target is inside is skipped quietly (the target is read as itself);
- a regular file with more than one name (a hard link) is refused: its other name may be anywhere on
  the same file system, and nothing tells where. Copy the file into the folder to have it read.
A path named on the command line is the user's own choice and is read even if it is a link; only
what is found inside folders is checked. Pure apart from reading the folder's entries.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from collectors.unusable import UnusableInput

LINK_POSITION = "link"


def folder_entries(root: Path) -> Iterator[tuple[str, Path] | UnusableInput]:
    """(path relative to `root` with /, path) of every regular file under `root`, folders and files
    sorted; an UnusableInput (position "link") for every link refused (see the module docstring)."""
    for folder, subfolders, files in os.walk(root):  # os.walk never descends into a linked folder
        subfolders.sort()
        for name in list(subfolders):
            path = Path(folder, name)
            if path.is_symlink():
                subfolders.remove(name)
                if (refused := outside_link(path, root)) is not None:
                    yield refused
        for name in sorted(files):
            path = Path(folder, name)
            refused = outside_link(path, root)
            if refused is not None:
                yield refused
            elif _regular(path):
                yield path.relative_to(root).as_posix(), path


def outside_link(path: Path, root: Path) -> UnusableInput | None:
    """Why `path`, found inside the folder `root`, is not read: a symbolic link out of `root` or a
    hard link; None otherwise (a link inside `root` is then still not to be read: its target is)."""
    try:
        info = path.lstat()
    except OSError:
        return None  # gone while walking
    if stat.S_ISLNK(info.st_mode):
        real_root, target = os.path.realpath(root), os.path.realpath(path)
        if os.path.commonpath([real_root, target]) == real_root:
            return None
        try:
            shown = os.readlink(path)
        except OSError:
            shown = target
        return UnusableInput(file=str(path), position=LINK_POSITION,
                             reason=f"symbolic link to {shown} (outside the input folder): not followed")
    if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
        return UnusableInput(file=str(path), position=LINK_POSITION,
                             reason=f"hard link ({info.st_nlink} names; the others may be outside the input "
                                    "folder): not read; copy the file into the folder to have it read")
    return None


def _regular(path: Path) -> bool:
    """A regular file, not a link (sockets, fifos, devices: nothing to read; a fifo would block)."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False
