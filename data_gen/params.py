"""Generation parameters, scale presets and the continuation state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from data_gen.errors import ParamError


@dataclass(frozen=True)
class Preset:
    packets: int
    days: float
    wallets: int
    relayers: int


#: scale presets: tiny for CI (about a second), small, default (>= 1M packets), large (>= 10M)
PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        "tiny": Preset(packets=20_000, days=1.0, wallets=2_000, relayers=24),
        "small": Preset(packets=200_000, days=3.0, wallets=10_000, relayers=32),
        "default": Preset(packets=1_200_000, days=14.0, wallets=50_000, relayers=40),
        "large": Preset(packets=10_000_000, days=120.0, wallets=200_000, relayers=48),
    }
)

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
#: measured: every table's .pgcopy bytes per generated packet (about 700 at tiny and at 1.2M packets)
DISK_BYTES_PER_PACKET = 760
#: measured: the generator's peak resident memory, fixed part and per packet of its biggest batch
BASE_MEMORY_BYTES = 250_000_000
MEMORY_BYTES_PER_PACKET = 2_600


@dataclass(frozen=True)
class ResumeState:
    """Where a previous span ended: the next ids, the next sequence per channel end, the next start."""

    next_packet_id: int = 1
    next_operation_id: int = 1
    next_sequence: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    start: datetime | None = None

    def __post_init__(self) -> None:
        if self.next_packet_id < 1 or self.next_operation_id < 1:
            raise ParamError("next_packet_id and next_operation_id must be at least 1")
        for key, seq in self.next_sequence.items():
            if seq < 1:
                raise ParamError(f"next sequence for {key} must be at least 1, not {seq}")


@dataclass(frozen=True, kw_only=True)
class GenerationParams:
    """What to generate. ``packets``/``days``/``start`` override the preset; ``resume`` continues a span."""

    seed: int = 42
    scale: str = "tiny"
    packets: int | None = None
    start: datetime | None = None
    days: float | None = None
    batch_packets: int = 100_000
    resume: ResumeState | None = None
    #: plant chain halts, relayer outages, congestion and client expiry (see data_gen.incidents);
    #: False gives the incident-free traffic underneath, byte for byte
    incidents: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.incidents, bool):
            raise ParamError(f"incidents must be True or False, not {self.incidents!r}")
        if self.scale not in PRESETS:
            raise ParamError(f"scale {self.scale!r} is unknown: use one of {', '.join(PRESETS)}")
        if not isinstance(self.seed, int) or self.seed < 0 or self.seed >= 2**63:
            raise ParamError(f"seed must be a non-negative integer below 2**63, not {self.seed!r}")
        if self.packets is not None and not 1 <= self.packets <= 2_000_000_000:
            raise ParamError(f"packets must be between 1 and 2e9, not {self.packets}")
        if self.days is not None and not 1 / 24 <= self.days <= 3650:
            raise ParamError(f"days must be between 1/24 (one hour) and 3650, not {self.days}")
        if not 1_000 <= self.batch_packets <= 5_000_000:
            raise ParamError(
                f"batch_packets must be between 1000 and 5000000, not {self.batch_packets}"
            )
        if self.start is not None and self.start.tzinfo is None:
            raise ParamError("start must be timezone-aware (UTC), e.g. 2026-01-01T00:00:00+00:00")
        if (
            self.start is not None
            and self.resume is not None
            and self.resume.start is not None
            and self.start < self.resume.start
        ):
            raise ParamError(
                f"start {self.start.isoformat()} overlaps the existing data (which ends at "
                f"{self.resume.start.isoformat()}): start at or after it"
            )

    @property
    def preset(self) -> Preset:
        return PRESETS[self.scale]

    @property
    def total_packets(self) -> int:
        return self.packets if self.packets is not None else self.preset.packets

    @property
    def span_days(self) -> float:
        if self.days is not None:
            return self.days
        if self.packets is not None:
            # keep the preset's daily rate when only the count changes
            return max(1 / 24, self.preset.days * self.packets / self.preset.packets)
        return self.preset.days

    @property
    def start_time(self) -> datetime:
        if self.start is not None:
            return self.start.astimezone(UTC)
        if self.resume is not None and self.resume.start is not None:
            # continue on the next whole hour after the existing data
            t = self.resume.start.astimezone(UTC)
            return t.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        return DEFAULT_START

    def disk_bytes(self) -> int:
        """About how many bytes the binary COPY files of this generation take (all tables)."""
        return int(self.total_packets * DISK_BYTES_PER_PACKET)

    def memory_bytes(self) -> int:
        """About the peak memory of generating it: a batch is whole hours of about
        ``batch_packets`` packets, at least one hour (a busy hour holds about twice the mean)."""
        per_hour = self.total_packets / max(1.0, self.span_days * 24)
        batch = max(min(self.batch_packets, self.total_packets), 2 * per_hour)
        return int(BASE_MEMORY_BYTES + batch * MEMORY_BYTES_PER_PACKET)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description for the manifest."""
        d = asdict(self)
        if not self.incidents:
            # the manifest of incident-free traffic is the one it always was (no incidents key)
            del d["incidents"]
        d["start"] = self.start_time.isoformat()
        d["days"] = self.span_days
        d["packets"] = self.total_packets
        if self.resume is not None:
            d["resume"] = {
                "next_packet_id": self.resume.next_packet_id,
                "next_operation_id": self.resume.next_operation_id,
                "channels_continued": len(self.resume.next_sequence),
            }
        return d
