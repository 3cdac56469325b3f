"""Local files written whole: a temp file beside the target, then a rename (owner-only on ask)."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: str | Path, data: bytes | str, private: bool = False) -> Path:
    """Write `data` (str: as UTF-8) to `path` through `.<name>.tmp` beside it and a rename, so
    a reader sees the old file or the whole new one, never a part. `private`: mode 0o600
    whatever the umask (notes are PHI and these folders sit on shared clusters); otherwise the
    umask's default. The folder must exist. A failed write removes the temp file."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o666)
    try:
        if private:
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path
