"""In-memory OZmap object store over a generated network, with optional SQLite persistence.

Generated objects are built on demand from the numpy arrays of
:class:`~simulator.network.NetworkState`; an object that is written is materialised into an
overlay and, with a store path, journalled to SQLite so that a restart keeps it.

Where each job lives:

* :mod:`.facade` — :class:`Store`, the front door: lock, one journal transaction per write;
* :mod:`.collection` — the collections (generated + written overlay) and the overlay indexes;
* :mod:`.documents` — generated documents, built from the arrays;
* :mod:`.queries` — filter, order and read; :mod:`.fast_paths` — array answers per model;
* :mod:`.writes` — create / patch / batch-update / delete; :mod:`.properties` — a property with
  its client, drop, fiber and port;
* :mod:`.ports` — port states, free ports, blocking, OZmap's feasibility;
* :mod:`.journal` — the SQLite journal and the write clock.

Adding a kind (poles, ...): an id code in :data:`simulator.ids.MODEL_CODES`, its arrays in
:mod:`simulator.network`, the model in :data:`.collection.MODELS` (and ``REFS`` /
``OVERLAY_INDEXED`` if it references or is looked up by other objects), a builder in
:meth:`.documents.Documents.collections`, its fast paths in
:attr:`.fast_paths.FastPaths.by_model`, and a maker in :attr:`.writes.Writes.makers` if
creating one needs more than its body.
"""

from simulator.filters import FilterError
from simulator.ids import MODEL_CODES
from simulator.store.collection import MODELS
from simulator.store.errors import SimError
from simulator.store.facade import Store

__all__ = ["MODELS", "MODEL_CODES", "FilterError", "SimError", "Store"]
