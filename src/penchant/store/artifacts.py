"""Model artifacts: versioned directories of arrays plus JSON, per tenant and model name."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from penchant.errors import InvalidInput, NotFound

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _check(kind: str, value: str) -> str:
    if not _NAME.match(value) or ".." in value:
        raise InvalidInput(f"invalid artifact {kind} {value!r}", field=kind)
    return value


class LocalArtifactStore:
    """Artifacts under one root directory: `root/tenant/name/version/`.

    A version appears atomically: it is written to a temporary directory beside its final
    place and renamed, so a reader never sees half an artifact.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def put(self, tenant: str, name: str, version: str, source: Path) -> Path:
        """Copy the files of `source` in as a new version; return its directory."""
        parent = self.root / _check("tenant", tenant) / _check("name", name)
        final = parent / _check("version", version)
        if final.exists():
            raise InvalidInput(f"artifact {name} version {version} already exists", field="version")
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=parent))
        shutil.copytree(source, staging, dirs_exist_ok=True)
        staging.rename(final)
        return final

    def path(self, tenant: str, name: str, version: str) -> Path:
        """The directory of a stored version."""
        final = (
            self.root / _check("tenant", tenant) / _check("name", name) / _check("version", version)
        )
        if not final.is_dir():
            raise NotFound(f"no artifact {name} version {version}")
        return final

    def versions(self, tenant: str, name: str) -> list[str]:
        """Stored versions of a model, oldest name first."""
        parent = self.root / _check("tenant", tenant) / _check("name", name)
        if not parent.is_dir():
            return []
        return sorted(p.name for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))

    def delete(self, tenant: str, name: str, version: str) -> None:
        """Remove a version."""
        shutil.rmtree(self.path(tenant, name, version))
