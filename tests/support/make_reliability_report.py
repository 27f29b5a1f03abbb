"""Write reports/reliability.md from one real run of the reliability and security tests.

    python tests/support/make_reliability_report.py            # runs the tests (~8 min on 2 cores), then writes the report
    python tests/support/make_reliability_report.py --from DIR # reuse DIR/junit.xml and DIR/records/ of an earlier run

The tests are run with ``MUSICREC_RELIABILITY_LOG`` set, so each failure-injection test
records what it injected and observed (``tests/support/reliability_log.py``); pytest's JUnit XML
gives every test's outcome. Every number in the report comes from those two sources
(and the bad-input case table in ``tests/unit/ingest/test_bad_inputs.py``), none is typed by hand.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OWN_FILES = ["tests/unit/ingest/test_bad_inputs.py", "tests/unit/core/test_params_errors.py", "tests/unit/ingest/test_clean_properties.py",
             "tests/integration/test_interruption.py", "tests/integration/test_disk_full.py", "tests/integration/test_failing_services.py",
             "tests/integration/test_security.py"]
# failure-injection tests owned by other files: selected by name
OTHER = {"tests/unit/tracking/test_tracking.py": r"unreachable|down|slow|timeout|not_required|hang|unavailable",
         "tests/integration/test_tracking_stages.py": r"fails_fast|warns|down|slow|unreachable",
         "tests/integration/test_distributed.py": r"kill"}


def select_other() -> list[str]:
    ids = []
    for f, pat in OTHER.items():
        if not (ROOT / f).exists():
            continue
        out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", f],
                             cwd=ROOT, capture_output=True, text=True).stdout
        ids += [ln.strip() for ln in out.splitlines() if "::" in ln and re.search(pat, ln.split("::", 1)[1])]
    return ids


def run_tests(work: Path) -> None:
    env = dict(os.environ, MUSICREC_RELIABILITY_LOG=str(work / "records"), OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", DVC_NO_ANALYTICS="1", MLFLOW_DISABLE_TELEMETRY="true", PYTHONHASHSEED="0")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={work / 'junit.xml'}",
           *OWN_FILES, *select_other()]
    print("running:", " ".join(cmd[3:]), flush=True)
    subprocess.run(cmd, cwd=ROOT, env=env, check=False)


def outcomes(junit: Path) -> tuple[list[dict], float]:
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    cases, seconds = [], sum(float(s.get("time", 0)) for s in suites)
    for tc in root.iter("testcase"):
        kids = {c.tag: c for c in tc}
        if "failure" in kids or "error" in kids:
            res = "failed"
        elif "skipped" in kids:
            res = "xfailed" if kids["skipped"].get("type") == "pytest.xfail" else "skipped"
        else:
            res = "passed"
        cases.append({"file": tc.get("classname", "").replace(".", "/") + ".py", "name": tc.get("name", ""),
                      "result": res})
    return cases, seconds


def count(cases: list[dict], file: str, name: str = "") -> Counter:
    return Counter(c["result"] for c in cases if c["file"].endswith(file) and c["name"].startswith(name))


def fmt(c: Counter) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(c.items())) or "not run"


def ok(c: Counter) -> bool:
    return bool(c) and not c.get("failed") and not c.get("skipped")


def load_records(folder: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.exists() else {}


def report(work: Path) -> str:
    sys.path.insert(0, str(ROOT / "tests" / "unit" / "ingest"))
    sys.path.insert(0, str(ROOT / "src"))
    import test_bad_inputs as tbi

    cases, seconds = outcomes(work / "junit.xml")
    rec = load_records(work / "records")
    total = Counter(c["result"] for c in cases)
    rows = []

    # bad inputs: the case table, and what the run made of it
    bad = {c["name"].split("[", 1)[1].rstrip("]"): c["result"] for c in cases
           if c["file"].endswith("test_bad_inputs.py") and c["name"].startswith("test_bad_input_case[")}
    kinds = Counter(type(c.expect).__name__.lower() for c in tbi.CASES if bad.get(c.name) == "passed")
    stage = count(cases, "test_bad_inputs.py", "test_stage_script_on_bad_input")
    rows.append(("Bad input files (`test_bad_inputs.py`)", f"{len(bad)} of {len(tbi.CASES)} cases in the table",
                 f"{kinds['parsed']} parsed, {kinds['quarantined']} quarantined with exact counts, {kinds['error']} "
                 f"stopped with a clear error naming file/line; {sum(r == 'xfailed' for r in bad.values())} strict xfail "
                 f"(known reader bugs, see the cases table); {sum(r == 'failed' for r in bad.values())} failed. "
                 f"Via `stages/clean.py`: {fmt(stage)}"))
    rows.append(("Bad params (`test_params_errors.py`)", f"{sum(count(cases, 'test_params_errors.py').values())} tests",
                 fmt(count(cases, "test_params_errors.py"))))
    rows.append(("Random history rows vs an oracle (`test_clean_properties.py`, Hypothesis)",
                 f"{sum(count(cases, 'test_clean_properties.py').values())} property test(s)",
                 fmt(count(cases, "test_clean_properties.py"))))

    it = rec.get("interruption")
    c = count(cases, "test_interruption.py", "test_sigkill")
    if it:
        stages = ", ".join(f"{k['stage']} (at {k['seconds_after_start']}s, writing `{Path(k['temporary_seen']).name}`)"
                           for k in it["kills"])
        rows.append(("SIGKILL of `dvc repro` mid-stage (`test_interruption.py`)", f"{it['kill_points']} kill points: {stages}",
                     f"{fmt(c)}. After every kill each output was absent or complete; a watcher polled the outputs "
                     f"{it['watcher']['polls']} times, checked {it['watcher']['file_versions_checked']} file versions and saw "
                     f"{it['watcher']['partial_files_seen']} partial files; the next `dvc repro` resumed without user action "
                     f"({it['stale_rwlock_warnings']} stale rwlock entries auto-removed by DVC) and cleaned the temporaries; "
                     f"final outputs: {it['output_files_identical']} of {it['output_files_compared']} files byte-identical "
                     f"to an uninterrupted run, the other {len(it['nondeterministic_files'])} "
                     f"({', '.join(f'`{f}`' for f in it['nondeterministic_files'])}) hold timings / the MLflow run id"))
    else:
        rows.append(("SIGKILL of `dvc repro` mid-stage", "no record", fmt(c)))
    cr = rec.get("concurrent_repro")
    c = count(cases, "test_interruption.py", "test_second_repro")
    rows.append(("Second `dvc repro` while one runs", "1", f"{fmt(c)}" + (
        f": refused (exit {cr['second_returncode']}, `{cr['second_message'][:110]}...`); the first completed "
        f"(exit {cr['first_returncode']})" if cr else "")))
    dfs = [v for k, v in rec.items() if k.startswith("disk_full-")]
    c = count(cases, "test_disk_full.py", "test_stage_on_a_full_disk")
    rows.append(("Disk full while a stage writes (`test_disk_full.py`, RLIMIT_FSIZE)",
                 f"{len(dfs)} runs: {', '.join(sorted({d['stage'] for d in dfs}))} x (no previous output, previous output)",
                 f"{fmt(c)}: exit {sorted({d['exit_code'] for d in dfs})}, message `{dfs[0]['message'][:170]}` "
                 f"(e.g.); previous outputs untouched, no temporaries" if dfs else fmt(c)))
    s3 = rec.get("s3_down_during_push")
    c = count(cases, "test_failing_services.py", "test_s3_stopped")
    rows.append(("S3 server killed during `dvc push` (`test_failing_services.py`)", "1 push of "
                 + (f"{s3['files']} files, server SIGKILLed after {s3['objects_on_remote_at_stop']} object(s) landed"
                    if s3 else "?"),
                 f"{fmt(c)}" + (f": push failed (exit {s3['first_push_returncode']}); while down `{s3['push_while_down_message'][:100]}...` "
                                f"and `make push`'s check: `{s3['check_remote_message'][7:120]}...`; after a restart on the same "
                                f"ports/data the push completed and a fresh clone pulled {s3['files_pulled_identical']} of "
                                f"{s3['files']} files byte-identical" if s3 else "")))
    co = rec.get("s3_corrupted_object")
    c = count(cases, "test_failing_services.py", "test_corrupted")
    rows.append(("Object corrupted on the S3 remote, then `dvc pull`", "1",
                 f"{fmt(c)}" + (f": pull failed (exit {co['pull_returncode']}) with `verify = true`; corrupted files in "
                                f"workspace {co['corrupted_in_workspace']}, in cache {co['corrupted_in_cache']} (DVC's default "
                                f"`verify = false` checked the corrupted bytes out silently: "
                                f"{co['default_verify_false_silently_corrupted']})" if co else "")))
    mlf = ("test_tracking.py", "test_tracking_stages.py")
    ml = Counter(c["result"] for c in cases if c["file"].endswith(mlf))
    names = sorted(c["name"] for c in cases if c["file"].endswith(mlf))
    rows.append(("MLflow tracking server down / slow (`test_tracking.py`, `test_tracking_stages.py`)", f"{len(names)} test(s): "
                 + ", ".join(f"`{n}`" for n in names), fmt(ml)))
    dk = Counter(c["result"] for c in cases if c["file"].endswith("test_distributed.py"))
    names = sorted(c["name"] for c in cases if c["file"].endswith("test_distributed.py"))
    rows.append(("Dask worker SIGKILLed mid-transform (`test_distributed.py`)", f"{len(names)} test(s): "
                 + ", ".join(f"`{n}`" for n in names), fmt(dk)))
    sec = count(cases, "test_security.py")
    scan = rec.get("security_mlflow_scan", {})
    rows.append(("Security (`test_security.py`)", f"{sum(sec.values())} tests",
                 f"{fmt(sec)}" + (f"; MLflow scan of {scan['scanned']['params']} params, {scan['scanned']['tags']} tags, "
                                  f"{scan['scanned']['artifacts']} artifacts of a run with fake AWS keys and an MLflow "
                                  f"password in its environment: {scan['findings']} findings" if scan else "")))

    injections = [count(cases, "test_interruption.py"), count(cases, "test_disk_full.py", "test_stage_on_a_full_disk"),
                  count(cases, "test_failing_services.py"), ml, dk]
    failed_injections = sum(not ok(c) for c in injections)
    compared = (it or {}).get("output_files_compared", 0) + (s3 or {}).get("files", 0)
    lost = "0" if failed_injections == 0 and it and s3 else "unknown (a failure-injection test failed or did not run)"
    stamp = next((t.get("timestamp") for t in ET.parse(work / "junit.xml").getroot().iter("testsuite")), None)
    when = (dt.datetime.fromisoformat(stamp).astimezone(dt.timezone.utc) if stamp
            else dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    head = (f"# Reliability summary\n\nGenerated by `python tests/support/make_reliability_report.py` from one run of the "
            f"reliability and security tests ({when}): {sum(total.values())} tests, {fmt(total)}, "
            f"{seconds:.0f} s. The bad-input corpus, case by case, is in [reliability_cases.md](reliability_cases.md).\n\n"
            f"**Bytes lost: {lost}** (every failure-injection test compares what survives byte for byte: "
            f"{compared} files after the kills and the S3 outage, plus each disk-full stage's previous output).\n\n"
            "| what was injected | tried | outcome |\n|---|---|---|\n")
    body = "\n".join(f"| {a} | {b} | {c.replace('|', '&#124;')} |" for a, b, c in rows)
    failed = sorted(f"{c['file']}::{c['name']}" for c in cases if c["result"] == "failed")
    tail = "\n\nFailed tests: " + (", ".join(f"`{f}`" for f in failed) if failed else "none") + ".\n"
    return head + body + tail


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="src", type=Path, help="folder of an earlier run (junit.xml, records/)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "reliability.md")
    a = ap.parse_args()
    work = a.src
    if work is None:
        work = Path(tempfile.mkdtemp(prefix="musicrec-reliability-"))
        run_tests(work)
    text = report(work)
    a.out.write_text(text, encoding="utf-8")
    print(f"wrote {a.out} (run data in {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
