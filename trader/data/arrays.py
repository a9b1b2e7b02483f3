"""Arrow columns as numpy arrays without importing pandas.

pyarrow's ``to_numpy`` goes through its pandas conversion code, which imports
pandas (a third of a second) the first time it runs, although no pandas object
is made.  The feed converts every batch it reads, so the first bar of a
backtest and the daemon's READY would pay that import.  A numeric column without
nulls is its data buffer: read it as such, and leave every other case (nulls,
booleans, text) to pyarrow.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_NUMERIC = {
    pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64,
    pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32,
    pa.uint64(): np.uint64, pa.float32(): np.float32, pa.float64(): np.float64,
}


def column_numpy(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``col`` as a numpy array, as ``col.to_numpy(zero_copy_only=False)`` returns it
    (read-only when it shares the column's memory)."""
    if isinstance(col, pa.ChunkedArray):
        if col.num_chunks == 0:
            return col.to_numpy(zero_copy_only=False)
        if col.num_chunks > 1:
            return np.concatenate([column_numpy(chunk) for chunk in col.chunks])
        col = col.chunk(0)
    dtype = _NUMERIC.get(col.type)
    if dtype is None or col.null_count:
        return col.to_numpy(zero_copy_only=False)
    return np.frombuffer(col.buffers()[1], dtype=dtype, count=len(col),
                         offset=col.offset * np.dtype(dtype).itemsize)
