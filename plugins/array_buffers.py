"""array-buffers: how the array libraries' objects are sized.

fa-mem's own buffer handlers (``fa_memtool.buffers``), registered through the
``fa_mem`` entry-point group exactly as a third-party handler would be:

- numpy: an array that owns its data counts it (``sys.getsizeof`` does); a view holds
  its base; object arrays hold their elements.
- scipy.sparse: a matrix holds its ``data`` / ``indices`` / ``indptr`` (or ``row`` /
  ``col``, or its dict) arrays; shape, dtype and format for the path tree.
- torch: a tensor's storage (``untyped_storage().nbytes()``), keyed by device and data
  pointer, so views, slices and tied weights count once; a leaf's ``.grad``; sparse
  tensors' indices and values.
- JAX: each addressable shard's buffer, keyed by device and buffer pointer; a deleted
  or donated array holds nothing.
- pandas: a DataFrame, Series or Index is its header plus the blocks and arrays it
  holds (pandas' own ``__sizeof__`` adds ``memory_usage(deep=True)``, which would count
  the blocks a second time when they are walked).
- pyarrow: every buffer of an array, chunked array, record batch or table, keyed by
  address and size.
- Any other object exposing the buffer protocol whose ``sys.getsizeof`` is smaller
  than its buffer (a ctypes array, a C extension's buffer): the buffer, keyed by its
  address (last, so every specific handler is asked first).

No handler imports its library: each looks in ``sys.modules``.
"""

from __future__ import annotations

import array as _array
import gc
import mmap
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from fa_memtool.buffers import HOST, Buffer, BufferHandler
from fa_memtool.hookspecs import hookimpl
from fa_memtool.paths import Step


def _module(name: str) -> Any:
    return sys.modules.get(name)


class NumpyHandler(BufferHandler):
    name = "numpy"
    priority = 10

    def types(self) -> tuple[type, ...]:
        numpy = _module("numpy")
        return (numpy.ndarray,) if numpy is not None else ()

    def referents(self, array: Any) -> list[object]:
        owned: list[object] = []
        if array.base is not None:
            owned.append(array.base)
        if type(array) is not _module("numpy").ndarray:
            owned.extend(gc.get_referents(array))  # a subclass's instance dict (np.memmap's _mmap, ...)
        if array.dtype.hasobject:
            if array.dtype.fields is None:
                owned.extend(array.flat)
            else:  # a structured array with object fields
                for name, (field_type, *_) in array.dtype.fields.items():
                    if field_type.hasobject:
                        owned.extend(array[name].flat)
        return owned

    def describe(self, array: Any) -> dict[str, Any]:
        return {"shape": [int(extent) for extent in array.shape], "dtype": str(array.dtype)}


class ScipySparseHandler(BufferHandler):
    name = "scipy.sparse"
    priority = 20

    def types(self) -> tuple[type, ...]:
        sparse = _module("scipy.sparse")
        if sparse is None:
            return ()
        found = [getattr(sparse, name) for name in ("spmatrix", "sparray") if isinstance(getattr(sparse, name, None), type)]
        return tuple(found)

    def describe(self, matrix: Any) -> dict[str, Any]:
        found: dict[str, Any] = {"shape": [int(extent) for extent in matrix.shape], "dtype": str(matrix.dtype)}
        format_name = getattr(matrix, "format", None)
        if isinstance(format_name, str):
            found["format"] = format_name
        return found


def _torch_device(device: Any) -> str:
    text = str(device)
    return HOST if text == "cpu" else text


class TorchHandler(BufferHandler):
    name = "torch"
    priority = 30

    def types(self) -> tuple[type, ...]:
        torch = _module("torch")
        if torch is None:
            return ()
        found = [torch.Tensor]
        module = getattr(getattr(torch, "nn", None), "Module", None)
        if isinstance(module, type):
            found.append(module)  # sized like any object; named by its parameters and children
        for name in ("UntypedStorage", "TypedStorage"):
            storage = getattr(torch, name, None)
            if isinstance(storage, type):
                found.append(storage)
        return tuple(found)

    def prepare(self) -> None:
        # torch imports torch._dynamo (about 1.3 s, and 53 s under a 10-frame trace)
        # when the first optimizer is made: before the traced build, not inside it.
        if _module("torch") is not None and _module("torch._dynamo") is None:
            import importlib

            importlib.import_module("torch._dynamo")

    def own_size(self, obj: Any) -> int:
        torch = _module("torch")
        if isinstance(obj, (torch.Tensor, torch.nn.Module)):
            return sys.getsizeof(obj)
        # A storage's __sizeof__ adds its bytes, which are its buffer.
        return object.__sizeof__(obj)

    def referents(self, obj: Any) -> list[object]:
        torch = _module("torch")
        held = list(gc.get_referents(obj))
        if isinstance(obj, torch.nn.Module):
            # Its parameters, buffers and submodules directly too (they are also in its
            # registries): each then hangs under the module that owns it in the path
            # tree, not under an optimizer whose state is keyed by it.
            state = getattr(obj, "__dict__", {})
            for registry in ("_modules", "_parameters", "_buffers"):
                held.extend(value for value in (state.get(registry) or {}).values() if value is not None)
            return held
        if isinstance(obj, torch.Tensor):
            if obj.is_leaf and obj.requires_grad and obj.grad is not None:
                held.append(obj.grad)
            if obj.layout is not torch.strided:
                held.extend(self._sparse_parts(obj))
        return held

    def children(self, obj: Any) -> list[tuple[Step, Any]] | None:
        """A module's submodules, parameters and buffers by the names torch gives them
        (``policy[0].weight``, ``encoder.norm.running_mean``), then its other attributes."""
        torch = _module("torch")
        if not isinstance(obj, torch.nn.Module):
            # A tensor names no data paths; reading its __dict__ would make torch
            # create one, and the walk must not add to what it measures.
            return []
        state = getattr(obj, "__dict__", {})
        indexed = isinstance(obj, (torch.nn.Sequential, torch.nn.ModuleList))
        found: list[tuple[Step, Any]] = []
        registries = ("_modules", "_parameters", "_buffers")
        for registry in registries:
            for name, value in (state.get(registry) or {}).items():
                if value is None:
                    continue
                if registry == "_modules" and indexed and name.isdigit():
                    found.append((Step("index", int(name)), value))
                elif name.isidentifier():
                    found.append((Step("attr", name), value))
                else:
                    found.append((Step("attr", registry), state[registry]))
                    break
        for name, value in state.items():
            if name not in registries and not name.startswith("_") and name != "training":
                found.append((Step("attr", name), value))
        return found

    @staticmethod
    def _sparse_parts(tensor: Any) -> list[Any]:
        torch = _module("torch")
        layout = tensor.layout
        if layout is torch.sparse_coo:
            return [tensor._indices(), tensor._values()]
        if layout in (torch.sparse_csr, torch.sparse_bsr):
            return [tensor.crow_indices(), tensor.col_indices(), tensor.values()]
        if layout in (torch.sparse_csc, torch.sparse_bsc):
            return [tensor.ccol_indices(), tensor.row_indices(), tensor.values()]
        return []

    def buffers(self, obj: Any) -> Iterator[Buffer]:
        torch = _module("torch")
        if isinstance(obj, torch.Tensor):
            if obj.layout is not torch.strided or obj.is_meta:
                return  # a sparse tensor's memory is its parts'; a meta tensor has none
            try:
                storage = obj.untyped_storage()
            except Exception:  # a tensor subclass without storage (functional, fake)
                return
        elif isinstance(obj, torch.nn.Module):
            return  # its tensors are its referents
        else:
            storage = obj.untyped_storage() if hasattr(obj, "untyped_storage") else obj
        device = _torch_device(storage.device)
        if device == "meta":
            return
        nbytes = int(storage.nbytes())
        pointer = int(storage.data_ptr())
        if nbytes <= 0 or pointer == 0:
            return
        yield Buffer(("torch", device, pointer), nbytes, device, pointer if device == HOST else None)

    def describe(self, obj: Any) -> dict[str, Any]:
        torch = _module("torch")
        if isinstance(obj, torch.nn.Module):
            return {}
        if not isinstance(obj, torch.Tensor):
            return {"device": _torch_device(obj.device)}
        return {
            "shape": [int(extent) for extent in obj.shape],
            "dtype": str(obj.dtype).removeprefix("torch."),
            "device": _torch_device(obj.device),
        }


def _jax_device(device: Any) -> str:
    platform = getattr(device, "platform", "cpu")
    return HOST if platform == "cpu" else f"{platform}:{getattr(device, 'id', 0)}"


class JaxHandler(BufferHandler):
    name = "jax"
    priority = 30

    def types(self) -> tuple[type, ...]:
        jax = _module("jax")
        array = getattr(jax, "Array", None) if jax is not None else None
        return (array,) if isinstance(array, type) else ()

    def matches(self, kind: type, example: object) -> bool:
        if not super().matches(kind, example):
            return False
        # Tracers are jax.Arrays too, but hold no buffer: only concrete arrays are sized.
        return hasattr(example, "unsafe_buffer_pointer") and hasattr(example, "is_deleted")

    def referents(self, obj: Any) -> tuple[object, ...]:
        return ()

    def buffers(self, array: Any) -> Iterator[Buffer]:
        if array.is_deleted():
            return
        try:
            shards = array.addressable_shards if len(array.devices()) > 1 else None
        except Exception:
            shards = None
        if shards is None:
            yield self._buffer(array, next(iter(array.devices())), int(array.nbytes))
            return
        for shard in shards:
            data = shard.data
            yield self._buffer(data, shard.device, int(data.nbytes))

    @staticmethod
    def _buffer(array: Any, device: Any, nbytes: int) -> Buffer:
        name = _jax_device(device)
        try:
            pointer = int(array.unsafe_buffer_pointer())
        except Exception:  # a backend that does not expose pointers: the array is its buffer
            return Buffer(("jax", name, "id", id(array)), nbytes, name)
        return Buffer(("jax", name, pointer), nbytes, name, pointer if name == HOST else None)

    def describe(self, array: Any) -> dict[str, Any]:
        found: dict[str, Any] = {"shape": [int(extent) for extent in array.shape], "dtype": str(array.dtype)}
        try:
            devices = sorted(_jax_device(device) for device in array.devices())
            found["device"] = devices[0] if len(devices) == 1 else ",".join(devices)
        except Exception:
            pass
        return found


class PandasHandler(BufferHandler):
    name = "pandas"
    priority = 40

    def types(self) -> tuple[type, ...]:
        pandas = _module("pandas")
        if pandas is None:
            return ()
        return (pandas.DataFrame, pandas.Series, pandas.Index)

    def own_size(self, obj: Any) -> int:
        # pandas' __sizeof__ adds memory_usage(deep=True): the blocks and arrays it
        # holds, which the walk counts (once, even when two frames share a block).
        return object.__sizeof__(obj)

    def describe(self, obj: Any) -> dict[str, Any]:
        found: dict[str, Any] = {"shape": [int(extent) for extent in obj.shape]}
        dtype = getattr(obj, "dtype", None)
        if dtype is not None:
            found["dtype"] = str(dtype)
        return found


class ArrowHandler(BufferHandler):
    name = "pyarrow"
    priority = 40

    def types(self) -> tuple[type, ...]:
        arrow = _module("pyarrow")
        if arrow is None:
            return ()
        return tuple(getattr(arrow, name) for name in ("Array", "ChunkedArray", "RecordBatch", "Table", "Buffer") if hasattr(arrow, name))

    def own_size(self, obj: Any) -> int:
        # pyarrow's __sizeof__ adds the buffers, which are counted as buffers (once,
        # even when two tables share a chunk).
        return object.__sizeof__(obj)

    def referents(self, obj: Any) -> tuple[object, ...]:
        # Columns and chunks are new wrapper objects at every access: their buffers are
        # what the object keeps alive, and the wrappers never enter the graph.
        return ()

    def buffers(self, obj: Any) -> Iterator[Buffer]:
        for buffer in self._arrow_buffers(obj):
            if buffer is not None and buffer.size > 0:
                address = int(buffer.address)
                device = HOST if getattr(buffer, "is_cpu", True) else str(getattr(buffer, "device_type", "device")).lower()
                yield Buffer(("arrow", device, address, int(buffer.size)), int(buffer.size), device, address if device == HOST else None)

    def _arrow_buffers(self, obj: Any) -> Iterable[Any]:
        arrow = _module("pyarrow")
        if isinstance(obj, arrow.Buffer):
            return (obj,)
        if isinstance(obj, arrow.Array):
            return obj.buffers()
        if isinstance(obj, arrow.ChunkedArray):
            return [buffer for chunk in obj.chunks for buffer in chunk.buffers()]
        columns = obj.columns  # RecordBatch (arrays) or Table (chunked arrays)
        return [buffer for column in columns for buffer in self._arrow_buffers(column)]

    def describe(self, obj: Any) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if hasattr(obj, "type"):
            found["dtype"] = str(obj.type)
        if hasattr(obj, "num_rows"):
            found["shape"] = [int(obj.num_rows), int(obj.num_columns)]
        elif hasattr(obj, "__len__") and not hasattr(obj, "address"):
            found["shape"] = [len(obj)]
        return found


# Types whose sys.getsizeof already includes their buffer, or which the sizer handles
# itself: the generic handler never looks at them.
_SIZED_BUFFERS = (bytes, bytearray, memoryview, _array.array, mmap.mmap, str)


class BufferProtocolHandler(BufferHandler):
    """Any object exposing the buffer protocol whose getsizeof leaves the buffer out."""

    name = "buffer-protocol"
    priority = 1000

    def matches(self, kind: type, example: object) -> bool:
        if issubclass(kind, _SIZED_BUFFERS) or kind.__module__ == "builtins":
            return False
        try:
            with memoryview(example):  # type: ignore[arg-type]
                return True
        except TypeError:
            return False

    def buffers(self, obj: Any) -> Iterator[Buffer]:
        try:
            view = memoryview(obj)
        except (TypeError, ValueError):
            return
        with view:
            nbytes = int(view.nbytes)
            if nbytes <= 0 or sys.getsizeof(obj) >= nbytes:
                return  # the object's own size already includes its buffer
            address = _address(view)
        key = ("buffer", address) if address is not None else ("buffer", "id", id(obj))
        yield Buffer(key, nbytes, HOST, address)


def _address(view: memoryview) -> int | None:
    numpy = _module("numpy")
    if numpy is None or not view.c_contiguous:
        return None
    try:
        return int(numpy.frombuffer(view.cast("B") if view.format != "B" else view, dtype=numpy.uint8).ctypes.data)
    except (TypeError, ValueError):
        return None


HANDLERS: list[BufferHandler] = [
    NumpyHandler(),
    ScipySparseHandler(),
    TorchHandler(),
    JaxHandler(),
    PandasHandler(),
    ArrowHandler(),
    BufferProtocolHandler(),
]


@hookimpl
def fa_mem_buffer_handlers() -> list[BufferHandler]:
    return list(HANDLERS)
