"""Cores as a container sees them, and the arithmetic from a measured rate to servers needed.

``available_cores()`` reads the CPU quota first (cgroup v2 ``cpu.max``, or v1's
``cpu.cfs_quota_us``): on Binder ``os.cpu_count()`` reports the host's cores, not the one or
two the container may use, and a worker count from it would oversubscribe the quota.

``capacity(rps_per_core, users_per_day=...)`` goes from a requests-per-second-per-core figure a
lesson measured to the cores and servers a given traffic needs, one named step at a time:
average rate, peak rate, cores at the target utilisation, servers.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from perflab.errors import PerflabError

__all__ = ["CapacityPlan", "available_cores", "capacity"]

_CGROUP = Path("/sys/fs/cgroup")
SECONDS_PER_DAY = 86_400


def _quota_cores(root: Path) -> float | None:
    """Return the CPU quota in cores (cgroup v2, then v1), or None when there is none."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def available_cores(cgroup: Path = _CGROUP) -> float:
    """Return the cores this process may use: the CPU quota, the CPUs it may run on, or all.

    A quota can be fractional (1.5 cores); the result never exceeds the CPUs the process may
    run on.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _quota_cores(cgroup)
    return min(float(cpus), quota) if quota else float(cpus)


@dataclass(frozen=True)
class CapacityPlan:
    """The steps from a traffic estimate and a measured rate to the servers it needs."""

    rps_per_core: float
    users_per_day: int
    requests_per_user: float
    peak_factor: float
    utilisation: float
    cores_per_server: int

    @property
    def average_rps(self) -> float:
        return self.users_per_day * self.requests_per_user / SECONDS_PER_DAY

    @property
    def peak_rps(self) -> float:
        return self.average_rps * self.peak_factor

    @property
    def cores(self) -> int:
        return max(1, math.ceil(self.peak_rps / (self.rps_per_core * self.utilisation)))

    @property
    def servers(self) -> int:
        return max(1, math.ceil(self.cores / self.cores_per_server))

    def steps(self) -> list[str]:
        """Return the arithmetic, one line per step, with the assumptions named."""
        return [
            f"{self.users_per_day:,} users a day x {self.requests_per_user:g} requests each / "
            f"{SECONDS_PER_DAY:,} s = {self.average_rps:,.1f} requests/s on average",
            f"x {self.peak_factor:g} at the busiest hour (assumed) = {self.peak_rps:,.1f} "
            "requests/s at peak",
            f"/ ({self.rps_per_core:,.0f} requests/s per core, measured, x "
            f"{self.utilisation:.0%} target utilisation) = {self.cores:,} "
            f"core{'s' if self.cores != 1 else ''}",
            f"/ {self.cores_per_server} cores per server = {self.servers:,} "
            f"server{'s' if self.servers != 1 else ''}",
        ]

    def _repr_markdown_(self) -> str:
        return "\n".join(f"{i}. {step}" for i, step in enumerate(self.steps(), 1))

    def __str__(self) -> str:
        return "\n".join(self.steps())


def capacity(
    rps_per_core: float,
    *,
    users_per_day: int = 1_000_000,
    requests_per_user: float = 20,
    peak_factor: float = 5,
    utilisation: float = 0.6,
    cores_per_server: int = 4,
) -> CapacityPlan:
    """Return the plan: cores and servers for ``users_per_day`` at the measured rate.

    ``peak_factor``: the busiest hour's rate over the day's average. ``utilisation``: the share
    of each core to plan for (the rest is headroom for spikes, deploys and a lost server).
    """
    if rps_per_core <= 0 or users_per_day < 0 or requests_per_user < 0:
        raise PerflabError("rps_per_core must be above 0, users and requests 0 or more.")
    if peak_factor < 1 or not 0 < utilisation <= 1 or cores_per_server < 1:
        raise PerflabError(
            "peak_factor must be 1 or more, utilisation in (0, 1], cores_per_server 1 or more "
            f"(got {peak_factor}, {utilisation}, {cores_per_server})."
        )
    return CapacityPlan(
        rps_per_core=rps_per_core,
        users_per_day=users_per_day,
        requests_per_user=requests_per_user,
        peak_factor=peak_factor,
        utilisation=utilisation,
        cores_per_server=cores_per_server,
    )
