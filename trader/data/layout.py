"""How bar files are cut into pieces: rows per Parquet row group written, rows read at a time.

pyarrow decodes a Parquet file a whole row group at a time, so a replay holds one
decoded row group of every file it reads, plus the batch it is taking bars from
(about 48 bytes a row each).  These two sizes, not the length of the history,
decide what a file costs in memory; a replay of a hundred instruments pays it a
hundred times.  No pyarrow here: the config reads its default at start-up.
"""

from __future__ import annotations

# Rows per row group the catalog writes: 16k one-minute bars are about 0.8 MB decoded,
# where pyarrow's default (up to a million rows) would be some 50 MB a file.
ROW_GROUP_ROWS = 16_384

# Rows read at a time (``data.batch_size``'s default), shared by the files of a replay
# but never fewer than MIN_FILE_BATCH_ROWS a file: a file's batch of 4k to 64k rows
# replayed no faster or slower than another.
BATCH_ROWS = 65_536
MIN_FILE_BATCH_ROWS = 4_096

# Rows of a batch turned into Python numbers at a time, for the bars built from them:
# a whole 64k-row batch as lists is some 15 MB of objects held at once, and a few
# thousand rows at a time took 26 MB off a one-file replay's peak memory (248 to 222 MB
# on 1 M bars) at the same speed.
OBJECT_ROWS = 2_048

# A row group above this many rows gets a warning in a replay of several files.
LARGE_ROW_GROUP = 131_072

BYTES_PER_ROW = 48  # six 8-byte columns, decoded
