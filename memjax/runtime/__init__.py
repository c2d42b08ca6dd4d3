"""Run-time plumbing every mode shares, apart from the training library: atomic file writes, the
workdir lock, signals, progress lines, `jax.distributed`, XLA compiler options and compile cache,
host memory, TensorBoard scalars, workarounds for Orbax's threads and globs, and the test-only
fault points."""
