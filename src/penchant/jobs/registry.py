"""Versioned model bundles of a tenant and the pointer to the one being served.

A version is a bundle: one training run fits every configured model into one directory,
`<root>/<tenant>/recommender/<version>/`, holding `manifest.json` and one folder per model
(written by `Recommender.save`), so serving never mixes models of two runs. The version
being served is named by the small JSON file `<root>/<tenant>/recommender/ACTIVE`, which
is only ever replaced whole (written beside itself, fsynced, renamed).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from penchant.errors import Conflict, InvalidInput, NotFound
from penchant.models import Recommender, load_model
from penchant.models.ann import ItemIndex
from penchant.models.arrays import blank_users, load_arrays
from penchant.settings import Settings
from penchant.store.artifacts import LocalArtifactStore

#: The artifact name under which bundles are stored.
BUNDLE = "recommender"
MANIFEST = "manifest.json"
#: Who bought or dismissed what, saved beside the models of a bundle (one .npy per array;
#: bundles written before that hold `exclusions.npz`).
EXCLUSIONS = "exclusions"
#: A factor model's retrieval index, saved in the model's folder when its catalog is large.
INDEX = "index"
ACTIVE = "ACTIVE"
#: How many previously active versions ACTIVE remembers for rollback.
HISTORY_LIMIT = 20
#: Leftover staging folders (from a killed training) older than this are removed by prune.
STALE_STAGING_S = 6 * 3600
STAGING_PREFIX = ".staging-"

try:  # POSIX: serialize read-modify-write of ACTIVE between processes
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True)
class VersionInfo:
    """One stored version, as `ModelRegistry.versions` lists it.

    Attributes:
        version: its name.
        created_at: when its training finished (UTC ISO), "" if its manifest is unreadable.
        active: whether it is the version being served.
        manifest: the content of its manifest.json (`{"error": ...}` when unreadable).
    """

    version: str
    created_at: str
    active: bool
    manifest: dict[str, Any]


@dataclass(frozen=True)
class ModelBundle:
    """A loaded version: every model of one training run.

    Attributes:
        version: its name.
        manifest: the content of its manifest.json.
        models: the loaded models by name (`popular`, `ials`, ...).
        path: its directory.
        exclusions: per kind (`purchased`, `dismissed`), a users x items 0/1 matrix over the
            models' vocabularies of what serving leaves out (empty for older bundles).
        indexes: retrieval indexes built at training, by model name.
    """

    version: str
    manifest: dict[str, Any]
    models: dict[str, Recommender]
    path: Path
    exclusions: dict[str, sp.csr_matrix] = field(default_factory=dict)
    indexes: dict[str, ItemIndex] = field(default_factory=dict)


class _Pointer(NamedTuple):
    """The content of ACTIVE: the served version and those served before it, newest last."""

    version: str
    history: list[str]


def new_version(now: datetime | None = None) -> str:
    """A fresh version name that sorts by time, e.g. `20261127T201530Z-3f9a1c`."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class ModelRegistry:
    """The model versions of one tenant under one root directory."""

    def __init__(self, root: Path, tenant: str) -> None:
        self.root = Path(root)
        self.tenant = tenant
        self._artifacts = LocalArtifactStore(self.root)
        # checks the tenant name the way the artifact store does
        self._artifacts.versions(tenant, BUNDLE)
        self.directory = self.root / tenant / BUNDLE

    @classmethod
    def of(cls, settings: Settings) -> ModelRegistry:
        """The registry of the settings' tenant, under `data_dir/models`."""
        return cls(settings.data_dir / "models", settings.tenant)

    # -- reading ----------------------------------------------------------------------------
    def versions(self) -> list[VersionInfo]:
        """Every stored version, oldest first."""
        active = self.active()
        infos = []
        for name in self._artifacts.versions(self.tenant, BUNDLE):
            try:
                manifest = self._manifest(name)
            except (InvalidInput, NotFound) as exc:
                manifest = {"error": exc.message}
            created = manifest.get("created_at")
            infos.append(
                VersionInfo(
                    version=name,
                    created_at=created if isinstance(created, str) else "",
                    active=name == active,
                    manifest=manifest,
                )
            )
        # names sort by the second; created_at breaks ties within one
        return sorted(infos, key=lambda v: (v.version[:16], v.created_at, v.version))

    def active(self) -> str | None:
        """The version being served, or None when none has been activated.

        Raises:
            InvalidInput: the ACTIVE file is unreadable.
        """
        state = self._state()
        return None if state is None else state.version

    def marker(self) -> tuple[int, int] | None:
        """A cheap fingerprint of the ACTIVE file: (mtime in ns, inode), None when absent.

        Serving workers poll it and reload when it changes. The inode is part of it because
        every activation writes a new file and renames it over the old one, so the inode
        changes even when two activations fall within the file system's clock resolution.
        """
        try:
            info = os.stat(self.directory / ACTIVE)
        except FileNotFoundError:
            return None
        return (info.st_mtime_ns, info.st_ino)

    def history(self) -> list[str]:
        """The previously active versions, newest last (what `rollback` walks back through)."""
        state = self._state()
        return [] if state is None else list(state.history)

    def path(self, version: str) -> Path:
        """The directory of a stored version.

        Raises:
            NotFound: no such version.
            InvalidInput: not a valid version name.
        """
        try:
            return self._artifacts.path(self.tenant, BUNDLE, version)
        except NotFound:
            raise NotFound(
                f"no model version {version!r} for tenant {self.tenant!r}", field="version"
            ) from None

    def load(self, version: str | None = None) -> ModelBundle:
        """Load every model of a version.

        Args:
            version: the version; default the active one.

        Raises:
            NotFound: nothing is active (and no version given), or no such version.
            InvalidInput: the version's manifest or a model in it is unreadable.
        """
        if version is None:
            version = self.active()
            if version is None:
                raise NotFound(
                    f"no active model version for tenant {self.tenant!r}; run 'penchant train'"
                )
        path = self.path(version)
        manifest = self._manifest(version)
        names = manifest.get("models")
        if not isinstance(names, dict) or not names:
            raise InvalidInput(f"{path / MANIFEST}: lists no models", field="manifest")
        models = {name: load_model(path / name) for name in names}
        return ModelBundle(
            version=version,
            manifest=manifest,
            models=models,
            path=path,
            exclusions=_exclusions(path / EXCLUSIONS, next(iter(models.values()))),
            indexes={
                name: ItemIndex.load(path / name / INDEX)
                for name in names
                if (path / name / INDEX).is_dir()
            },
        )

    # -- changing ---------------------------------------------------------------------------
    def publish(self, staging: Path, version: str, *, activate: bool) -> Path:
        """Store a staged bundle as a new version, and optionally serve it.

        Args:
            staging: a folder holding manifest.json and the model folders; it is copied,
                and the version appears whole or not at all.
            version: the new version's name (see `new_version`).
            activate: make it the active version.

        Returns:
            The version's directory.

        Raises:
            InvalidInput: a bad or existing version name, or a folder without a manifest.
        """
        if not (staging / MANIFEST).is_file():
            raise InvalidInput(f"{staging}: no {MANIFEST}; not a model bundle", field="staging")
        final = self._artifacts.put(self.tenant, BUNDLE, version, staging)
        if activate:
            self.activate(version)
        return final

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh folder beside the versions in which to build a bundle, removed afterwards.

        A folder left behind by a killed process is removed by a later `prune`.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.directory))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @contextlib.contextmanager
    def training(self) -> Iterator[None]:
        """Held while a training of this tenant runs: one at a time, whichever process starts it.

        Raises:
            Conflict: another training of the tenant is running.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(_flock(self.directory / ".training.lock", wait=False))
            except BlockingIOError:
                raise Conflict(
                    f"another training of tenant {self.tenant!r} is running; try again when it ends"
                ) from None
            yield

    def activate(self, version: str) -> None:
        """Serve a stored version; the one served before goes onto the history.

        A damaged ACTIVE file is replaced (its history is lost).

        Raises:
            NotFound: no such version.
        """
        self.path(version)
        with self._lock():
            try:
                state = self._state()
            except InvalidInput:  # activating is how a damaged ACTIVE file is repaired
                state = None
            if state is not None and state.version == version:
                return
            history = [] if state is None else [*state.history, state.version]
            self._write_state(version, history[-HISTORY_LIMIT:])

    def rollback(self) -> str:
        """Serve the version that was active before the current one again.

        Versions since deleted are skipped. Rolling back twice goes back two versions.

        Returns:
            The version now active.

        Raises:
            InvalidInput: there is no earlier version to go back to.
        """
        with self._lock():
            state = self._state()
            history = [] if state is None else list(state.history)
            while history:
                previous = history.pop()
                if (self.directory / previous).is_dir():
                    self._write_state(previous, history)
                    return previous
        raise InvalidInput(
            f"no earlier active model version to roll back to for tenant {self.tenant!r}",
            field="version",
        )

    def prune(self, keep: int) -> list[str]:
        """Delete the oldest versions beyond `keep`.

        The active version and the one before it (the rollback target) are never deleted,
        though they count towards `keep`. Leftover staging folders are removed too.

        Returns:
            The deleted versions, oldest first.

        Raises:
            InvalidInput: `keep` below 1.
        """
        if keep < 1:
            raise InvalidInput(f"keep: must be at least 1, got {keep}", field="keep")
        self._remove_stale_staging()
        state = self._state()
        protected = set() if state is None else {state.version, *state.history[-1:]}
        versions = [v.version for v in self.versions()]
        excess = len(versions) - keep
        deleted: list[str] = []
        for version in versions:
            if len(deleted) >= excess:
                break
            if version in protected:
                continue
            self._artifacts.delete(self.tenant, BUNDLE, version)
            deleted.append(version)
        return deleted

    # -- the files --------------------------------------------------------------------------
    def _manifest(self, version: str) -> dict[str, Any]:
        path = self.path(version) / MANIFEST
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidInput(f"{path}: missing; not a model bundle", field="manifest") from None
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{path}: unreadable ({exc})", field="manifest") from exc
        if not isinstance(document, dict):
            raise InvalidInput(f"{path}: not a JSON object", field="manifest")
        return document

    def _state(self) -> _Pointer | None:
        path = self.directory / ACTIVE
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise InvalidInput(
                f"{path}: unreadable ({exc}); run 'penchant models activate VERSION'",
                field="active",
            ) from exc
        version = state.get("version") if isinstance(state, dict) else None
        history = state.get("history", []) if isinstance(state, dict) else None
        if (
            not isinstance(version, str)
            or not isinstance(history, list)
            or not all(isinstance(h, str) for h in history)
        ):
            raise InvalidInput(
                f"{path}: not a valid ACTIVE file; run 'penchant models activate VERSION'",
                field="active",
            )
        return _Pointer(version, history)

    def _write_state(self, version: str, history: list[str]) -> None:
        document = {
            "version": version,
            "history": history,
            "activated_at": datetime.now(UTC).isoformat(),
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".ACTIVE-", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(document, indent=2) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, 0o644)  # mkstemp makes it private; serving workers must read it
            os.replace(temp, self.directory / ACTIVE)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        _fsync_directory(self.directory)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialize changes of ACTIVE between processes (the CLI and a background trainer)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with _flock(self.directory / ".lock", wait=True):
            yield

    def _remove_stale_staging(self) -> None:
        if not self.directory.is_dir():
            return
        cutoff = time.time() - STALE_STAGING_S
        for entry in self.directory.iterdir():
            if not entry.name.startswith((STAGING_PREFIX, ".incoming-")):
                continue
            with contextlib.suppress(OSError):
                if entry.is_dir() and entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def _flock(path: Path, *, wait: bool) -> Iterator[None]:
    """An exclusive lock between processes on a file (POSIX; none elsewhere).

    Raises:
        BlockingIOError: `wait` is False and another process holds the lock.
    """
    if fcntl is None:  # pragma: no cover (Windows: the renames alone keep readers safe)
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover (some file systems refuse)
        pass
    finally:
        os.close(fd)


def _exclusions(path: Path, model: Recommender) -> dict[str, sp.csr_matrix]:
    """The exclusion matrices of a bundle, shaped by its models' vocabularies."""
    if path.is_dir():
        arrays = load_arrays(path)
    elif path.with_suffix(".npz").is_file():
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    else:
        return {}
    shape = (len(model.user_ids_), len(model.item_ids_))
    erased = blank_users(model.user_ids_)
    out: dict[str, sp.csr_matrix] = {}
    for name, indptr in arrays.items():
        if not name.endswith("_indptr"):
            continue
        kind = name.removesuffix("_indptr")
        indices = arrays[f"{kind}_indices"]
        data = np.ones(len(indices), dtype=np.float32)
        for code in erased:  # scrubbed rows: nothing is left to exclude
            data[indptr[code] : indptr[code + 1]] = 0
        matrix = sp.csr_matrix((data, indices, indptr), shape=shape)
        matrix.eliminate_zeros()
        out[kind] = matrix
    return out
