"""Compact columns for the feasibility index: packed strings and a Z-curve point order.

A million boxes kept as Python objects would cost several hundred MB; these keep the index
within its budget (<= 100 MB per million boxes) while giving back plain `str`s per hit.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice, pairwise
from typing import Final

import numpy as np
import numpy.typing as npt

_HEX_ID_LEN: Final = 24  # OZmap ids are Mongo ObjectIds: 24 lowercase hex digits
_LOWER_HEX: Final = np.zeros(256, dtype=bool)
_LOWER_HEX[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = True


class StringColumn:
    """Strings stored as bytes in one of three layouts, picked at build time.

    - every value a 24-digit lowercase hex id → 12 raw bytes each (half the size);
    - every value the same UTF-8 length → one fixed-width byte array;
    - otherwise → one UTF-8 buffer plus offsets.
    """

    __slots__ = ("_ascii", "_buffer", "_fixed", "_hex", "_offsets")

    def __init__(self, values: Sequence[str]) -> None:
        self._hex: npt.NDArray[np.uint8] | None = None
        self._fixed: npt.NDArray[np.void] | None = None
        self._buffer = b""
        self._offsets: npt.NDArray[np.integer] | None = None
        self._ascii = False
        n = len(values)
        if n == 0:
            self._offsets = np.zeros(1, dtype=np.int32)
            return
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
        joined = "".join(values)
        if joined.isascii():  # the common case: no per-string encoding needed
            buffer = joined.encode("ascii")
            if lengths.min() == lengths.max() == _HEX_ID_LEN and _is_lower_hex(buffer):
                raw = np.frombuffer(bytes.fromhex(joined), dtype=np.uint8)
                self._hex = raw.reshape(n, _HEX_ID_LEN // 2)
                return
            self._ascii = True
        else:
            encoded = [v.encode("utf-8") for v in values]
            lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
            buffer = b"".join(encoded)
        if lengths.min() == lengths.max() > 0:
            # Void dtype keeps trailing NUL bytes, unlike numpy's "S" strings.
            self._fixed = np.frombuffer(buffer, dtype=f"V{int(lengths[0])}")
            return
        self._buffer = buffer
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        self._offsets = offsets.astype(np.int32) if offsets[-1] < 2**31 else offsets

    def __len__(self) -> int:
        if self._hex is not None:
            return len(self._hex)
        if self._fixed is not None:
            return len(self._fixed)
        assert self._offsets is not None
        return len(self._offsets) - 1

    def argsort(self) -> npt.NDArray[np.intp]:
        """Row order that sorts the strings as Python does (code point order)."""
        if self._hex is not None:
            # Lowercase hex sorts like the big-endian number it spells: two integer keys.
            high = np.ascontiguousarray(self._hex[:, :8]).view(">u8").ravel()
            low = np.ascontiguousarray(self._hex[:, 8:]).view(">u4").ravel()
            return np.lexsort((low, high))
        values = self.take(np.arange(len(self), dtype=np.intp))
        return np.array(sorted(range(len(values)), key=values.__getitem__), dtype=np.intp)

    def adjacent_duplicates(self) -> list[str]:
        """Values equal to their predecessor (all repeats, once the column is sorted)."""
        if self._hex is not None or self._fixed is not None:
            raw = self._hex if self._hex is not None else _bytes_matrix(self._fixed)
            same = (raw[1:] == raw[:-1]).all(axis=1)
            return sorted(set(self.take(np.flatnonzero(same) + 1)))
        values = self.take(np.arange(len(self), dtype=np.intp))
        return sorted({b for a, b in pairwise(values) if a == b})

    def permuted(self, order: npt.NDArray[np.intp]) -> StringColumn:
        """A new column holding the rows in `order`."""
        if self._hex is None and self._fixed is None:
            return StringColumn(self.take(order))
        column = object.__new__(StringColumn)
        column._hex = None if self._hex is None else np.take(self._hex, order, axis=0)
        column._fixed = None if self._fixed is None else np.take(self._fixed, order)
        column._buffer = b""
        column._offsets = None
        column._ascii = self._ascii
        return column

    def take(self, rows: npt.NDArray[np.intp]) -> list[str]:
        """The strings at `rows`, in that order."""
        if self._hex is not None:
            # np.take: several times faster than fancy indexing on 2-D / void arrays
            raw = np.take(self._hex, rows, axis=0)
            return _split(raw.tobytes().hex(), _HEX_ID_LEN, len(rows))
        if self._fixed is not None:
            if self._ascii:
                text = np.take(self._fixed, rows).tobytes().decode("ascii")
                return _split(text, self._fixed.dtype.itemsize, len(rows))
            return [bytes(v).decode("utf-8") for v in np.take(self._fixed, rows).tolist()]
        assert self._offsets is not None
        buf = self._buffer
        starts = self._offsets[rows].tolist()
        ends = self._offsets[rows + 1].tolist()
        return [buf[a:b].decode("utf-8") for a, b in zip(starts, ends, strict=True)]

    @property
    def layout(self) -> str:
        """ "hex", "fixed" or "offsets" (for diagnostics and tests)."""
        if self._hex is not None:
            return "hex"
        return "fixed" if self._fixed is not None else "offsets"

    @property
    def nbytes(self) -> int:
        if self._hex is not None:
            return self._hex.nbytes
        if self._fixed is not None:
            return self._fixed.nbytes
        assert self._offsets is not None
        return len(self._buffer) + self._offsets.nbytes


def _bytes_matrix(fixed: npt.NDArray[np.void] | None) -> npt.NDArray[np.uint8]:
    assert fixed is not None
    return fixed.view(np.uint8).reshape(len(fixed), fixed.dtype.itemsize)


_SLICES: dict[int, list[slice]] = {}


def _split(text: str, width: int, count: int) -> list[str]:
    """`text` cut into `count` pieces of `width` characters (slice objects are reused)."""
    slices = _SLICES.get(width, [])
    if len(slices) < count:
        size = max(count, 2 * len(slices), 64)
        slices = [slice(i * width, (i + 1) * width) for i in range(size)]
        _SLICES[width] = slices  # replaced whole, never mutated: safe for other threads
    return list(map(text.__getitem__, islice(slices, count)))


def _is_lower_hex(ascii_bytes: bytes) -> bool:
    return bool(_LOWER_HEX[np.frombuffer(ascii_bytes, dtype=np.uint8)].all())


def morton_order(
    lat: npt.NDArray[np.float64],
    lng: npt.NDArray[np.float64],
    lat_range: tuple[float, float],
    lng_range: tuple[float, float],
) -> npt.NDArray[np.intp]:
    """Order points along a Z-curve so consecutive queries touch neighbouring tree nodes."""
    scale = 65535.0
    qa = np.clip((lat - lat_range[0]) / (lat_range[1] - lat_range[0]) * scale, 0, scale)
    qo = np.clip((lng - lng_range[0]) / (lng_range[1] - lng_range[0]) * scale, 0, scale)
    code = _spread_bits(qa.astype(np.uint64)) | (_spread_bits(qo.astype(np.uint64)) << np.uint64(1))
    return np.argsort(code, kind="stable")


_SPREAD_STEPS: Final = tuple(
    (np.uint64(shift), np.uint64(mask))
    for shift, mask in ((8, 0x00FF00FF), (4, 0x0F0F0F0F), (2, 0x33333333), (1, 0x55555555))
)


def _spread_bits(v: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Insert a zero bit between each of the low 16 bits (Morton interleaving)."""
    for shift, mask in _SPREAD_STEPS:
        v = (v | (v << shift)) & mask
    return v
