"""The DVC remote: ``.dvc/config.local`` pointing it at the local S3, and a real request to check it.

:func:`write_dvc_config_local` writes the endpoint and keys of the default remote (0600);
:func:`check_remote` merges ``.dvc/config`` and ``.dvc/config.local`` and lists the remote's prefix,
turning any failure into one line that says what to fix (see :mod:`musicrec.devservices.s3errors`).
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path

from musicrec.devservices.config import REGION, ServiceError
from musicrec.devservices.credentials import Credentials
from musicrec.devservices.private_files import write_private
from musicrec.devservices.s3errors import explain_s3_error

DEFAULT_REMOTE = "s3"


def _dvc_section(name: str) -> str:
    return f"'remote \"{name}\"'"


def _read_dvc_ini(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str  # keep key case
    if path.exists():
        cp.read_string(path.read_text(encoding="utf-8"))
    return cp


def _write_dvc_ini(cp: configparser.ConfigParser, path: Path, *, private: bool) -> None:
    lines: list[str] = []
    for sec in cp.sections():
        lines.append(f"[{sec}]")
        lines += [f"    {k} = {v}" for k, v in cp.items(sec, raw=True)]
    text = "\n".join(lines) + "\n"
    if private:
        write_private(path, text)
    else:
        path.write_text(text, encoding="utf-8")


def default_remote(repo_root: Path) -> str:
    for f in (".dvc/config.local", ".dvc/config"):
        cp = _read_dvc_ini(repo_root / f)
        if cp.has_option("core", "remote"):
            return cp.get("core", "remote")
    return DEFAULT_REMOTE


def write_dvc_config_local(repo_root: Path, endpoint: str, creds: Credentials, remote: str | None = None) -> Path:
    """Point the DVC remote at the local endpoint with the local keys (``.dvc/config.local``, 0600)."""
    remote = remote or default_remote(repo_root)
    path = repo_root / ".dvc" / "config.local"
    cp = _read_dvc_ini(path)
    sec = _dvc_section(remote)
    if not cp.has_section(sec):
        cp.add_section(sec)
    cp.set(sec, "endpointurl", endpoint)
    cp.set(sec, "access_key_id", creds.access_key)
    cp.set(sec, "secret_access_key", creds.secret_key)
    cp.set(sec, "region", REGION)
    _write_dvc_ini(cp, path, private=True)
    return path


@dataclass(frozen=True)
class RemoteSettings:
    name: str
    url: str
    endpointurl: str | None
    access_key_id: str | None
    secret_access_key: str | None
    region: str | None

    @property
    def bucket_and_prefix(self) -> tuple[str, str]:
        rest = self.url.split("://", 1)[1]
        bucket, _, prefix = rest.partition("/")
        return bucket, prefix.strip("/")


def read_remote(repo_root: Path, name: str | None = None) -> RemoteSettings:
    """Merge .dvc/config and .dvc/config.local (local wins) for the default (or named) remote."""
    repo_root = Path(repo_root)
    name = name or default_remote(repo_root)
    merged: dict[str, str] = {}
    for f in (".dvc/config", ".dvc/config.local"):
        cp = _read_dvc_ini(repo_root / f)
        if cp.has_section(_dvc_section(name)):
            merged.update(cp.items(_dvc_section(name), raw=True))
    if "url" not in merged:
        raise ServiceError(f"no DVC remote {name!r} with a url in .dvc/config or .dvc/config.local")
    return RemoteSettings(
        name=name,
        url=merged["url"],
        endpointurl=merged.get("endpointurl"),
        access_key_id=merged.get("access_key_id"),
        secret_access_key=merged.get("secret_access_key"),
        region=merged.get("region"),
    )


def check_remote(repo_root: Path | str = ".", *, timeout_s: float = 5.0, name: str | None = None) -> str:
    """Make a real request against the DVC remote; raise ServiceError with a one-line fix on failure."""
    rs = read_remote(Path(repo_root), name)
    if not rs.url.startswith("s3://"):
        return f"remote {rs.name!r} is {rs.url} (not S3): nothing to check"
    bucket, prefix = rs.bucket_and_prefix
    if not rs.endpointurl and not rs.access_key_id and not os.environ.get("AWS_ACCESS_KEY_ID"):
        raise ServiceError(
            f"DVC remote {rs.name!r} ({rs.url}) has no endpointurl and no keys (.dvc/config.local missing?): "
            "run `make services-up` (it writes .dvc/config.local)"
        )
    creds = None
    if rs.access_key_id and rs.secret_access_key:
        creds = Credentials(rs.access_key_id, rs.secret_access_key)
    import boto3
    from botocore.config import Config

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=rs.endpointurl,
        region_name=rs.region or REGION,
        aws_access_key_id=creds.access_key if creds else None,
        aws_secret_access_key=creds.secret_key if creds else None,
        config=Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 1},
                      s3={"addressing_style": "path"}),
    )
    try:
        client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/" if prefix else "", MaxKeys=1)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear line
        raise ServiceError(
            f"DVC remote {rs.name!r} ({rs.url}): " + explain_s3_error(exc, endpoint=rs.endpointurl, bucket=bucket)
        ) from exc
    return f"DVC remote {rs.name!r} ({rs.url} at {rs.endpointurl or 'AWS'}) is reachable"



@dataclass(frozen=True)
class OutStatus:
    """Where one cached out of the pipeline (dvc.lock / .dvc files) can be found."""

    path: str
    stage: str  # what `dvc repro` / `dvc pull` take: the stage name, or the .dvc file
    in_remote: bool  # every object of it (a folder's manifest and files) is in the remote
    in_cache: bool  # ... in this clone's cache

    @property
    def is_pipeline_stage(self) -> bool:
        return not self.stage.endswith(".dvc")


def outs_status(repo_root: Path | str = ".", *, remote: str | None = None) -> list[OutStatus] | None:
    """For every cached out of the repo's stages, whether the remote and the local cache hold all of it.

    A folder out counts as held only when its manifest (``.dir``) and every file it lists are there.
    None for a version-aware (or worktree) remote: objects live under their paths, there is no
    object store to compare with.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    out = []
    try:
        with Repo(str(repo_root)) as repo:
            cloud = repo.cloud.get_remote(remote, "pull")
            if cloud.fs.version_aware or cloud.worktree:
                return None
            remote_odb = repo.cloud.get_remote_odb(remote, "pull")
            for stage in repo.index.stages:
                for o in stage.outs:
                    if not o.use_cache or not o.hash_info:
                        continue  # cache: false outs live in git; an out without a hash was never built
                    st = repo.cloud.status(_objects(o.hash_info, repo.cache.local, remote_odb), remote=remote)
                    out.append(OutStatus(_relpath(o.fs_path, repo.root_dir), _address(stage, repo.root_dir),
                                         in_remote=not (st.missing or st.new), in_cache=not (st.missing or st.deleted)))
    except DvcException as exc:
        raise ServiceError(f"dvc: cannot compare the outs with the remote: {' '.join(str(exc).split())}") from None
    return out


def _objects(hash_info, *odbs) -> list:
    """The object of an out and, for a folder, those of the files its manifest lists (read where it is found)."""
    from dvc_data.hashfile.tree import Tree

    objs = [hash_info]
    if hash_info.isdir:
        odb = next((db for db in odbs if db.exists(hash_info.value)), None)
        if odb is not None:
            objs += [entry for _, _, entry in Tree.load(odb, hash_info)]
    return objs


def _relpath(path: str, root: str) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _address(stage, root: str) -> str:
    """The stage as `dvc repro` / `dvc pull` name it from the repo root: ``train``, ``sub/dvc.yaml:train``, ``x.dvc``."""
    file = _relpath(stage.path, root)
    name = getattr(stage, "name", None)
    if not name or file.endswith(".dvc"):
        return file
    return name if file == "dvc.yaml" else f"{file}:{name}"


def missing_out_line(s: OutStatus, remote: str) -> str:
    """One line: which out cannot be pulled, why, and what to run."""
    fix = (f"rebuild it with `dvc repro {s.stage}`, or run `make push` on the machine that built it"
           if s.is_pipeline_stage else "run `make push` on the machine that has it")
    recorded = "dvc.lock" if s.is_pipeline_stage else s.stage
    return (f"{s.path} (stage {s.stage}): not in DVC remote {remote!r} nor in the local cache; "
            f"{recorded} records a version that was never pushed: {fix}")


def check_pull(repo_root: Path | str = ".", *, remote: str | None = None) -> str:
    """Before ``dvc pull``: every cached out must be in the remote (or the cache); else one line per missing out.

    Raises :class:`ServiceError` whose message has those lines and, when some outs can be pulled,
    the ``dvc pull`` command for them.
    """
    name = remote or default_remote(Path(repo_root))
    statuses = outs_status(repo_root, remote=remote)
    if statuses is None:
        return f"DVC remote {name!r} is version-aware: dvc pull itself says what it cannot find"
    missing = [s for s in statuses if not s.in_remote and not s.in_cache]
    if not missing:
        return f"every out in dvc.lock can be pulled from DVC remote {name!r} ({len(statuses)} outs)"
    lines = [missing_out_line(s, name) for s in missing]
    bad = {s.stage for s in missing}
    rest = list(dict.fromkeys(s.stage for s in statuses if s.stage not in bad))
    if rest:
        lines.append(f"the other stages' outs can be pulled with: dvc pull {' '.join(rest)}")
    raise ServiceError("\n".join(lines))
