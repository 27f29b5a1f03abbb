"""The transform on a real ``distributed`` cluster: separate scheduler and worker processes.

* same output bytes as the threads scheduler;
* the same with the interim input read from the SeaweedFS S3 server (``s3://`` +
  storage options), so the workers need no shared disk for the input;
* SIGKILL of one worker during a run: the stage completes or fails cleanly (no
  output and no temporary folders left), and a rerun gives identical bytes.

Everything started here runs on 127.0.0.1 free ports and is stopped by PID.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.support.pipeline import write_interim
from musicrec.config import DaskParams, TransformParams
from musicrec.pipeline.transform import run_transform

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SRC = Path(__file__).resolve().parents[2] / "src"
TRANSFORM = TransformParams(min_user_items=3, min_item_users=3, max_passes=30, partitions=4)


def _write_interim(d: Path, n: int, parts: int, seed: int = 0) -> None:
    write_interim(d, n, parts=parts, n_users=3000, n_items=4000, seed=seed)


def _digest(folder: Path) -> str:
    files = sorted(folder.glob("*.parquet"))
    assert files, f"no Parquet parts in {folder}"
    h = hashlib.md5()
    for p in files:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _run(interim, out: Path, scheduler: str, **kw) -> dict:
    return run_transform(interim, out / "plays", out / "items.parquet", TRANSFORM,
                         DaskParams(scheduler=scheduler, num_workers=2), **kw)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", DASK_DISTRIBUTED__WORKER__DAEMON="False")
    return env


def _stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Cluster:
    """``dask scheduler`` + N ``dask worker`` processes on 127.0.0.1."""

    def __init__(self, tmp: Path, port: int, n_workers: int = 2):
        self.tmp, self.port, self.address = tmp, port, f"tcp://127.0.0.1:{port}"
        self.dask = str(Path(sys.executable).parent / "dask")
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        self.logs = tmp / "cluster-logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.scheduler = self._spawn("scheduler", [self.dask, "scheduler", "--host", "127.0.0.1", "--port",
                                                   str(port), "--no-dashboard"])
        for _ in range(n_workers):
            self.add_worker()
        self.wait_for(n_workers)

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}-{len(self.procs)}.log", "wb")
        proc = subprocess.Popen(cmd, cwd=self.tmp, env=_env(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(proc)
        return proc

    def add_worker(self) -> subprocess.Popen:
        wdir = self.tmp / f"worker-{len(self.procs)}"
        # --no-nanny: the PID we hold is the worker itself (SIGKILL hits the worker, not a nanny)
        w = self._spawn("worker", [self.dask, "worker", self.address, "--nworkers", "1", "--nthreads", "1",
                                   "--no-dashboard", "--host", "127.0.0.1", "--no-nanny", "--local-directory",
                                   str(wdir)])
        self.workers.append(w)
        return w

    def wait_for(self, n: int, timeout: float = 60) -> None:
        from distributed import Client

        deadline = time.monotonic() + timeout
        while True:
            try:
                with Client(self.address, timeout="5s", set_as_default=False) as c:
                    c.wait_for_workers(n, timeout=max(1.0, deadline - time.monotonic()))
                    return
            except (OSError, TimeoutError):
                if time.monotonic() > deadline or self.scheduler.poll() is not None:
                    raise RuntimeError(f"cluster did not start; logs: {self._tail()}") from None
                time.sleep(0.5)

    def live_workers(self) -> int:
        from distributed import Client

        with Client(self.address, timeout="5s", set_as_default=False) as c:
            return len(c.scheduler_info()["workers"])

    def _tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in sorted(self.logs.glob("*.log")))

    def close(self) -> None:
        for p in reversed(self.procs):
            _stop(p)
        for p in self.procs:
            assert p.poll() is not None, f"process {p.pid} still running"


@pytest.fixture
def cluster(tmp_path, free_ports):
    c = Cluster(tmp_path / "cluster", free_ports(1)[0])
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def interim(tmp_path_factory):
    d = tmp_path_factory.mktemp("distributed") / "interim"
    _write_interim(d, n=60_000, parts=6)
    return d


@pytest.fixture(scope="module")
def reference(interim, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    report = _run(interim, out, "threads")
    return report, _digest(out / "plays"), (out / "items.parquet").read_bytes()


def test_distributed_matches_threads_and_reads_from_s3(cluster, interim, reference, tmp_path, seaweedfs):
    ref_report, ref_digest, ref_items = reference
    report = _run(interim, tmp_path / "dist", cluster.address)
    assert report == ref_report
    assert _digest(tmp_path / "dist" / "plays") == ref_digest
    assert (tmp_path / "dist" / "items.parquet").read_bytes() == ref_items

    # the same input from S3: the workers read it themselves (storage options travel with the graph)
    import s3fs

    cfg, creds = seaweedfs
    opts = {"key": creds.access_key, "secret": creds.secret_key,
            "client_kwargs": {"endpoint_url": cfg.s3_endpoint, "region_name": "us-east-1"}}
    fs = s3fs.S3FileSystem(**opts)
    prefix = f"{cfg.bucket}/test-distributed-{secrets.token_hex(4)}/interim"
    fs.put(str(interim) + "/", prefix + "/", recursive=True)
    try:
        assert fs.exists(f"{prefix}/plays/part-00005.parquet")
        s3_report = _run(f"s3://{prefix}", tmp_path / "s3", cluster.address, storage_options=opts)
        assert s3_report == ref_report
        assert _digest(tmp_path / "s3" / "plays") == ref_digest
        assert (tmp_path / "s3" / "items.parquet").read_bytes() == ref_items
        with pytest.raises(FileNotFoundError, match="run the clean stage first"):
            _run(f"s3://{cfg.bucket}/no-such-prefix", tmp_path / "none", cluster.address, storage_options=opts)
    finally:
        fs.rm(prefix.rsplit("/", 1)[0], recursive=True)


def test_worker_killed_mid_transform_completes_or_fails_cleanly(cluster, tmp_path):
    big = tmp_path / "interim-big"
    _write_interim(big, n=300_000, parts=12, seed=0)
    # its own reference (threads), to compare bytes after the failure
    expected = _run(big, tmp_path / "ref", "threads")
    expected_digest = _digest(tmp_path / "ref" / "plays")

    out = tmp_path / "killed"
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["report"] = _run(big, out, cluster.address)
        except BaseException as err:  # noqa: BLE001 - recorded and checked below
            outcome["error"] = err

    th = threading.Thread(target=target, daemon=True)
    t0 = time.monotonic()
    th.start()
    victim = cluster.workers[1]
    # kill once the run is under way (the pairs spill folder exists), else after 2 s
    while time.monotonic() - t0 < 2.0 and not list(tmp_path.glob("killed/.tmp-plays-*-pairs")):
        time.sleep(0.05)
    assert th.is_alive(), "the transform finished before the worker could be killed (make the input bigger)"
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    th.join(120)
    assert not th.is_alive(), "transform hung after a worker was killed"
    leftovers = [p.name for p in out.glob(".tmp-*")] if out.exists() else []
    assert leftovers == [], f"temporary outputs left behind: {leftovers}"
    if "error" in outcome:
        # failed cleanly: a clear exception, and nothing at the output path
        print(f"transform failed after the worker was killed: {type(outcome['error']).__name__}: {outcome['error']}")
        assert not (out / "plays").exists()
    else:
        print("transform completed on the surviving worker after the other was killed")
        assert outcome["report"] == expected
        assert _digest(out / "plays") == expected_digest

    # rerun (one surviving worker): identical bytes
    assert cluster.live_workers() == 1
    rerun = _run(big, tmp_path / "rerun", cluster.address)
    assert rerun == expected
    assert _digest(tmp_path / "rerun" / "plays") == expected_digest


def test_dvc_exp_run_with_dask_address_uses_the_cluster(cluster, tmp_path):
    """`dvc exp run -S dask.address=tcp://...`: the pipeline runs unchanged on the cluster, same bytes."""
    from tests.support.pipeline import SMALL_PARAMS, dvc, lock_outs, make_clone

    repo = make_clone(tmp_path / "repo", SMALL_PARAMS)
    dvc(["repro"], repo)
    local = lock_outs(repo / "dvc.lock", ["transform", "interactions"], timings=False)

    def transitions() -> int:
        from distributed import Client

        with Client(cluster.address, timeout="5s", set_as_default=False) as c:
            return c.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)

    before = transitions()
    dvc(["exp", "run", "-n", "on-cluster", "-S", f"dask.address={cluster.address}"], repo)
    assert transitions() > before + 10, "the transform's tasks did not run on the cluster"
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["dask"]["address"] == cluster.address
    assert lock_outs(repo / "dvc.lock", ["transform", "interactions"], timings=False) == local
    shown = dvc(["exp", "show", "--json"], repo).stdout
    assert "on-cluster" in shown and cluster.address in shown
