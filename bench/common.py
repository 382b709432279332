"""Helpers the benchmarks share: processes, ports, the API key, the SMTP sink, the floors'
server and email, statistics, the machine, the measured source tree, the command line and
the budget verdict every result carries."""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import formataddr, formatdate
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SINK = REPO / "bench" / "send" / "sink.py"
RESULTS_DIR = REPO / "bench" / "results"


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


def wait_for_api_key(
    tidings: str, data_dir: Path, env: dict[str, str], procs: list[Proc], timeout: float = 30
) -> str:
    """`api_key` once `tidings serve` (among `procs`) has made the workspace."""

    def key_or_none() -> str | None:
        with contextlib.suppress(subprocess.CalledProcessError):
            return api_key(tidings, data_dir, env)
        return None

    key: str = wait_for("an API key", key_or_none, procs, timeout)
    return key


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


def pending_events(database: Path) -> int:
    """Events Tidings has stored but not processed yet (its in-process consumer's backlog)."""
    if not database.exists():
        return 0
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        row = connection.execute("SELECT count(*) FROM event WHERE status = 'received'").fetchone()
        return int(row[0])
    finally:
        connection.close()


def start_serve(
    stack: contextlib.ExitStack,
    tidings: str,
    name: str,
    log: Path,
    env: dict[str, str],
    port: int | None = None,
) -> Proc:
    """`tidings serve` on loopback (a free port unless given), stopped with `stack`."""
    port = free_port() if port is None else port
    argv = [tidings, "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = stack.enter_context(running(name, argv, log, env))
    server.port = port
    return server


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


def wait_http(proc: Proc, path: str, timeout: float = 60.0) -> None:
    """Wait until the process answers HTTP on its port (any status: it is up)."""

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{proc.port}{path}", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    wait_for(f"{proc.name} to answer HTTP", answers, [proc], timeout)


def quiesce(
    procs: list[Proc], backlog: Callable[[], int] | None = None, timeout: float = 180.0
) -> float:
    """Wait until the processes are idle (< 5% of a core for two 0.5 s windows in a row) and
    `backlog` (e.g. Tidings' unprocessed events) has stopped changing, so that one run's
    leftovers do not slow the next. Returns the seconds waited."""
    start = time.monotonic()
    window = 0.5
    before = [proc.cpu_seconds() for proc in procs]
    left = backlog() if backlog else 0
    idle_windows = 0
    while time.monotonic() - start < timeout:
        time.sleep(window)
        after = [proc.cpu_seconds() for proc in procs]
        busy = any(
            a is not None and b is not None and a - b > 0.05 * window
            for a, b in zip(after, before, strict=True)
        )
        before = after
        previous, left = left, backlog() if backlog else 0
        idle_windows = 0 if busy or left != previous else idle_windows + 1
        if idle_windows >= 2:
            return time.monotonic() - start
    print(f"  warning: still busy after {timeout:.0f}s; measuring anyway")
    return time.monotonic() - start


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


# -- the floors ---------------------------------------------------------------------------------


def serve_asgi(app: Any, port: int) -> None:
    """Run a floor's app under the uvicorn settings `tidings serve` uses (keep in step with
    the uvicorn.run call in tidings.cli): one process, `loop` and `http` on "auto", access
    log off."""
    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )


def uvicorn_settings() -> dict[str, Any]:
    return {
        "processes": 1,
        "loop": "auto -> " + ("uvloop" if importlib.util.find_spec("uvloop") else "asyncio"),
        "http": "auto -> " + ("httptools" if importlib.util.find_spec("httptools") else "h11"),
        "access_log": False,
        "log_level": "warning",
    }


def sqlite_synchronous(tidings_env: dict[str, str]) -> str:
    """The `PRAGMA synchronous` the measured Tidings uses (its settings, read in its
    environment), so that a floor's commits cost what Tidings' do."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from tidings.config import Settings; print(Settings().sqlite_synchronous.upper())",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=tidings_env,
    ).stdout.strip()


@dataclass(frozen=True)
class InProcess:
    """Tidings in this process, for the benchmarks that measure a part of it without a
    server: its runtime (`tidings.runtime.Runtime`), the secret key of the default
    workspace's test environment, and that key's scope (`tidings.workspace.service.Scope`)."""

    runtime: Any
    key: str
    scope: Any


@contextlib.contextmanager
def in_process(data_dir: Path, **settings: Any) -> Iterator[InProcess]:
    """Tidings on `data_dir` (SQLite, its job queue too, and `settings`): migrated, with the
    default workspace, as `tidings serve` makes it; the runtime is closed on exit. Tidings is
    imported in here, not at the top of this module, which the benchmarks that start
    servers import too: they measure a source tree of their own (`--commit`, `--src`)."""
    from tidings.config import Settings
    from tidings.migrate import upgrade
    from tidings.runtime import build_runtime
    from tidings.workspace import service as workspace_service

    runtime = build_runtime(Settings(data_dir=data_dir, job_storage="sqlite", **settings))
    try:
        upgrade(runtime.database)
        with runtime.database.write() as (session, _):
            keys = workspace_service.bootstrap(session, runtime.cipher)
        assert keys, f"{data_dir} held a workspace already: give a fresh data dir"
        key = next(str(created.key) for created in keys if created.environment == "test")
        with runtime.database.read() as session:
            scope = workspace_service.resolve_keys(session, runtime.cipher, {key})[key]
        yield InProcess(runtime, key, scope)
    finally:
        runtime.close()


def open_sqlite(path: Path, synchronous: str) -> sqlite3.Connection:
    """A floor's connection: WAL, the given synchronous setting, autocommit (BEGIN/COMMIT
    are explicit)."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


def email_bytes(
    *, sender: tuple[str, str], to: str, subject: str, text: str, html: str, message_id: str
) -> bytes:
    """An email in the shape Tidings' SMTP provider writes (tidings.provider.email.smtp):
    the same headers, UTF-8 bodies in base64, text alone or text and HTML as alternatives."""
    lines = [
        f"From: {formataddr(sender)}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Message-ID: {message_id}",
        f"Date: {formatdate(localtime=False)}",
        "MIME-Version: 1.0",
    ]
    text_part = 'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: base64'
    html_part = 'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: base64'

    def block(header_lines: list[str]) -> bytes:
        return ("\r\n".join(header_lines) + "\r\n\r\n").encode("ascii")

    def body(content: str) -> bytes:
        return base64.encodebytes(content.encode("utf-8")).replace(b"\n", b"\r\n")

    if not html:
        return block([*lines, text_part]) + body(text)
    boundary = f"=_{os.urandom(16).hex()}"
    lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    delimiter = f"--{boundary}\r\n".encode("ascii")
    return b"".join(
        (
            block(lines),
            delimiter,
            block([text_part]),
            body(text),
            delimiter,
            block([html_part]),
            body(html),
            f"--{boundary}--\r\n".encode("ascii"),
        )
    )


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
    packages = ("tidings", "uvicorn", "starlette", "fastapi", "uvloop", "httptools", "huey")
    for package in (*packages, "sqlalchemy", "orjson", "python-liquid", "aiosmtpd"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    versions["sqlite"] = sqlite3.sqlite_version
    if shutil.which("wrk"):
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        versions["wrk"] = wrk.stdout.split("Copyright")[0].strip()
    commit = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "git": commit,
        "load_average": [round(value, 2) for value in os.getloadavg()],
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


# -- the write lock ---------------------------------------------------------------------------

_LOCK_SAMPLE = re.compile(r'^tidings_write_lock_(\w+)_total\{thread="([^"]*)"\} (\S+)$')


def write_lock_use(port: int, key: str) -> dict[str, dict[str, float]] | None:
    """From `tidings serve`'s scrape: by kind of thread, the seconds it held SQLite's write
    lock (`held`), waited for it (`wait`) and how often it took it (`acquisitions`), so far.
    None when the scrape has none (a server database)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    use: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        found = _LOCK_SAMPLE.match(line)
        if found:
            what, thread, number = found.groups()
            use.setdefault(thread, {})[what.removesuffix("_seconds")] = float(number)
    return use or None


def write_lock_shares(
    before: dict[str, dict[str, float]] | None,
    after: dict[str, dict[str, float]] | None,
    seconds: float,
) -> dict[str, dict[str, float]]:
    """Between two `write_lock_use` readings `seconds` apart: by kind of thread, the share
    of that time it held the lock and waited for it (summed over its threads, so a pool's
    wait can pass 1), and its acquisitions per second."""
    if before is None or after is None or seconds <= 0:
        return {}
    shares = {}
    for thread, now in sorted(after.items()):
        then = before.get(thread, {})

        def grew(what: str, now: dict[str, float] = now, then: dict[str, float] = then) -> float:
            return now.get(what, 0.0) - then.get(what, 0.0)

        if grew("acquisitions") > 0:
            shares[thread] = {
                "held": round(grew("held") / seconds, 3),
                "wait": round(grew("wait") / seconds, 3),
                "per_s": round(grew("acquisitions") / seconds, 1),
            }
    return shares


# -- py-spy -----------------------------------------------------------------------------------


def start_py_spy(
    stack: contextlib.ExitStack,
    targets: list[Proc],
    work_dir: Path,
    env: dict[str, str],
    mode: str,
    results_dir: Path,
) -> dict[str, Path]:
    """py-spy (raw format) on each target until the stack closes; returns the profile paths.

    `cpu`: every thread py-spy sees running; `wall`: idle ones too; `gil`: only the thread
    holding the GIL, which is where the interpreter's one core of Python actually goes."""
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
                    *({"wall": ["--idle"], "gil": ["--gil"]}.get(mode, [])),
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


def tidings_executable() -> str:
    """The `tidings` command of this Python's environment (or on PATH)."""
    beside = Path(sys.executable).with_name("tidings")
    found = str(beside) if beside.exists() else shutil.which("tidings")
    if not found:
        raise BenchError("`tidings` is not installed in this environment: pip install -e .")
    return found


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


# -- the command line, the work dir and the verdict ---------------------------------------------


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark takes: --quick, the measured source, Tidings' settings,
    the data dir and the result file."""
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("BENCH_QUICK", "") not in ("", "0"),
        help="fewer rounds and shorter phases (also BENCH_QUICK=1): a check that everything "
        "runs, with noisier figures; options given explicitly still win",
    )
    parser.add_argument(
        "--tidings-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a TIDINGS_* setting for the Tidings processes, e.g. "
        "TIDINGS_SQLITE_SYNCHRONOUS=normal (TIDINGS_* variables of the calling shell are not "
        "passed on; a floor takes the same synchronous setting)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--commit",
        default=None,
        metavar="REV",
        help="measure src/ of this commit (git archive, first on PYTHONPATH), not the working tree",
    )
    source.add_argument(
        "--src", type=Path, default=None, metavar="DIR", help="measure this copy of src/"
    )
    parser.add_argument(
        "--data-root", type=Path, default=None, help="where the temporary data dir is created"
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary data dir")
    parser.add_argument("--output", type=Path, default=None, help="result JSON path")


def apply_defaults(args: argparse.Namespace, full: dict[str, Any], quick: dict[str, Any]) -> None:
    """Options left unset (None) take their full-run default, or with --quick the quick one."""
    for name, value in full.items():
        if getattr(args, name) is None:
            setattr(args, name, quick.get(name, value) if args.quick else value)


def make_work_dir(stack: contextlib.ExitStack, args: argparse.Namespace, prefix: str) -> Path:
    """A temporary directory for the run's data, removed at the end unless --keep-data."""
    work_dir = Path(tempfile.mkdtemp(prefix=prefix, dir=args.data_root))
    if args.keep_data:
        print(f"data dir kept at {work_dir}")
    else:
        stack.callback(shutil.rmtree, work_dir, ignore_errors=True)
    return work_dir


def verdict(
    metric: str, floor: float | None, tidings: float | None, budget: float
) -> dict[str, Any]:
    """The figure every result carries (`bench/report.py` reads it): the floor's and
    Tidings' rates measured in the same run, their ratio and the budget on it."""
    ratio = round(tidings / floor, 3) if floor and tidings is not None else None
    return {
        "metric": metric,
        "floor": floor,
        "tidings": tidings,
        "ratio": ratio,
        "budget": budget,
        "met": ratio is not None and ratio >= budget,
    }


def print_verdict(name: str, figures: dict[str, Any]) -> None:
    def rate(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    ratio = "-" if figures["ratio"] is None else f"{figures['ratio']:.3f}"
    print(
        f"\n{name}: floor {rate(figures['floor'])} {figures['metric']}, Tidings "
        f"{rate(figures['tidings'])} {figures['metric']}, ratio {ratio} "
        f"(budget >= {figures['budget']}): {'MET' if figures['met'] else 'NOT MET'}"
    )


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
