"""A work directory for an agent session: log files of ~5k tokens, each with one line that matters.

Each file holds ~75 lines that share one template (timestamp, level, worker, batch, shard, counts,
latency, hex checksum, ``status=ok``), all dense with numbers, and one *needle*: a reviewer's note
with an identifier of its own (``ticket QX-4821-ALDER``) somewhere in the middle. An agent that reads
the files one after another should, at the end, still be able to tell every identifier; what share
of them is still visible in its last request measures how well the history was kept.

Pure apart from :func:`seed_workspace`, which writes the files. Deterministic for a given seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

LINES_PER_FILE = 75
WORDS = (
    "alder",
    "birch",
    "cedar",
    "dogwood",
    "elm",
    "fir",
    "ginkgo",
    "hazel",
    "ilex",
    "juniper",
    "larch",
    "maple",
    "nutmeg",
    "oak",
    "poplar",
    "quince",
    "rowan",
    "spruce",
    "tamarind",
    "upas",
    "viburnum",
    "willow",
    "yew",
    "zelkova",
)


@dataclass(frozen=True, slots=True)
class LogFile:
    """One seeded file: its name (relative to the work directory), its lines and its needle."""

    name: str
    lines: tuple[str, ...]
    needle_id: str  # the identifier only the needle line holds
    needle_line: str

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    @property
    def end_marker(self) -> str:
        """The file's last line (present in a tool result only if the result reached the end)."""
        return self.lines[-1]


@dataclass(frozen=True, slots=True)
class Workspace:
    root: Path
    files: tuple[LogFile, ...]

    @property
    def needle_ids(self) -> tuple[str, ...]:
        return tuple(f.needle_id for f in self.files)

    def path_of(self, index: int) -> Path:
        return self.root / self.files[index].name


def log_file(index: int, rng: random.Random, lines: int = LINES_PER_FILE) -> LogFile:
    """The ``index``-th file: ``lines`` template lines, one needle among them, an end line."""
    name = f"logs/ingest-{index + 1:02d}.log"
    day = 1 + index % 28
    needle_at = rng.randrange(lines // 4, 3 * lines // 4)
    needle_id = f"QX-{rng.randrange(1000, 9999)}-{WORDS[index % len(WORDS)].upper()}"
    out: list[str] = [f"# ingest log {index + 1:02d}: worker batches of 2026-11-{day:02d}"]
    second = rng.randrange(0, 3600)
    needle_line = ""
    for i in range(lines):
        second += rng.randrange(1, 9)
        stamp = f"2026-11-{day:02d}T{8 + second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
        stamp += f".{rng.randrange(1000):03d}Z"
        if i == needle_at:
            needle_line = (
                f"{stamp} NOTE  reviewer: the batch totals above were checked by hand; "
                f"ticket {needle_id} tracks the follow-up"
            )
            out.append(needle_line)
            continue
        out.append(
            f"{stamp} INFO  worker-{rng.randrange(1, 17):02d} batch={rng.randrange(10_000, 99_999)} "
            f"shard={rng.randrange(64):02d} rows={rng.randrange(100, 9_999)} "
            f"bytes={rng.randrange(100_000, 9_999_999)} latency_ms={rng.randrange(5, 999)} "
            f"checksum={rng.getrandbits(64):016x} status=ok"
        )
    out.append(f"# end of ingest log {index + 1:02d} ({lines} entries)")
    return LogFile(name, tuple(out), needle_id, needle_line)


def make_files(count: int, seed: int) -> tuple[LogFile, ...]:
    rng = random.Random(seed)
    return tuple(log_file(i, rng) for i in range(count))


def seed_workspace(root: Path, count: int, seed: int = 0) -> Workspace:
    """Write ``count`` log files under ``root`` (created) and return what was written."""
    files = make_files(count, seed)
    for f in files:
        target = root / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f.text, encoding="utf-8")
    return Workspace(root, files)
