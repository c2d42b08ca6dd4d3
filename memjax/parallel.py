"""Device mesh, shardings, and host batches -> global arrays (single or multi-process).

One mesh axis, `data`, over every device of every process: parameters are replicated, batches
are sharded along their example axis. Each process feeds only its own slice of every global
batch; `jax.make_array_from_process_local_data` assembles the global array. Starting
`jax.distributed` and stopping every process of a failed run live in `memjax.runtime.distributed`.
"""

from collections.abc import Mapping

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from memjax import input_pipeline
from memjax.errors import InputError

AXIS = 'data'


def make_mesh() -> Mesh:
  """A one-axis `data` mesh over all devices (global, across processes)."""
  return Mesh(np.asarray(jax.devices()), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
  """Sharding of an array whose axis `batch_axis` is the example axis."""
  return NamedSharding(mesh, PartitionSpec(*([None] * batch_axis), AXIS))


def check_divisible(global_batch: int, mesh: Mesh, field: str) -> None:
  """Raises InputError unless the global batch splits evenly over devices and processes."""
  devices, processes = mesh.devices.size, jax.process_count()
  if global_batch <= 0 or global_batch % devices or global_batch % processes:
    raise InputError(
      f'{field}={global_batch} must be a positive multiple of the device count '
      f'({devices} devices, {processes} processes).'
    )


def process_share(global_batch: int) -> slice:
  """The slice of every global batch that this process reads."""
  per_process = global_batch // jax.process_count()
  start = jax.process_index() * per_process
  return slice(start, start + per_process)


def to_global(local: Mapping[str, np.ndarray], mesh: Mesh, batch_axis: int) -> dict:
  """This process's share of a batch -> global arrays sharded along `batch_axis`."""
  return input_pipeline.place(local, batch_sharding(mesh, batch_axis))


def fetch(tree):
  """Device arrays -> host NumPy; gathers shards from every process when there are several."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def replicate(tree, mesh: Mesh):
  """Host values (identical on every process) -> replicated global arrays."""
  sharding = replicated(mesh)

  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

  return jax.tree.map(put, tree)
