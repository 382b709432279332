"""Summarise a `py-spy record --format raw --threads --idle` profile (what `run.py --py-spy`
writes): for the threads whose name starts with `--threads` (default `Worker-`, Huey's
consumer threads), the share of samples each function is on the stack (inclusive), and the
share each leaf frame has (self). With `--idle` py-spy also samples waiting threads, so the
shares are of wall-clock thread time, waits on locks, fsync and sockets included.

    .venv/bin/python bench/send/pyspy_summary.py PROFILE [--threads Worker-] [--top 40]
        [--match tidings/] [--depth 0]

`--match` keeps only frames whose file contains the string in the inclusive table (e.g.
`tidings/` for Tidings' own functions); `--leaf-lines` keeps line numbers in the self table.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse(path: Path, thread_prefix: str) -> tuple[list[tuple[list[str], int]], int]:
    samples: list[tuple[list[str], int]] = []
    skipped = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1]
        if not thread.startswith(thread_prefix):
            skipped += int(count_text)
            continue
        samples.append((frames[1:], int(count_text)))
    return samples, skipped


def short(frame: str, keep_line: bool) -> str:
    match = FRAME.match(frame)
    if match is None:
        return frame
    file = match["file"]
    if keep_line and match["line"]:
        return f"{match['func']} ({file}:{match['line']})"
    return f"{match['func']} ({file})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--threads", default="Worker-", help="thread name prefix")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--match", default="", help="inclusive table: file must contain this")
    parser.add_argument("--leaf-lines", action="store_true", help="line numbers in self table")
    args = parser.parse_args()

    samples, skipped = parse(args.profile, args.threads)
    total = sum(count for _, count in samples)
    if not total:
        print(f"no samples of threads starting with {args.threads!r}")
        return 1
    inclusive: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    for frames, count in samples:
        seen = {short(frame, False) for frame in frames}
        for name in seen:
            if args.match in name:
                inclusive[name] += count
        if frames:
            leaf[short(frames[-1], args.leaf_lines)] += count

    print(f"{total} samples of {args.threads}* threads ({skipped} of other threads skipped)\n")
    print("inclusive (on the stack)")
    for name, count in inclusive.most_common(args.top):
        print(f"  {100 * count / total:5.1f}%  {name}")
    print("\nself (leaf frame)")
    for name, count in leaf.most_common(args.top):
        print(f"  {100 * count / total:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
