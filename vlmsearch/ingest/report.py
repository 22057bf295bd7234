"""What an ingest run did: counts, per-file failures and warnings, time per stage."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Failure:
    path: str
    error: str


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0  # stored images and documents that gained joint vectors or topics
    unchanged: int = 0
    failed: list[Failure] = field(default_factory=list)
    skipped: int = 0  # files in folders with types we do not index
    warnings: list[Failure] = field(default_factory=list)  # indexed, but with something missing
    passages: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def merge(self, other: IngestReport) -> None:
        """Add a batch's counts (not its wall time: batches run inside this report's run)."""
        for name in ("added", "updated", "unchanged", "skipped", "passages"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed += other.failed
        self.warnings += other.warnings
        self.add_seconds(other.stage_seconds)

    def add_seconds(self, stage_seconds: dict[str, float]) -> None:
        for stage, seconds in stage_seconds.items():
            self.stage_seconds[stage] += seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "failed": [asdict(f) for f in self.failed],
            "skipped": self.skipped,
            "warnings": [asdict(w) for w in self.warnings],
            "passages": self.passages,
            "seconds": round(self.seconds, 3),
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
        }
