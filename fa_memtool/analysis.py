"""What the arrays hold: per-attribute details and the suggestions computed from them.

Every estimate here comes from the live arrays at the end of the run: their zeros,
their content hashes across agents, their values after a float32 round trip, their
compressed size. There is no fixed ratio anywhere.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from fa_memtool.report import AttributeGrowth, AttributeReport, Suggestion
from fa_memtool.residency import resident_bytes
from fa_memtool.units import format_bytes

MOSTLY_ZEROS = 0.9  # zero fraction from which a sparse or lazy representation pays
MIN_ARRAY_BYTES = 64 * 1024  # arrays smaller than this are not worth a suggestion
FLOAT32_RTOL = 1e-5
FLOAT32_ATOL = 1e-8
FLOAT32_CHECK_BUDGET = 512 * 1024 * 1024  # bytes of float64 checked per attribute at most
HISTORY_SAMPLE = 32  # history entries compressed to measure the ratio
INDEX_BYTES = 8  # int64 indices, as scipy.sparse uses for large matrices


def numeric_arrays(value: Any) -> list[Any]:
    """The numeric arrays an attribute holds directly or one container level down.

    Object arrays (pymdp-style arrays of matrices), lists, tuples, deques and dict
    values are opened; deeper structure is the sizer's business, not the analysis's.
    """
    import numpy

    found: list[Any] = []

    def visit(item: Any, depth: int) -> None:
        if isinstance(item, numpy.ndarray):
            if item.dtype == object:
                if depth < 3:
                    for element in item.flat:
                        visit(element, depth + 1)
            elif item.dtype.fields is None:
                found.append(item)
        elif depth < 2 and isinstance(item, (list, tuple, deque)):
            for element in item:
                visit(element, depth + 1)
        elif depth < 2 and isinstance(item, dict):
            for element in item.values():
                visit(element, depth + 1)

    visit(value, 0)
    return found


def buffer_owner(array: Any) -> Any:
    """The array that owns ``array``'s buffer (itself unless it is a view)."""
    import numpy

    while isinstance(array.base, numpy.ndarray):
        array = array.base
    return array


def distinct_owners(arrays: Sequence[Any]) -> list[Any]:
    seen: set[int] = set()
    owners = []
    for array in arrays:
        owner = buffer_owner(array)
        if id(owner) not in seen:
            seen.add(id(owner))
            owners.append(owner)
    return owners


def zero_fraction(arrays: Sequence[Any]) -> float | None:
    import numpy

    elements = sum(int(array.size) for array in arrays)
    if elements == 0:
        return None
    zeros = sum(int(array.size) - int(numpy.count_nonzero(array)) for array in arrays)
    return zeros / elements


def describe_value(value: Any) -> tuple[list[int] | None, str | None, int | None]:
    """Shape, dtype and length of a value, where it has them."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    length: int | None
    try:
        length = len(value) if not isinstance(value, (str, bytes)) else None
    except Exception:
        length = None
    return (
        [int(extent) for extent in shape] if isinstance(shape, tuple) else None,
        str(dtype) if dtype is not None else None,
        length,
    )


def resident_of(arrays: Sequence[Any]) -> int | None:
    """Resident bytes of the arrays' buffers (small buffers live in touched heap pages)."""
    owners = distinct_owners(arrays)
    large = [owner for owner in owners if owner.nbytes >= MIN_ARRAY_BYTES and owner.flags.owndata]
    large_ids = {id(owner) for owner in large}
    small = sum(int(owner.nbytes) for owner in owners if id(owner) not in large_ids)
    if not large:
        return small if owners else None
    measured = resident_bytes((int(owner.ctypes.data), int(owner.nbytes)) for owner in large)
    return None if measured is None else measured + small


@dataclass
class AttributeValues:
    """One attribute name across the population: its live values and their arrays."""

    name: str
    values: list[Any] = field(default_factory=list)
    arrays: list[list[Any]] = field(default_factory=list)


IDENTICAL_MIN_BYTES = 1024  # smaller duplicates are not worth sharing


def duplicate_groups(owners: Sequence[Any]) -> list[list[Any]]:
    """Distinct buffer owners grouped by content, only the groups with two or more."""
    from fa_memtool.containers.shared import content_key

    groups: dict[tuple[str, tuple[int, ...], bytes], list[Any]] = {}
    for owner in owners:
        if owner.nbytes >= IDENTICAL_MIN_BYTES:
            groups.setdefault(content_key(owner), []).append(owner)
    return [members for members in groups.values() if len(members) > 1]


def _sparse_bytes(array: Any) -> int:
    """Bytes of CSR storage of the array seen as (shape[0], -1): a value and a column
    index per non-zero, and a row pointer per row (none for a vector)."""
    import numpy

    nonzero = int(numpy.count_nonzero(array))
    row_pointers = int(array.shape[0]) + 1 if array.ndim >= 2 else 0
    return nonzero * (array.itemsize + INDEX_BYTES) + row_pointers * INDEX_BYTES


def _mostly_zeros(attribute: AttributeValues, agents: int) -> Suggestion | None:
    owners = distinct_owners([array for arrays in attribute.arrays for array in arrays])
    candidates = [owner for owner in owners if owner.nbytes >= MIN_ARRAY_BYTES and owner.size]
    dense = sparse = 0
    fractions = []
    for owner in candidates:
        fraction = zero_fraction([owner])
        if fraction is None or fraction < MOSTLY_ZEROS:
            continue
        fractions.append(fraction)
        dense += int(owner.nbytes)
        sparse += _sparse_bytes(owner)
    if not fractions or dense <= sparse:
        return None
    saved = dense - sparse
    return Suggestion(
        kind="mostly-zeros",
        attribute=attribute.name,
        message=(
            f"{attribute.name}: {len(fractions)} array(s) are {min(fractions):.1%}-{max(fractions):.1%} zeros; "
            f"stored sparsely they take {format_bytes(sparse)} instead of {format_bytes(dense)}"
        ),
        estimated_bytes_saved_per_agent=saved / agents,
        estimated_bytes_saved_total=float(saved),
        transformation="lazy-beliefs",
        evidence={"arrays": len(fractions), "dense_bytes": dense, "sparse_bytes": sparse, "min_zero_fraction": min(fractions)},
    )


def _identical(attribute: AttributeValues, agents: int) -> Suggestion | None:
    duplicated = duplicate_groups(distinct_owners([array for arrays in attribute.arrays for array in arrays]))
    if not duplicated:
        return None
    saved = sum((len(members) - 1) * int(members[0].nbytes) for members in duplicated)
    copies = sum(len(members) for members in duplicated)
    return Suggestion(
        kind="identical-across-agents",
        attribute=attribute.name,
        message=(
            f"{attribute.name}: {copies} arrays hold only {len(duplicated)} distinct contents; "
            f"one shared read-only copy of each saves {format_bytes(saved)} in the population"
        ),
        estimated_bytes_saved_per_agent=saved / agents,
        estimated_bytes_saved_total=float(saved),
        transformation="shared-parameters",
        evidence={"copies": copies, "distinct_contents": len(duplicated)},
    )


def _float32_safe(attribute: AttributeValues, agents: int) -> Suggestion | None:
    import numpy

    owners = distinct_owners([array for arrays in attribute.arrays for array in arrays])
    float64 = [owner for owner in owners if owner.dtype == numpy.float64 and owner.nbytes >= MIN_ARRAY_BYTES]
    if not float64:
        return None
    checked = checked_bytes = 0
    worst = 0.0
    for owner in float64:
        if checked_bytes >= FLOAT32_CHECK_BUDGET:
            break
        with numpy.errstate(over="ignore", invalid="ignore"):  # out-of-range values become inf: that is the finding
            round_trip = owner.astype(numpy.float32).astype(numpy.float64)
        if not numpy.allclose(round_trip, owner, rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL, equal_nan=True):
            return None
        finite = numpy.isfinite(owner)
        if finite.any():
            worst = max(worst, float(numpy.max(numpy.abs(round_trip[finite] - owner[finite]))))
        checked += 1
        checked_bytes += int(owner.nbytes)
    total = sum(int(owner.nbytes) for owner in float64)
    saved = total // 2
    return Suggestion(
        kind="float32-safe",
        attribute=attribute.name,
        message=(
            f"{attribute.name}: float64 values survive float32 within rtol={FLOAT32_RTOL:g}, atol={FLOAT32_ATOL:g} "
            f"(largest change {worst:.3g}, {checked} of {len(float64)} arrays checked); halves {format_bytes(total)}"
        ),
        estimated_bytes_saved_per_agent=saved / agents,
        estimated_bytes_saved_total=float(saved),
        transformation="lower-precision",
        evidence={"arrays": len(float64), "arrays_checked": checked, "max_abs_change": worst, "rtol": FLOAT32_RTOL, "atol": FLOAT32_ATOL},
    )


def _history_entries(value: Any) -> Iterator[bytes]:
    import numpy

    if isinstance(value, (list, deque)):
        for entry in list(value)[-HISTORY_SAMPLE:]:
            if isinstance(entry, numpy.ndarray) and entry.dtype != object:
                yield numpy.ascontiguousarray(entry).tobytes()
            elif isinstance(entry, (bytes, bytearray)):
                yield bytes(entry)


def _growth_suggestion(attribute: AttributeValues, growth: AttributeGrowth, agents: int, steps: int) -> Suggestion | None:
    if growth.bounded:
        return None
    sample = attribute.values[0] if attribute.values else None
    gained = max(growth.end_bytes - growth.start_bytes, 0.0)
    evidence: dict[str, Any] = {"bytes_per_step_per_agent": growth.bytes_per_step_per_agent, "steps": steps}
    if isinstance(sample, (list, deque)):
        raw = list(_history_entries(sample))
        if raw:
            plain = sum(len(entry) for entry in raw)
            packed = sum(len(zlib.compress(entry, 6)) for entry in raw)
            ratio = packed / plain if plain else 1.0
            evidence.update({"entries_compressed": len(raw), "zlib_ratio": ratio})
            saved = growth.end_bytes * (1.0 - ratio)
            if saved > 0:
                return Suggestion(
                    kind="unbounded-history",
                    attribute=attribute.name,
                    message=(
                        f"{attribute.name} grows by {format_bytes(growth.bytes_per_step_per_agent)} per agent per step without bound; "
                        f"its last {len(raw)} entries compress to {ratio:.1%} with zlib, and a maxlen bounds it"
                    ),
                    estimated_bytes_saved_per_agent=saved,
                    estimated_bytes_saved_total=saved * agents,
                    transformation="compressed-history",
                    evidence=evidence,
                )
        # Entries that do not compress (or are not arrays): bounding is what helps.
        return Suggestion(
            kind="unbounded-history",
            attribute=attribute.name,
            message=(
                f"{attribute.name} grows by {format_bytes(growth.bytes_per_step_per_agent)} per agent per step without bound; "
                f"a deque(maxlen=...) keeps only the recent entries (this run added {format_bytes(gained)} per agent)"
            ),
            estimated_bytes_saved_per_agent=gained,
            estimated_bytes_saved_total=gained * agents,
            transformation="bounded-history",
            evidence=evidence,
        )
    if isinstance(sample, (dict, set)):
        return Suggestion(
            kind="growing-cache",
            attribute=attribute.name,
            message=(
                f"{attribute.name} ({type(sample).__name__}) keeps gaining entries, "
                f"{format_bytes(growth.bytes_per_step_per_agent)} per agent per step; bound it (an LRU of fixed size) "
                f"(this run added {format_bytes(gained)} per agent)"
            ),
            estimated_bytes_saved_per_agent=gained,
            estimated_bytes_saved_total=gained * agents,
            transformation="bounded-cache",
            evidence=evidence,
        )
    return None


def suggest(
    attributes: list[AttributeValues],
    growth: list[AttributeGrowth],
    *,
    agents: int,
    steps: int,
    sites: dict[str, str],
) -> list[Suggestion]:
    """Rule-based findings, largest estimated saving first."""
    found: list[Suggestion] = []
    by_name = {attribute.name: attribute for attribute in attributes}
    for attribute in attributes:
        for rule in (_mostly_zeros, _identical, _float32_safe):
            suggestion = rule(attribute, agents)
            if suggestion is not None:
                found.append(suggestion)
    for item in growth:
        if item.name in by_name:
            suggestion = _growth_suggestion(by_name[item.name], item, agents, steps)
            if suggestion is not None:
                found.append(suggestion)
    found = [suggestion for suggestion in found if suggestion.estimated_bytes_saved_total > 0]
    for suggestion in found:
        suggestion.site = sites.get(suggestion.attribute)
    found.sort(key=lambda suggestion: suggestion.estimated_bytes_saved_total, reverse=True)
    return found


def attribute_report(size: Any, value: Any, arrays: list[Any], *, resident: int | None) -> AttributeReport:
    """An AttributeReport from the sizer's AttributeSize and the live value.

    ``resident`` must have been measured before anything read the arrays: reading an
    untouched page maps the kernel's zero page, which pagemap then reports present.
    """
    shape, dtype, length = describe_value(value)
    return AttributeReport(
        name=size.name,
        type_name=size.type_name,
        deep_bytes=size.deep_bytes,
        exclusive_bytes=size.exclusive_bytes,
        amortized_bytes=size.amortized_bytes,
        sharers=size.sharers,
        shared=size.sharers > 1 or size.module_global,
        module_global=size.module_global,
        file_backed_bytes=size.file_backed_bytes,
        shape=shape,
        dtype=dtype,
        length=length,
        zero_fraction=zero_fraction(arrays) if arrays else None,
        array_bytes=sum(int(owner.nbytes) for owner in distinct_owners(arrays)) if arrays else None,
        resident_bytes=resident,
    )
