"""Arrow columns as numpy arrays: the same values pyarrow's own conversion gives."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from trader.data.arrays import column_numpy


@pytest.mark.parametrize("col", [
    pa.array([1.5, 2.5, -3.0], pa.float64()),
    pa.array([1.5, 2.5, -3.0], pa.float32()),
    pa.array([1, 2, 3, 4], pa.int64()).slice(1, 2),  # an offset into the buffer
    pa.array([7, 8], pa.uint16()),
    pa.array([1.0, None, 3.0]),  # nulls: NaN, through pyarrow
    pa.array([True, False]),  # not a plain numeric buffer: through pyarrow
    pa.chunked_array([pa.array([1, 2]), pa.array([3])]),
    pa.chunked_array([pa.array([5.0, 6.0])]),
])
def test_column_numpy_equals_pyarrow(col: pa.Array | pa.ChunkedArray) -> None:
    got = column_numpy(col)
    want = col.to_numpy(zero_copy_only=False)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
