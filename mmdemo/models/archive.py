"""Safe extraction of uploaded zip archives (adapters, image sets).

Python's ``zipfile.extractall`` sanitizes names but does not bound sizes, file counts or
symlinks, so uploads go through this check first: every member must stay inside the target
folder, be a regular file, and the total must fit the limits.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

from mmdemo.errors import BadInputError

ZIP_FIX = "zip the folder's contents with relative paths inside it (no '..', no '/')"
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"})


def safe_extract(archive: Path, dest: Path, max_bytes: int, max_files: int = 200) -> list[Path]:
    """Extract ``archive`` into ``dest``; refuse path escapes, links, bombs and too many files."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadInputError(
            f"{Path(archive).name} is not a readable zip file ({exc})",
            fix="upload a .zip made by a zip tool (or the files themselves)",
        ) from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > max_files:
            raise BadInputError(
                f"the zip holds {len(members)} files; the limit is {max_files}",
                fix="upload fewer files",
            )
        total = sum(m.file_size for m in members)
        if total > max_bytes:
            raise BadInputError(
                f"the zip unpacks to {total / 2**20:.0f} MB; the limit is "
                f"{max_bytes / 2**20:.0f} MB",
                fix="upload a smaller archive",
            )
        dest = Path(dest).resolve()
        written = []
        for m in members:
            name = PurePosixPath(m.filename.replace("\\", "/"))
            if name.is_absolute() or ".." in name.parts or ":" in m.filename:
                raise BadInputError(
                    f"the zip entry {m.filename!r} points outside its folder", fix=ZIP_FIX
                )
            if stat.S_ISLNK(m.external_attr >> 16):
                raise BadInputError(
                    f"the zip entry {m.filename!r} is a symbolic link, which is not unpacked",
                    fix="zip the files themselves, not links to them",
                )
            target = (dest / Path(*name.parts)).resolve()
            if dest not in target.parents:
                raise BadInputError(
                    f"the zip entry {m.filename!r} points outside its folder", fix=ZIP_FIX
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(m) as src, open(target, "wb") as out:
                copied = 0
                while chunk := src.read(1 << 20):
                    copied += len(chunk)
                    if copied > m.file_size:  # lying headers
                        raise BadInputError(
                            f"the zip entry {m.filename!r} is larger than declared",
                            fix="the archive is damaged or crafted: zip the files again",
                        )
                    out.write(chunk)
            written.append(target)
        return written
