"""Writing files so that a crash or bad input never leaves half a file behind."""

from __future__ import annotations

import os
import re
import stat
import sys
import tempfile
from pathlib import Path


class OutputError(Exception):
    """A file the user asked for cannot be written there: their path, not a bug in netspec."""


def write_atomic(path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it into place.

    Like `open(path, "w")`, it writes through a symlink to its target, keeps an existing
    file's permissions, refuses a file the user may not write, and writes straight into
    a device or pipe (`-o /dev/stdout`); unlike it, a failure leaves an old regular file
    whole. Any failure is an OutputError naming the path.
    """
    shown = path
    descriptor = _descriptor(path)
    if descriptor is not None or _special(path):  # /dev/stdout, /dev/null, a FIFO: write into them
        sys.stdout.flush()  # what was printed before comes before
        try:  # an own descriptor (stdout: a pipe, or a file `>` or `>>` made) is written where it stands
            with os.fdopen(os.dup(descriptor), "wb") if descriptor is not None else open(path, "wb") as handle:
                handle.write(data)
        except BrokenPipeError:  # `-o /dev/stdout | head`: the reader has all it wanted
            raise
        except OSError as exc:
            raise OutputError(f"cannot write {shown}: {_reason(exc)}") from None
        return
    path = Path(os.path.realpath(path))
    try:
        if path.is_dir():
            raise IsADirectoryError("it is a directory")
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError("the file is read-only")
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else default_mode()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {shown}: {_reason(exc)}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)  # mkstemp makes it private (0600); a written file is not
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {shown}: {_reason(exc)}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_STANDARD = {"/dev/stdout": 1, "/dev/stderr": 2}


def _descriptor(path) -> int | None:
    """The open descriptor a path names (/dev/stdout, /dev/fd/N, /proc/self/fd/N): writing to it goes
    where the shell pointed it, at its offset, never through a rename that would replace a redirected file."""
    text = os.path.abspath(path)
    match = re.fullmatch(rf"/(?:dev/fd|proc/(?:self|{os.getpid()})/fd)/(\d+)", text)
    return _STANDARD.get(text, int(match.group(1)) if match else None)


def _special(path) -> bool:
    """An existing file that is neither a regular file nor a folder: a device, a pipe, a socket."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _reason(exc: OSError) -> str:
    """The OS's words without the errno and path noise: 'Permission denied', 'No space left on device'."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)) and exc.filename:
        return f"{exc.filename} is not a directory"
    return exc.strerror or str(exc)


def default_mode() -> int:
    """The permissions `open(path, "w")` would give a new file: 0666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
