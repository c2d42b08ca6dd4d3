"""The heap setting main.py applies before training (measured in fresh processes, where glibc's
dynamic mmap threshold has not been touched yet), and the memory budget the image cache reads."""

import ctypes
import ctypes.util
import os
import platform
import subprocess
import sys

import pytest

from memjax.runtime import host_memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Allocates and frees an 8 MiB block three times; prints, per round, whether glibc served it
# with its own mmap (mallinfo2's mmapped bytes grew by the block while it was held).
PROBE = """
import ctypes, ctypes.util, sys
from memjax.runtime import host_memory
libc = ctypes.CDLL(ctypes.util.find_library('c'))
class Info(ctypes.Structure):
  _fields_ = [(n, ctypes.c_size_t) for n in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd',
              'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost')]
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == 'fixed':
  print(host_memory.fix_mmap_threshold())
size, rounds = 8 << 20, []
for _ in range(3):
  before = libc.mallinfo2().hblkhd
  block = libc.malloc(size)
  rounds.append(libc.mallinfo2().hblkhd - before >= size)
  libc.free(block)
print(rounds)
"""


def _probe(mode: str) -> list[str]:
  proc = subprocess.run(
    [sys.executable, '-c', PROBE, mode], cwd=ROOT, capture_output=True, text=True, timeout=60
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  return proc.stdout.split('\n')[:-1]


def _glibc_with_mallinfo2() -> bool:
  name = ctypes.util.find_library('c')
  if platform.system() != 'Linux' or 'libc.so.6' not in str(name):
    return False
  return hasattr(ctypes.CDLL(name), 'mallinfo2')  # glibc >= 2.33


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason='mallopt and mallinfo2 are glibc-only')
def test_fix_mmap_threshold_keeps_large_blocks_on_mmap_after_frees():
  # glibc's default: the first free of an mmapped 8 MiB block raises the threshold to 8 MiB,
  # so the next blocks of that size come from the heap ...
  assert _probe('default') == ['[True, False, False]']
  # ... and with the threshold fixed at 1 MiB every one is mmapped and returned on free.
  assert _probe('fixed') == ['True', '[True, True, True]']


def test_available_memory_falls_back_to_physical_memory(monkeypatch):
  """Without /proc/meminfo the budget is the physical memory size, which bounds what is free."""
  real = host_memory.available_memory_bytes()
  physical = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  assert 0 < real <= physical

  def no_proc(*args, **kwargs):
    raise FileNotFoundError('/proc/meminfo')

  monkeypatch.setattr(host_memory, 'open', no_proc, raising=False)
  assert host_memory.available_memory_bytes() == physical
