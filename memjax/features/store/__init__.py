"""The feature store: frozen features computed once, keyed by image id, read by every run.

`spec` specifies the on-disk format and holds the checks its reader and writers share; `reader`
validates a complete store and memory-maps it (`read_store`); `writer` writes one whole and
atomically (`write_store`) or batch by batch, resuming after a crash (`StoreWriter`); `values`
checks the stored values for NaN and inf. The names below are the store's interface.
"""

from memjax.features.store.reader import check_feature_dims, read_store
from memjax.features.store.spec import is_complete
from memjax.features.store.writer import StoreWriter, write_store

__all__ = ['StoreWriter', 'check_feature_dims', 'is_complete', 'read_store', 'write_store']
