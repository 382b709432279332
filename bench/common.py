"""Helpers the benchmarks share: processes, ports, the API key, the SMTP sink, statistics,
the machine and the measured source tree."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SINK = REPO / "bench" / "send" / "sink.py"


class BenchError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM the process group (uvicorn shuts down gracefully), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def api_key(tidings: str, data_dir: Path, env: dict[str, str]) -> str:
    """An active key of the data dir's workspace, the test environment's first."""
    output = subprocess.run(
        [tidings, "keys", "list", "--json", "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
        env=env,
        timeout=60,
    ).stdout
    keys = [row for row in json.loads(output) if not row.get("revoked")]
    if not keys:
        raise BenchError("`tidings keys list --json` returned no active key")
    keys.sort(key=lambda row: row["environment"] != "test")
    return str(keys[0]["key"])


def filesystem_of(path: Path) -> str:
    best, kind = "", "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            mount, fstype = parts[1], parts[2]
            if str(path).startswith(mount) and len(mount) > len(best):
                best, kind = mount, fstype
    return kind


# -- processes -------------------------------------------------------------------------------


def peak_rss_mb(pid: int) -> float | None:
    """A process's peak resident memory so far (VmHWM), in MB, Linux only."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(
                f"{self.name} exited with code {self.process.returncode}:\n{self.log_tail()}"
            )

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the process (all its threads), Linux only."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float | None:
    """CPU seconds all processes of the machine have used so far (/proc/stat), Linux only."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


@contextlib.contextmanager
def running(
    name: str,
    argv: list[str],
    log: Path,
    env: dict[str, str],
    stdout: int | None = None,
    stop_signal: int = signal.SIGTERM,
) -> Iterator[Proc]:
    with log.open("wb") as log_file:
        # A session (process group) of its own: Ctrl-C reaches this script only, which then
        # stops the whole group.
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file if stdout is None else stdout,
            stderr=log_file if stdout is not None else subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    proc = Proc(name, process, log)
    try:
        yield proc
    finally:
        if stop_signal != signal.SIGTERM and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(30)
        stop_process(process)
        if process.stdout is not None:
            process.stdout.close()


def wait_for(what: str, check: Any, procs: list[Proc], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            proc.check_alive()
        value = check()
        if value:
            return value
        time.sleep(0.05)
    tails = "\n".join(f"--- {proc.name}\n{proc.log_tail()}" for proc in procs)
    raise BenchError(f"{what}: not within {timeout:.0f}s\n{tails}")


def start_sink(
    stack: contextlib.ExitStack, work_dir: Path, env: dict[str, str], script: Path = SINK
) -> Proc:
    """Start an SMTP sink (by default `bench/send/sink.py`) and learn its port."""
    out = work_dir / "sink.jsonl"
    out.touch()
    sink = stack.enter_context(
        running(
            "sink",
            [sys.executable, str(script), "--out", str(out)],
            work_dir / "sink.log",
            env,
            stdout=subprocess.PIPE,
        )
    )
    assert sink.process.stdout is not None
    line: list[bytes] = []
    reader = threading.Thread(
        target=lambda: line.append(sink.process.stdout.readline()),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    wait_for("the SMTP sink to listen", lambda: line and line[0], [sink], 30)
    ready = json.loads(line[0])
    sink.port = int(ready["port"])
    return sink


# -- statistics ------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


# -- the machine and the measured source -----------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in ("tidings", "huey", "sqlalchemy", "uvicorn", "fastapi", "aiosmtpd", "uvloop"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    versions["sqlite"] = sqlite3.sqlite_version
    commit = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    load = ""
    with contextlib.suppress(OSError):
        load = Path("/proc/loadavg").read_text().strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "git": commit,
        "loadavg_before": load,
    }


def git(*argv: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *argv], capture_output=True, text=True, check=True
    ).stdout.strip()


def source_tree(commit: str | None, src: Path | None, work_dir: Path) -> dict[str, str]:
    """Where the measured Tidings comes from: the working tree (the editable install),
    `src/` of a commit extracted with `git archive`, or a directory given with --src."""
    if src is not None:
        return {"tree": "--src", "commit": "(unknown)", "path": str(src.resolve())}
    if commit is None:
        return {"tree": "working tree", "commit": git("describe", "--always", "--dirty")}
    sha = git("rev-parse", "--verify", f"{commit}^{{commit}}")
    target = work_dir / "src-archive"
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", sha, "src"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return {"tree": f"git archive {commit}", "commit": sha, "path": str(target / "src")}


# -- py-spy -----------------------------------------------------------------------------------


def start_py_spy(
    stack: contextlib.ExitStack,
    targets: list[Proc],
    work_dir: Path,
    env: dict[str, str],
    mode: str,
    results_dir: Path,
) -> dict[str, Path]:
    """py-spy (raw format, all threads; `wall` also samples idle ones) on each target until
    the stack closes; returns the profile paths."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise BenchError("--py-spy: py-spy is not installed (`.venv/bin/pip install py-spy`)")
    outputs = {}
    for target in targets:
        out = results_dir / f"{work_dir.name}-{target.name}-{mode}.pyspy.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        stack.enter_context(
            running(
                f"py-spy {target.name}",
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(target.pid),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--threads",
                    *(["--idle"] if mode == "wall" else []),
                    "--output",
                    str(out),
                ],
                work_dir / f"py-spy-{target.name}.log",
                env,
                stop_signal=signal.SIGINT,  # py-spy writes its output on SIGINT.
            )
        )
        outputs[target.name] = out
    time.sleep(1.0)  # Let py-spy attach.
    return outputs


# The outbound targets a benchmark's Tidings may reach: its own fakes, on loopback.
LOOPBACK_ALLOWED = "127.0.0.1,::1,localhost"


def tidings_environment(
    env: dict[str, str], data_dir: Path, source: dict[str, str], assignments: list[str]
) -> dict[str, str]:
    """The environment of the Tidings processes a benchmark starts: its data dir, the measured
    tree's `src/` first on PYTHONPATH (checked by importing it; `source["module"]` records
    what was imported), and the `--tidings-env NAME=VALUE` overrides. The SMTP sink and
    other fakes a benchmark starts listen on loopback, so loopback is an allowed outbound
    target (`LOOPBACK_ALLOWED`)."""
    tidings_env = dict(env, TIDINGS_DATA_DIR=str(data_dir), TIDINGS_OUTBOUND_ALLOW=LOOPBACK_ALLOWED)
    if source.get("path"):
        tidings_env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [source["path"], env.get("PYTHONPATH")])
        )
        print(f"running Tidings from {source['tree']} ({source['commit'][:12]})")
    source["module"] = subprocess.run(
        [sys.executable, "-c", "import tidings; print(tidings.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        env=tidings_env,
    ).stdout.strip()
    if source.get("path") and not source["module"].startswith(source["path"]):
        raise BenchError(f"tidings is imported from {source['module']}, not {source['path']}")
    for assignment in assignments:
        name, _, value = assignment.partition("=")
        tidings_env[name] = value
    return tidings_env


def tidings_executable() -> str | None:
    """The `tidings` command of this Python's environment (or on PATH); None if absent."""
    beside = Path(sys.executable).with_name("tidings")
    return str(beside) if beside.exists() else shutil.which("tidings")


def stop_on_signals(on_signal: Callable[[], None] | None = None) -> None:
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt, so `with` blocks stop the servers."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if on_signal is not None:
            on_signal()
        raise KeyboardInterrupt(f"signal {signum}")

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handler)


def clean_environment() -> dict[str, str]:
    """This process's environment without TIDINGS_ settings, which would skew a run."""
    return {name: value for name, value in os.environ.items() if not name.startswith("TIDINGS_")}


def write_result(result: dict[str, Any], output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"result written to {output}")


def run_benchmark(main: Callable[[], int], stopped: str) -> None:
    """Exit with main()'s status: 130 when interrupted, 1 on a BenchError."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print(f"\ninterrupted; {stopped} stopped", file=sys.stderr)
        sys.exit(130)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
