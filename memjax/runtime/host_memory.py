"""Host memory: how much the system can give (`available_memory_bytes`), and keeping the
training process's heap from hoarding freed batch buffers (glibc only).

Every training chunk is a few tens of MB of gathered rows, allocated and freed in tf.data and
JAX threads. glibc serves large blocks with mmap and returns them on free, but after the first
such free it raises its mmap threshold to that size (up to 32 MB), so later chunks come from the
per-thread heaps, which fragment and are rarely given back, and a long run's memory grows well
past what it uses. `fix_mmap_threshold` fixes the threshold at 1 MiB, so every chunk is mapped and
unmapped; results are identical (docs/performance.md has the peak memory with and without).
"""

import ctypes
import ctypes.util
import os

from absl import logging

M_MMAP_THRESHOLD = -3  # mallopt parameter number (glibc malloc.h)
THRESHOLD_BYTES = 1 << 20


def fix_mmap_threshold(threshold: int = THRESHOLD_BYTES) -> bool:
  """Makes glibc serve blocks >= `threshold` with mmap (and unmap them on free), always.

  Returns:
    Whether it took effect (False where the C library is not glibc).
  """
  name = ctypes.util.find_library('c')
  try:
    libc = ctypes.CDLL(name)
    done = bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
  except (OSError, AttributeError, TypeError):
    done = False
  if not done:
    logging.info('mallopt(M_MMAP_THRESHOLD) unavailable (C library %s); heap left as it is', name)
  return done


def available_memory_bytes() -> int:
  """Memory the system can give without swapping: MemAvailable from /proc/meminfo, else (no
  /proc) the physical memory size from sysconf."""
  try:
    with open('/proc/meminfo') as f:
      for line in f:
        if line.startswith('MemAvailable:'):
          return int(line.split()[1]) * 1024  # kB
  except (OSError, ValueError, IndexError):
    pass
  return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
