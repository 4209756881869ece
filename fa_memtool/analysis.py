"""What the arrays hold (per-attribute details) and the profile's suggestions.

The suggestions are the transformation plugins' own analyses (``fa_mem_analyse``): one
rule per finding, so the profile's "saves X" is exactly the estimate ``fa-mem optimize``
ranks by. Every estimate comes from the live objects at the end of the run (their
zeros, their contents across agents, their values after a float32 round trip, their
compressed size); there is no fixed ratio anywhere.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fa_memtool.report import AttributeReport, Suggestion
from fa_memtool.residency import resident_bytes

if TYPE_CHECKING:  # pluggy is imported only when suggestions are made
    from fa_memtool.hookspecs import AnalysisContext, Candidate
    from fa_memtool.plugins import PluginFailure

MIN_ARRAY_BYTES = 64 * 1024  # buffers smaller than this live in touched heap pages (residency)


class HostViews:
    """numpy views of torch tensors' and JAX arrays' host memory, one base per buffer.

    A tensor's view is a numpy array over its own elements whose base is one array
    over its whole storage, so a slice of a replay buffer and the buffer itself lead to
    one owner (counted once, its residency read once), as numpy views of one array do.
    Views are made only for dense CPU memory of a dtype numpy has (not bfloat16).
    """

    def __init__(self) -> None:
        self._bases: dict[tuple[str, int], Any] = {}

    def view(self, item: Any) -> Any | None:
        import sys

        import numpy

        torch, jax = sys.modules.get("torch"), sys.modules.get("jax")
        try:
            if torch is not None and isinstance(item, torch.Tensor):
                if item.layout is not torch.strided or item.device.type != "cpu" or item.is_meta:
                    return None
                tensor = item.detach()
                if tensor.is_conj() or tensor.is_neg():
                    return None
                storage = tensor.untyped_storage()
                size = tensor.element_size()
                key = ("torch", int(storage.data_ptr()))
                base = self._bases.get(key)
                if base is None:
                    whole = torch.empty(0, dtype=tensor.dtype).set_(storage, 0, (int(storage.nbytes()) // size,))
                    base = self._bases[key] = whole.numpy()
                strides = tuple(int(stride) * size for stride in tensor.stride())
                return numpy.ndarray(tuple(tensor.shape), dtype=base.dtype, buffer=base, offset=int(tensor.storage_offset()) * size, strides=strides)
            array_type = getattr(jax, "Array", None) if jax is not None else None
            if isinstance(array_type, type) and isinstance(item, array_type) and not item.is_deleted():
                if any(device.platform != "cpu" for device in item.devices()) or len(item.devices()) != 1:
                    return None
                key = ("jax", int(item.unsafe_buffer_pointer()))
                base = self._bases.get(key)
                if base is None:
                    base = self._bases[key] = numpy.asarray(item)
                return base
        except Exception:  # a dtype numpy lacks (bfloat16), a backend without pointers
            return None
        return None


def numeric_arrays(value: Any, host_views: HostViews | None = None) -> list[Any]:
    """The numeric arrays an attribute holds directly or one container level down, for
    its report row (array bytes, zeros, residency) and its allocation site.

    Object arrays (pymdp-style arrays of matrices), lists, tuples, deques and dict
    values are opened. The suggestions look deeper: every path (fa_memtool.holdings).
    With ``host_views``, torch tensors and JAX arrays in host memory count as arrays too
    (through numpy views of their memory, see HostViews).
    """
    import numpy

    found: list[Any] = []

    def visit(item: Any, depth: int) -> None:
        if host_views is not None and not isinstance(item, (numpy.ndarray, list, tuple, deque, dict)):
            viewed = host_views.view(item)
            if viewed is not None and viewed.dtype.fields is None:
                found.append(viewed)
                return
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
    """Shape, dtype and length of a value, where it has them (shape and dtype as the
    tree of paths shows them: a tensor's dtype is "float32", as its buffer handler says)."""
    from fa_memtool.sizing import describe_path_object

    described = describe_path_object(value, False)
    length: int | None
    try:
        length = len(value) if not isinstance(value, (str, bytes)) else None
    except Exception:
        length = None
    return described.get("shape"), described.get("dtype"), length


def resident_of(arrays: Sequence[Any]) -> int | None:
    """Resident bytes of the arrays' buffers (small buffers live in touched heap pages)."""
    owners = distinct_owners(arrays)
    # An owner that does not own its data but has no numpy base is a view of another
    # library's memory (a tensor's storage): its pages are measured like an owner's.
    large = [owner for owner in owners if owner.nbytes >= MIN_ARRAY_BYTES and (owner.flags.owndata or owner.base is not None)]
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


def suggest(
    population: list[Any],
    context: AnalysisContext,
    *,
    agents: int,
    steps: int,
    sites: dict[str, str],
    codes: dict[str, str] | None = None,
    manager: Any = None,
    plugins: Iterable[str] | None = None,
) -> tuple[list[Suggestion], list[PluginFailure]]:
    """The profile's findings: the installed plugins' candidates on the live agents, one
    Suggestion per plugin and path with exactly the candidate's estimate, largest
    estimated saving first; and the plugins that failed while analysing.

    ``agents`` is the population size the totals are for, ``steps`` the steps the agents
    ran (the context's, when it does not say), ``sites`` / ``codes`` the allocation site
    and source line by path (an enclosing path's serves a path inside it), from which
    each suggestion's adoption line is made.
    """
    import dataclasses

    from fa_memtool.adoption import adoption_line, site_for
    from fa_memtool.plugins import PluginFailure, analyse, plugin_manager, select

    manager = manager if manager is not None else plugin_manager()
    if not context.steps:
        context = dataclasses.replace(context, steps=steps)
    candidates, failures = analyse(manager, population, context, select(manager, plugins))
    best: dict[tuple[str, str], Candidate] = {}
    for candidate in candidates:  # largest saving first: a plugin's alternatives show its best
        if candidate.estimated_bytes_saved_per_agent > 0:
            best.setdefault((candidate.plugin, candidate.attribute), candidate)
    found = []
    for candidate in best.values():
        suggestion = Suggestion(
            kind=candidate.kind or candidate.plugin,
            attribute=candidate.attribute,
            message=candidate.message or f"{candidate.attribute}: {candidate.reason}",
            estimated_bytes_saved_per_agent=candidate.estimated_bytes_saved_per_agent,
            estimated_bytes_saved_total=candidate.estimated_bytes_saved_per_agent * agents,
            transformation=candidate.plugin,
            evidence=dict(candidate.evidence),
            site=site_for(candidate.attribute, sites),
        )
        try:
            suggestion.adoption = adoption_line(
                manager,
                path=candidate.attribute,
                transformations=[(candidate.plugin, candidate.parameters)],
                code=(codes or {}).get(candidate.attribute),
            )
        except Exception as error:  # a broken third-party plugin must not cost the report
            failures.append(PluginFailure(candidate.plugin, "adoption", f"{type(error).__name__}: {error}"))
        found.append(suggestion)
    found.sort(key=lambda suggestion: suggestion.estimated_bytes_saved_total, reverse=True)
    return found, failures


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
