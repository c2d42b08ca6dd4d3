"""The heap setting main.py applies before training."""

import ctypes.util
import platform

import pytest

from memjax.runtime import host_memory


@pytest.mark.skipif(
  platform.system() != 'Linux' or 'libc.so.6' not in str(ctypes.util.find_library('c')),
  reason='mallopt is glibc-only',
)
def test_fix_mmap_threshold_takes_effect_on_glibc():
  assert host_memory.fix_mmap_threshold()
  assert host_memory.fix_mmap_threshold(2 << 20)  # may be called again with another value
  assert host_memory.fix_mmap_threshold()
