"""This machine's data caches, read at run time (or forced through ``secact.settings.cache_sizes``).

The sparse permutation kernels keep one tile of the signature hot while every stored gene of a
cell reads a random row of it; whether the tile fits the L2 cache decides their speed. The
sizes come from, in order: ``secact.settings.cache_sizes``; Linux's
``/sys/devices/system/cpu/cpu0/cache``; ``os.sysconf`` (glibc); macOS ``sysctl`` (the
performance cores' L2 on Apple silicon); else :data:`DEFAULT` (32 KiB / 1 MiB / 8 MiB).
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = ["DEFAULT", "CacheSizes", "cache_sizes", "detect", "fingerprint", "parse_size"]

SYSFS = Path("/sys/devices/system/cpu/cpu0/cache")


@dataclass(frozen=True)
class CacheSizes:
    """Data cache sizes of one core, in bytes (L3: the whole level), and where they came from."""

    l1d: int
    l2: int
    l3: int
    source: str

    def describe(self) -> str:
        return f"L1d {_human(self.l1d)}, L2 {_human(self.l2)}, L3 {_human(self.l3)} ({self.source})"


DEFAULT = CacheSizes(l1d=32 << 10, l2=1 << 20, l3=8 << 20, source="defaults")


def _human(n: int) -> str:
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


def parse_size(text: str | int) -> int:
    """``"48K"``, ``"2048K"``, ``"2M"``, ``"2 MiB"``, ``"32768"`` or an int -> bytes."""
    if isinstance(text, int):
        if text <= 0:
            raise ValueError(f"a cache size must be positive, got {text}.")
        return text
    s = str(text).strip().upper().replace("IB", "").replace("B", "").replace(" ", "")
    mult = 1
    if s and s[-1] in "KMG":
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[s[-1]]
        s = s[:-1]
    try:
        value = int(float(s) * mult)
    except ValueError:
        raise ValueError(f"cannot read a cache size from {text!r}; use bytes or e.g. '48K', '2M'.") from None
    if value <= 0:
        raise ValueError(f"a cache size must be positive, got {text!r}.")
    return value


def _from_sysfs(root: Path) -> dict[int, int]:
    sizes: dict[int, int] = {}
    for index in sorted(root.glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            level = int((index / "level").read_text())
            size = parse_size((index / "size").read_text().strip())
        except (OSError, ValueError):
            continue
        if kind in ("Data", "Unified"):
            sizes.setdefault(level, size)
    return sizes


def _from_sysconf() -> dict[int, int]:
    names = {1: "SC_LEVEL1_DCACHE_SIZE", 2: "SC_LEVEL2_CACHE_SIZE", 3: "SC_LEVEL3_CACHE_SIZE"}
    sizes = {}
    for level, name in names.items():
        try:
            value = os.sysconf(name)
        except (ValueError, OSError, AttributeError):
            continue
        if value and value > 0:
            sizes[level] = int(value)
    return sizes


def _from_sysctl() -> dict[int, int]:  # pragma: no cover - macOS
    keys = {
        1: ("hw.perflevel0.l1dcachesize", "hw.l1dcachesize"),
        2: ("hw.perflevel0.l2cachesize", "hw.l2cachesize"),
        3: ("hw.l3cachesize",),
    }
    sizes = {}
    for level, names in keys.items():
        for name in names:
            try:
                out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
                value = int(out.stdout.strip())
            except (OSError, ValueError, subprocess.SubprocessError):
                continue
            if value > 0:
                sizes[level] = value
                break
    return sizes


def _complete(sizes: dict[int, int], source: str) -> CacheSizes | None:
    if 1 not in sizes or 2 not in sizes:
        return None
    return CacheSizes(l1d=sizes[1], l2=sizes[2], l3=sizes.get(3, max(sizes[2], DEFAULT.l3)), source=source)


def detect(sysfs: Path = SYSFS) -> CacheSizes:
    """The caches this machine reports (no settings applied)."""
    found = _complete(_from_sysfs(sysfs), "sysfs") if sysfs.is_dir() else None
    if found is None:
        found = _complete(_from_sysconf(), "sysconf")
    if found is None and platform.system() == "Darwin":  # pragma: no cover - macOS
        found = _complete(_from_sysctl(), "sysctl")
    return found or DEFAULT


@cache
def _detected() -> CacheSizes:
    return detect()


def cache_sizes() -> CacheSizes:
    """The cache sizes in effect: ``secact.settings.cache_sizes`` when set, else :func:`detect`."""
    from .._settings import settings

    forced = settings.cache_sizes
    if forced is None:
        return _detected()
    base = _detected()
    return CacheSizes(
        l1d=forced.get("l1d", base.l1d),
        l2=forced.get("l2", base.l2),
        l3=forced.get("l3", base.l3),
        source="settings",
    )


@cache
def _stack() -> tuple[str, ...]:
    """The CPU model, architecture and compiler stack: fixed for the process, read once."""
    import numba
    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:  # pragma: no cover - not Linux
        pass
    return cpu, platform.machine(), numba.__version__, np.__version__


def fingerprint() -> str:
    """Names this machine, its caches and the compiler stack (the key of the kernel tuning)."""
    caches = cache_sizes()
    cpu, arch, numba_version, numpy_version = _stack()
    parts = [cpu, arch, str(caches.l1d), str(caches.l2), str(caches.l3), numba_version, numpy_version]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]
