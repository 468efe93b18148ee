"""Accelerators for capacity planning: published memory, bandwidth and peak dense FLOP/s, and an
hourly price that is an assumption (on-demand cloud list prices vary by provider and month).
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 1e9
TFLOPS = 1e12


@dataclass(frozen=True, slots=True)
class Hardware:
    name: str
    memory_bytes: float
    bandwidth_bytes_s: float
    bf16_flops: float  # dense tensor-core peak, no sparsity
    fp8_flops: float | None  # None where the chip has no fp8 tensor cores
    hourly_usd: float  # per accelerator: an assumption, override with --hourly-usd
    source: str = ""

    def peak_flops(self, bytes_per_weight: float) -> float:
        """The peak that applies: fp8 tensor cores for 8-bit (or smaller) weights where present."""
        if bytes_per_weight <= 1 and self.fp8_flops:
            return self.fp8_flops
        return self.bf16_flops


GPUS: dict[str, Hardware] = {
    g.name: g
    for g in (
        Hardware("l4", 24 * GB, 300 * GB, 121 * TFLOPS, 242 * TFLOPS, 0.80,
                 "NVIDIA L4 datasheet: 24 GB GDDR6, 300 GB/s, 242/485 TFLOPS bf16/fp8 sparse"),
        Hardware("a10g", 24 * GB, 600 * GB, 125 * TFLOPS, None, 1.01,
                 "NVIDIA A10 datasheet (AWS A10G: same memory system): 24 GB GDDR6, 600 GB/s,"
                 " 125 TFLOPS bf16 dense; price: AWS g5.xlarge on-demand"),
        Hardware("a100-80gb", 80 * GB, 2039 * GB, 312 * TFLOPS, None, 2.00,
                 "NVIDIA A100 80GB SXM datasheet: 2,039 GB/s HBM2e, 312 TFLOPS bf16 dense"),
        Hardware("h100-sxm", 80 * GB, 3350 * GB, 989 * TFLOPS, 1979 * TFLOPS, 3.00,
                 "NVIDIA H100 SXM datasheet: 80 GB HBM3, 3.35 TB/s, 989/1,979 TFLOPS bf16/fp8"
                 " dense"),
        Hardware("h200", 141 * GB, 4800 * GB, 989 * TFLOPS, 1979 * TFLOPS, 3.80,
                 "NVIDIA H200 SXM datasheet: 141 GB HBM3e, 4.8 TB/s, 989/1,979 TFLOPS bf16/fp8"
                 " dense"),
    )
}  # fmt: skip


def gpu(name: str) -> Hardware:
    try:
        return GPUS[name]
    except KeyError:
        raise LookupError(f"unknown GPU {name!r}; presets: {', '.join(GPUS)}") from None
