"""`tidings test PATH`: run flow tests, each on its own temporary SQLite database, and report
them as text and JUnit XML."""

from __future__ import annotations

import shutil
import tempfile
import time
import traceback
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tidings.config import Settings
from tidings.errors import AppError
from tidings.flowtest.compare import MESSAGE_SHOWN, RUN_SHOWN, Section, actual_text, compare, diff
from tidings.flowtest.engine import FlowError, FlowRunner
from tidings.flowtest.spec import FlowTest
from tidings.kit.time import VirtualClock, use_clock
from tidings.migrate import upgrade
from tidings.runtime import Runtime, build_runtime


@dataclass
class Result:
    test: FlowTest
    passed: bool
    seconds: float
    # A mismatch: the unified diff of expected and actual.
    diff: str = ""
    # The test could not run (bad definitions, an event refused): why.
    error: str = ""
    # What happened (every message sent, every run), in the expectations' format.
    actual: str = ""

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "ERROR" if self.error else "FAIL"


def _settings(data_dir: Path) -> Settings:
    # Whatever the environment says, a flow test runs on SQLite in its own directory, its
    # jobs nowhere (the runner keeps them), and never sends (capturing providers).
    return Settings(
        data_dir=data_dir,
        database_url=None,
        job_storage="sqlite",
        job_queue="flowtest",
        # A test database is thrown away: no fsync per commit.
        sqlite_synchronous="normal",
        secret_key=None,
    )


class Workspace:
    """A temporary directory with a database migrated once, copied for each test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        template = root / "template"
        runtime = build_runtime(_settings(template))
        try:
            upgrade(runtime.database)
        finally:
            runtime.close()
        self.template = template
        self._count = 0

    @contextmanager
    def runtime(self) -> Iterator[Runtime]:
        self._count += 1
        data_dir = self.root / f"test-{self._count}"
        data_dir.mkdir()
        for name in ("tidings.db", "secret_key"):
            if (self.template / name).exists():
                shutil.copy2(self.template / name, data_dir / name)
        runtime = build_runtime(_settings(data_dir))
        try:
            yield runtime
        finally:
            runtime.close()
            shutil.rmtree(data_dir, ignore_errors=True)


def run_test(workspace: Workspace, test: FlowTest) -> Result:
    began = time.perf_counter()
    clock = VirtualClock(test.start)
    try:
        with workspace.runtime() as runtime, use_clock(clock.now):
            runner = FlowRunner(runtime, test, clock)
            try:
                outcome = runner.run()
            finally:
                runner.close()
    except (FlowError, AppError) as exc:
        message = exc.message if isinstance(exc, AppError) else str(exc)
        return Result(test, False, time.perf_counter() - began, error=message)
    except Exception as exc:
        return Result(
            test,
            False,
            time.perf_counter() - began,
            error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}",
        )
    messages = [message.fields() for message in outcome.messages]
    sections: list[Section] = []
    if test.expected_messages is not None:
        sections.append(compare("messages", test.expected_messages, messages, MESSAGE_SHOWN))
    if test.expected_runs is not None:
        sections.append(compare("runs", test.expected_runs, outcome.runs, RUN_SHOWN))
    passed = all(section.ok for section in sections)
    # Everything that happened, as `--show` prints it.
    happened = [
        compare("messages", [], messages, MESSAGE_SHOWN),
        compare("runs", [], outcome.runs, RUN_SHOWN),
    ]
    return Result(
        test,
        passed,
        time.perf_counter() - began,
        diff="" if passed else diff(sections),
        actual=actual_text(happened),
    )


def run_tests(tests: list[FlowTest]) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="tidings-flowtest-") as root:
        workspace = Workspace(Path(root))
        return [run_test(workspace, test) for test in tests]


def text_report(results: list[Result], *, show: bool = False) -> str:
    """One line per test, with its diff (or error) under a failure; with `show`, what
    happened in each test too."""
    lines = []
    for result in results:
        lines.append(f"{result.status} {result.test.name} ({result.test.source})")
        if result.error:
            lines += ["  " + line for line in result.error.rstrip().splitlines()]
        elif result.diff:
            lines += ["  " + line for line in result.diff.splitlines()]
        if show and result.actual:
            lines += ["  what happened:"] + ["    " + line for line in result.actual.splitlines()]
    failed = sum(not result.passed for result in results)
    lines.append(
        f"{len(results) - failed} passed, {failed} failed"
        if results
        else "no flow tests found (files named *.test.yaml or *.test.yml)"
    )
    return "\n".join(lines)


def junit_xml(results: list[Result]) -> bytes:
    failures = sum(1 for result in results if not result.passed and not result.error)
    errors = sum(1 for result in results if result.error)
    suites = ElementTree.Element("testsuites")
    suite = ElementTree.SubElement(
        suites,
        "testsuite",
        name="tidings flow tests",
        tests=str(len(results)),
        failures=str(failures),
        errors=str(errors),
        time=f"{sum(result.seconds for result in results):.3f}",
    )
    for result in results:
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname=result.test.source,
            name=result.test.name,
            time=f"{result.seconds:.3f}",
        )
        if result.error:
            first = result.error.splitlines()[0] if result.error else "error"
            ElementTree.SubElement(case, "error", message=first).text = result.error
        elif not result.passed:
            ElementTree.SubElement(
                case, "failure", message="the flow did not do what the test expects"
            ).text = result.diff
    ElementTree.indent(suites)
    body: bytes = ElementTree.tostring(suites, encoding="utf-8", xml_declaration=True)
    return body
