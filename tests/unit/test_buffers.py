"""Buffer handlers: external buffers (torch, JAX, pandas, pyarrow, ctypes, a plugin's device).

Every expected figure is built here from ground truth the test computes itself:
``untyped_storage().nbytes()``, ``numel() * element_size()``, ``nbytes`` of JAX and
pyarrow objects, ``memory_usage(deep=True)``, ``ctypes.sizeof`` and ``sys.getsizeof``
of the Python headers, never a number copied from an earlier run.

Where a figure can only be bounded (a module's registries, a frame's block manager),
the bound is the buffer bytes from below and those plus a small header allowance
from above; where memory is shared, the union of two objects is checked against the
sum of their sizes minus the buffer they share (``|A u B| = |A| + |B| - |A n B|``).

The optional libraries are imported with ``pytest.importorskip`` inside each test,
so the file runs (skipping) without them.
"""

from __future__ import annotations

import ctypes
import itertools
import sys
from typing import Any

import numpy as np
import pytest

from fa_memtool.buffers import Buffer, BufferHandler, HandlerTable, handlers_of
from fa_memtool.hookspecs import hookimpl
from fa_memtool.pathtree import PathNode, flatten
from fa_memtool.sizing import deep_size, measure_population

HEADER_SLACK = 1024  # bytes allowed above the buffers for a few Python headers


class Agent:
    """A plain agent: attributes are set by the tests."""


def storage_bytes(tensor: Any) -> int:
    return int(tensor.untyped_storage().nbytes())


def param_bytes(module: Any) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def rows_by_path(population: Any) -> dict[str, PathNode]:
    return {row.path: row for row in flatten(population.paths)}


# --------------------------------------------------------------------------- torch


def test_torch_one_tensor_counts_its_storage_and_header() -> None:
    torch = pytest.importorskip("torch")
    tensor = torch.randn(64, 256)
    nbytes = storage_bytes(tensor)
    assert nbytes == tensor.numel() * tensor.element_size() == 64 * 256 * 4
    assert sys.getsizeof(tensor) < nbytes  # getsizeof alone misses the storage
    size = deep_size(tensor)
    assert nbytes + sys.getsizeof(tensor) <= size < nbytes + HEADER_SLACK


def test_torch_views_held_with_their_base_count_the_storage_once() -> None:
    torch = pytest.importorskip("torch")
    base = torch.randn(64, 256)
    nbytes = storage_bytes(base)
    views = [base, base.view(-1), base[::2], base[3:10], base.t(), base[:, 5]]
    assert all(storage_bytes(view) == nbytes and view.data_ptr() >= base.data_ptr() for view in views)
    headers = sum(sys.getsizeof(view) for view in views) + sys.getsizeof(views)
    size = deep_size(views)
    assert nbytes + headers <= size < nbytes + headers + HEADER_SLACK
    # A slice held alone keeps the whole storage alive: all of it is counted.
    assert nbytes <= deep_size(base[::2]) < nbytes + HEADER_SLACK


def test_torch_tied_weights_count_once() -> None:
    torch = pytest.importorskip("torch")
    first = torch.nn.Linear(256, 64)
    second = torch.nn.Linear(256, 64)
    untied = deep_size([first, second])
    replaced = second.weight
    second.weight = first.weight  # tie: the second module holds the first's Parameter
    assert second.weight is first.weight
    weight = first.weight.numel() * first.weight.element_size()
    tied = deep_size([first, second])
    # Everything the two modules hold, the weight once.
    assert tied >= weight + storage_bytes(first.bias) + storage_bytes(second.bias)
    # |A u B| = |A| + |B| - |A n B|, and the shared part holds the weight's storage.
    assert tied <= deep_size(first) + deep_size(second) - weight + sys.getsizeof([first, second])
    # Tying dropped one Parameter (its storage and header): exactly that much less.
    dropped = storage_bytes(replaced) + sys.getsizeof(replaced)
    assert dropped - 256 <= untied - tied <= dropped + 256


def test_torch_parameters_shared_between_two_agents_are_shared_bytes() -> None:
    torch = pytest.importorskip("torch")
    shared = torch.nn.Linear(128, 64)
    shared_params = param_bytes(shared)
    agents = []
    for _ in range(2):
        agent = Agent()
        agent.policy = shared
        agent.memory = torch.zeros(256)
        agents.append(agent)
    own = storage_bytes(agents[0].memory)
    alone = [measure_population([agent]).agents[0] for agent in agents]
    population = measure_population(agents)
    for index, size in enumerate(population.agents):
        assert size.shared_bytes >= shared_params
        assert own <= size.exclusive_bytes < shared_params  # the shared weights are not exclusive
        # Each agent is charged half of what the two share: amortized halves it.
        assert size.amortized_bytes == pytest.approx(size.exclusive_bytes + size.shared_bytes / 2)
        assert alone[index].amortized_bytes - size.amortized_bytes == pytest.approx(size.shared_bytes / 2)
        assert alone[index].amortized_bytes - size.amortized_bytes >= shared_params / 2
        assert size.device_bytes == {}  # all host memory
    assert population.shared_bytes >= shared_params
    assert population.distinct_bytes <= alone[0].amortized_bytes + alone[1].amortized_bytes - shared_params
    row = rows_by_path(population)["policy"]
    assert row.shared and row.sharers == 2


def test_torch_mlp_gradients_are_counted() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 32))
    params = list(mlp.parameters())
    total = param_bytes(mlp)
    before = deep_size(mlp)
    assert total <= before
    mlp(torch.randn(8, 64)).sum().backward()
    assert all(p.grad is not None and storage_bytes(p.grad) == p.numel() * p.element_size() for p in params)
    after = deep_size(mlp)
    grad_headers = sum(sys.getsizeof(p.grad) for p in params)
    assert total + grad_headers <= after - before <= total + grad_headers + 64 * len(params)
    assert after >= 2 * total  # about twice the parameters


def test_torch_adam_state_is_counted() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 32))
    params = list(mlp.parameters())
    total = param_bytes(mlp)
    optimizer = torch.optim.Adam(params)
    mlp(torch.randn(8, 64)).sum().backward()
    before = deep_size([mlp, optimizer])
    optimizer.step()
    state = [optimizer.state[p] for p in params]
    moments = sum(storage_bytes(s["exp_avg"]) + storage_bytes(s["exp_avg_sq"]) for s in state)
    assert moments == 2 * total
    steps = sum(storage_bytes(s["step"]) for s in state)
    after = deep_size([mlp, optimizer])
    assert moments + steps <= after - before <= moments + steps + HEADER_SLACK * len(params)
    assert after >= 3 * total  # parameters, gradients, two moments


def test_torch_sparse_coo_counts_indices_and_values() -> None:
    torch = pytest.importorskip("torch")
    dense = torch.zeros(200, 200)
    dense[torch.arange(0, 200, 3), torch.arange(0, 200, 3)] = 1.0
    sparse = dense.to_sparse()
    assert sparse.layout is torch.sparse_coo
    parts = storage_bytes(sparse._indices()) + storage_bytes(sparse._values())
    assert parts == sparse._nnz() * (2 * 8 + 4)
    size = deep_size(sparse)
    assert parts <= size < parts + 2 * HEADER_SLACK
    assert size < dense.numel() * dense.element_size()  # never the dense size


def test_torch_from_numpy_is_not_double_counted() -> None:
    torch = pytest.importorskip("torch")
    array = np.arange(8192, dtype=np.float64)
    tensor = torch.from_numpy(array)
    assert tensor.data_ptr() == array.ctypes.data and storage_bytes(tensor) == array.nbytes
    together = deep_size([array, tensor])
    assert sys.getsizeof(array) + sys.getsizeof(tensor) <= together
    assert together < sys.getsizeof(array) + sys.getsizeof(tensor) + sys.getsizeof([array, tensor]) + HEADER_SLACK
    assert together < 2 * array.nbytes
    # Held alone the tensor keeps the memory alive: counted once, through its storage.
    alone = deep_size(tensor)
    assert array.nbytes <= alone < array.nbytes + HEADER_SLACK


def test_torch_meta_tensor_counts_no_buffer() -> None:
    torch = pytest.importorskip("torch")
    meta = torch.empty(256, 1024, device="meta")
    assert meta.is_meta and meta.numel() * meta.element_size() == 1 << 20
    size = deep_size(meta)
    assert sys.getsizeof(meta) <= size < sys.getsizeof(meta) + HEADER_SLACK


def test_torch_untyped_storage_counts_its_bytes_once() -> None:
    torch = pytest.importorskip("torch")
    tensor = torch.randn(64, 256)
    storage = tensor.untyped_storage()
    nbytes = int(storage.nbytes())
    assert nbytes <= deep_size(storage) < nbytes + HEADER_SLACK
    assert nbytes <= deep_size([tensor, storage]) < nbytes + HEADER_SLACK


def test_measuring_tensors_does_not_change_their_size() -> None:
    """The walk must not add to what it measures: naming a tensor's paths must not make
    torch create its instance dict (64 B per tensor on the next walk)."""
    torch = pytest.importorskip("torch")
    agent = Agent()
    agent.memory = torch.zeros(256)
    agent.layer = torch.nn.Linear(8, 8)
    vars(agent)
    header = sys.getsizeof(agent.memory)
    assert deep_size(agent.memory) == storage_bytes(agent.memory) + header  # no instance dict yet
    first = measure_population([agent]).agents[0].amortized_bytes
    second = measure_population([agent]).agents[0].amortized_bytes
    assert deep_size(agent.memory) == storage_bytes(agent.memory) + header
    assert second == first


class PolicyAgent:
    def __init__(self, torch: Any) -> None:
        self.policy = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
        self.optimizer = torch.optim.Adam(self.policy.parameters())


def test_torch_path_tree_names_module_parameters() -> None:
    torch = pytest.importorskip("torch")
    from fa_memtool.paths import resolve

    torch.manual_seed(0)
    agent = PolicyAgent(torch)
    agent.policy(torch.randn(4, 16)).sum().backward()
    agent.optimizer.step()
    weight = agent.policy[0].weight
    assert resolve(agent, "policy[0].weight") is weight

    rows = rows_by_path(measure_population([agent]))
    row = rows["policy[0].weight"]
    assert row.shape == [int(extent) for extent in weight.shape] == [32, 16]
    assert row.dtype == "float32"
    assert row.device == "cpu"
    assert row.device_bytes == 0
    held = storage_bytes(weight) + storage_bytes(weight.grad)
    headers = sys.getsizeof(weight) + sys.getsizeof(weight.grad)
    assert held + headers <= row.deep_bytes < held + HEADER_SLACK
    # Every alias the tree notes is a real path to the same Parameter (the optimizer's groups).
    assert row.aliases
    assert all(resolve(agent, alias) is weight for alias in row.aliases)
    assert any(alias.startswith("optimizer.") for alias in row.aliases)
    # The module row holds both of its parameters (with their gradients).
    layer = rows["policy[0]"]
    bias = agent.policy[0].bias
    assert layer.deep_bytes >= held + storage_bytes(bias) + storage_bytes(bias.grad)


def test_torch_growth_per_append_is_storage_plus_header() -> None:
    torch = pytest.importorskip("torch")
    history: list[Any] = []
    previous = deep_size(history)
    for _ in range(12):
        list_before = sys.getsizeof(history)
        tensor = torch.randn(64)
        history.append(tensor)
        expected = storage_bytes(tensor) + sys.getsizeof(tensor) + sys.getsizeof(history) - list_before
        assert storage_bytes(tensor) == 64 * 4
        current = deep_size(history)
        assert current - previous == expected
        previous = current


# --------------------------------------------------------------------------- JAX


def test_jax_matrix_and_vector_count_their_buffers() -> None:
    pytest.importorskip("jax")
    import jax.numpy as jnp

    weights = jnp.ones((64, 256), dtype=jnp.float32)
    bias = jnp.zeros(256, dtype=jnp.float32)
    assert weights.nbytes == 64 * 256 * 4 and bias.nbytes == 256 * 4
    headers = sys.getsizeof(weights) + sys.getsizeof(bias) + sys.getsizeof([weights, bias])
    size = deep_size([weights, bias])
    assert weights.nbytes + bias.nbytes + headers <= size < weights.nbytes + bias.nbytes + headers + HEADER_SLACK

    agent = Agent()
    agent.W = weights
    agent.b = bias
    population = measure_population([agent])
    assert population.agents[0].amortized_bytes >= weights.nbytes + bias.nbytes
    assert population.agents[0].device_bytes == {}
    rows = rows_by_path(population)
    assert rows["W"].shape == [64, 256] and rows["W"].dtype == "float32" and rows["W"].device == "cpu"
    assert weights.nbytes <= rows["W"].deep_bytes < weights.nbytes + HEADER_SLACK


def test_jax_pytree_sums_its_leaves() -> None:
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    tree = {
        "layer1": (jnp.ones((32, 64)), jnp.zeros(64)),
        "layer2": (jnp.ones((64, 16), dtype=jnp.float32), jnp.arange(16, dtype=jnp.int32)),
    }
    leaves = jax.tree_util.tree_leaves(tree)
    buffers = sum(leaf.nbytes for leaf in leaves)
    headers = sum(sys.getsizeof(leaf) for leaf in leaves)
    size = deep_size(tree)
    assert buffers + headers <= size < buffers + headers + HEADER_SLACK


def test_jax_same_array_held_twice_counts_once() -> None:
    pytest.importorskip("jax")
    import jax.numpy as jnp

    array = jnp.ones((64, 256))
    once = deep_size(array)
    assert array.nbytes <= once < array.nbytes + HEADER_SLACK
    assert deep_size([array, array]) == once + sys.getsizeof([array, array])
    held = {"a": array, "b": (array,)}
    assert deep_size(held) < once + array.nbytes  # never a second buffer


def test_jax_deleted_array_holds_no_buffer() -> None:
    pytest.importorskip("jax")
    import jax.numpy as jnp

    array = jnp.ones((64, 256))
    nbytes = array.nbytes
    assert deep_size(array) >= nbytes
    array.delete()
    assert array.is_deleted()
    size = deep_size(array)
    assert sys.getsizeof(array) <= size < sys.getsizeof(array) + HEADER_SLACK
    assert size < nbytes


def test_pymdp_jax_agent_counts_its_array_leaves() -> None:
    jax = pytest.importorskip("jax")
    pytest.importorskip("pymdp")
    pytest.importorskip("equinox")
    import jax.numpy as jnp
    from pymdp.agent import Agent as PymdpAgent

    num_obs, num_states, num_actions = 8, 8, 4
    A = [jnp.eye(num_obs, num_states)]
    B = [jnp.stack([jnp.roll(jnp.eye(num_states), shift, axis=0) for shift in range(num_actions)], axis=-1)]
    C = [jnp.zeros(num_obs)]
    D = [jnp.ones(num_states) / num_states]
    agent = PymdpAgent(A=A, B=B, C=C, D=D)

    distinct: dict[int, int] = {}
    for leaf in jax.tree_util.tree_leaves(agent):
        if isinstance(leaf, jax.Array):
            distinct.setdefault(int(leaf.unsafe_buffer_pointer()), int(leaf.nbytes))
    truth = sum(distinct.values())
    assert agent.A[0].nbytes == num_obs * num_states * 4 and truth >= agent.A[0].nbytes + agent.B[0].nbytes
    size = deep_size(agent)
    assert truth <= size <= 2 * truth + 200_000


# --------------------------------------------------------------------------- pandas


def numeric_frame(pd: Any, rows: int = 4000) -> Any:
    return pd.DataFrame(
        {
            "x": np.arange(rows, dtype=np.float64),
            "y": np.arange(rows, dtype=np.int64),
            "z": np.ones(rows, dtype=np.float32),
        }
    )


def test_pandas_numeric_frame_counts_memory_usage_once() -> None:
    pd = pytest.importorskip("pandas")
    frame = numeric_frame(pd)
    usage = int(frame.memory_usage(deep=True).sum())
    assert usage >= sum(frame[name].to_numpy().nbytes for name in frame.columns)
    size = deep_size(frame)
    assert usage <= size <= usage + 20_000


def test_pandas_frames_sharing_a_block_count_it_once() -> None:
    pd = pytest.importorskip("pandas")
    frame = numeric_frame(pd)
    column = frame["x"]
    shared = column.to_numpy()
    assert np.shares_memory(shared, frame["x"].to_numpy())
    # |A u B| = |A| + |B| - |A n B|: the column's data is in both.
    pair = deep_size([frame, column])
    assert deep_size(frame) <= pair <= deep_size(frame) + deep_size(column) - shared.nbytes + sys.getsizeof([frame, column])
    assert pair < 2 * deep_size(frame)

    second = pd.DataFrame(frame, copy=False)
    common = sum(
        frame[name].to_numpy().nbytes
        for name in frame.columns
        if np.shares_memory(frame[name].to_numpy(), second[name].to_numpy())
    )
    assert common == sum(frame[name].to_numpy().nbytes for name in frame.columns)
    both = deep_size([frame, second])
    assert both <= deep_size(frame) + deep_size(second) - common + sys.getsizeof([frame, second])
    assert both < 2 * deep_size(frame)


# --------------------------------------------------------------------------- pyarrow


def test_pyarrow_table_counts_its_buffers() -> None:
    pa = pytest.importorskip("pyarrow")
    table = pa.table(
        {
            "ints": pa.array(np.arange(4000, dtype=np.int64) * 3),
            "floats": pa.array(np.linspace(0.0, 1.0, 4000)),
            "names": pa.array([f"row-{i}" for i in range(4000)]),
        }
    )
    size = deep_size(table)
    assert table.nbytes <= size <= table.nbytes + 4096


def test_pyarrow_tables_sharing_a_column_count_it_once() -> None:
    pa = pytest.importorskip("pyarrow")
    column = pa.array(np.arange(8000, dtype=np.float64) * 1.5)
    chunked = pa.chunked_array([column])
    for shared in (column, chunked):
        first = pa.table({"a": shared})
        second = pa.table({"a": shared})
        assert first.nbytes == second.nbytes == column.nbytes
        pair = deep_size([first, second])
        assert first.nbytes <= pair
        assert pair <= deep_size(first) + deep_size(second) - column.nbytes + sys.getsizeof([first, second])
        assert pair < first.nbytes + second.nbytes


# --------------------------------------------------------------------------- ctypes


def test_ctypes_array_counts_its_buffer() -> None:
    array = (ctypes.c_double * 10000)()
    assert sys.getsizeof(array) < ctypes.sizeof(array) == 80000
    size = deep_size(array)
    assert ctypes.sizeof(array) <= size < ctypes.sizeof(array) + sys.getsizeof(array) + HEADER_SLACK
    # A numpy view of the same memory does not count it again.
    view = np.frombuffer(array, dtype=np.float64)
    assert deep_size([array, view]) < 2 * ctypes.sizeof(array)


# --------------------------------------------------------------------------- a plugin's handler

DEVICE = "gpu:0"
_handles = itertools.count(1)


class FakeDeviceArray:
    """A wrapper of memory on a (pretend) accelerator: ``handle`` names the memory,
    so two wrappers with one handle share it, like two views of one device buffer."""

    def __init__(self, nbytes: int, shape: tuple[int, ...], handle: int | None = None) -> None:
        self.handle = next(_handles) if handle is None else handle
        self.nbytes = nbytes
        self.shape = shape
        vars(self)  # make the instance dict now: its bytes are then the same for every walk


class FakeDeviceHandler(BufferHandler):
    name = "fake-device"

    def types(self) -> tuple[type, ...]:
        return (FakeDeviceArray,)

    def buffers(self, obj: FakeDeviceArray) -> Any:
        yield Buffer(("fake-device", obj.handle), obj.nbytes, device=DEVICE)

    def describe(self, obj: FakeDeviceArray) -> dict[str, Any]:
        return {"shape": list(obj.shape), "dtype": "float32", "device": DEVICE}


class FakeDevicePlugin:
    @hookimpl
    def fa_mem_buffer_handlers(self) -> list[BufferHandler]:
        return [FakeDeviceHandler()]


OWN_BYTES = 3_000_000  # every figure here is larger than anything on the host: a leak shows
SHARED_BYTES = 40_000_000  # one device buffer, each agent holding its own wrapper of it
COMMON_BYTES = 20_000_000  # one wrapper object, held by both agents


def device_agents() -> list[Agent]:
    shared_handle = next(_handles)
    common = FakeDeviceArray(COMMON_BYTES, (5_000_000,))
    agents = []
    for _ in range(2):
        agent = Agent()
        agent.own = FakeDeviceArray(OWN_BYTES, (750_000,))
        agent.weights = FakeDeviceArray(SHARED_BYTES, (10_000_000,), handle=shared_handle)
        agent.common = common
        agent.host = np.zeros(500)
        agents.append(agent)
    return agents


def plugin_handlers() -> list[BufferHandler]:
    from fa_memtool.plugins import plugin_manager

    handlers = handlers_of(plugin_manager(extra=[FakeDevicePlugin()]))
    assert any(isinstance(handler, FakeDeviceHandler) for handler in handlers)
    return handlers


def test_third_party_handler_counts_device_bytes_apart_from_host() -> None:
    handlers = plugin_handlers()
    agents = device_agents()
    population = measure_population(agents, handlers=HandlerTable(handlers))
    host_only = measure_population(agents, handlers=HandlerTable([h for h in handlers if not isinstance(h, FakeDeviceHandler)]))

    for size in population.agents:
        assert size.device_bytes == {DEVICE: pytest.approx(OWN_BYTES + SHARED_BYTES / 2 + COMMON_BYTES / 2)}
    assert population.device_bytes == {DEVICE: 2 * OWN_BYTES + SHARED_BYTES + COMMON_BYTES}
    # Device memory is never host memory: the host figures are those of a walk without the handler.
    assert population.distinct_bytes == host_only.distinct_bytes
    assert population.distinct_bytes < OWN_BYTES
    for with_device, without in zip(population.agents, host_only.agents):
        assert with_device.amortized_bytes == pytest.approx(without.amortized_bytes)
        assert with_device.exclusive_bytes == without.exclusive_bytes
        assert with_device.amortized_bytes >= agents[0].host.nbytes
        assert with_device.amortized_bytes < OWN_BYTES
    assert host_only.device_bytes == {} and all(size.device_bytes == {} for size in host_only.agents)

    rows = rows_by_path(population)
    assert rows["own"].device_bytes == OWN_BYTES
    assert rows["common"].device_bytes == COMMON_BYTES  # deep: what the path reaches, shared or not
    assert rows["common"].shared and rows["common"].sharers == 2
    assert rows["weights"].device_bytes > 0
    assert all(rows[name].deep_bytes < OWN_BYTES for name in ("own", "weights", "common"))
    assert rows["host"].device_bytes == 0


def test_device_buffer_shared_through_two_wrappers_is_in_both_paths() -> None:
    """Two agents' own wrappers of one device buffer: each path reaches all of it, as
    a host buffer reached through two agents' own views is in both paths' deep bytes."""
    base = np.zeros(8192)
    host_agents = []
    for _ in range(2):
        agent = Agent()
        agent.weights = base[:]  # each agent its own view of one buffer
        host_agents.append(agent)
    host_row = rows_by_path(measure_population(host_agents))["weights"]
    assert host_row.deep_bytes >= base.nbytes  # the host rule the device figure should follow

    rows = rows_by_path(measure_population(device_agents(), handlers=HandlerTable(plugin_handlers())))
    assert rows["weights"].device_bytes == SHARED_BYTES


def test_default_table_does_not_know_a_handler_registered_by_hand() -> None:
    """The default table (installed entry points) does not know the test's handler:
    there the fake array is a plain object and no device bytes appear."""
    agents = device_agents()
    population = measure_population(agents)
    assert population.device_bytes == {}
    assert deep_size(agents[0].own) < OWN_BYTES


def test_third_party_handler_describes_its_path_rows() -> None:
    handlers = plugin_handlers()
    agents = device_agents()
    rows = rows_by_path(measure_population(agents, handlers=HandlerTable(handlers)))
    own = rows["own"]
    assert own.device == DEVICE
    assert own.shape == list(agents[0].own.shape)
    assert own.dtype == "float32"


def test_buffer_handler_defaults_size_like_getsizeof() -> None:
    """A handler that overrides only types() and buffers() keeps the object's own
    header and referents: with no buffers it sizes exactly like no handler."""

    class Silent(FakeDeviceHandler):
        def buffers(self, obj: FakeDeviceArray) -> Any:
            return ()

    agents = device_agents()
    with_silent = measure_population(agents, handlers=HandlerTable([Silent()]))
    without = measure_population(agents, handlers=HandlerTable([]))
    assert with_silent.distinct_bytes == without.distinct_bytes
    assert with_silent.device_bytes == {}


def test_fa_mem_never_imports_an_array_library_itself() -> None:
    """Handlers look in sys.modules: sizing, naming, analysing and replaying numpy
    agents in a fresh interpreter imports none of the optional libraries."""
    import subprocess
    import sys as _sys

    script = (
        "import sys, numpy as np\n"
        "import fa_memtool.child, fa_memtool.optimize\n"
        "from fa_memtool.sizing import measure_population, deep_size\n"
        "from fa_memtool.plugins import plugin_manager, analyse\n"
        "from fa_memtool.hookspecs import AnalysisContext\n"
        "from fa_memtool.replay import RandomStream, compare_agents\n"
        "class A:\n"
        "    def __init__(self): self.w = np.ones((64, 64)); self.h = [np.zeros(3)]\n"
        "agents = [A(), A()]\n"
        "measure_population(agents); deep_size(agents)\n"
        "analyse(plugin_manager(), agents, AnalysisContext(), ['shared-parameters', 'lower-precision'])\n"
        "with RandomStream().active(): compare_agents(agents, agents, 1e-5, 1e-8)\n"
        "print(sorted(name for name in ('torch', 'jax', 'pandas', 'pyarrow', 'scipy') if name in sys.modules))\n"
    )
    found = subprocess.run([_sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"


def test_prepare_imports_what_torch_would_import_while_agents_are_built() -> None:
    """torch imports its compiler stack when the first optimizer is made; the measuring
    process imports it before the traced build (and nothing when torch is absent)."""
    import subprocess
    import sys as _sys

    pytest.importorskip("torch")
    script = (
        "import sys\n"
        "from fa_memtool.buffers import prepare_libraries\n"
        "prepare_libraries(); absent = 'torch._dynamo' in sys.modules or 'torch' in sys.modules\n"
        "import torch\n"
        "before = 'torch._dynamo' in sys.modules\n"
        "prepare_libraries()\n"
        "print(absent, before, 'torch._dynamo' in sys.modules)\n"
    )
    found = subprocess.run([_sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == ["False", "False", "True"]
