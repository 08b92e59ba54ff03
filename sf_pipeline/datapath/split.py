"""Streaming, quote-aware splitting of big CSV files into chunk files, and the chunk plan for an extract.

One pass over 1 MB binary blocks: bytes are copied, never parsed into fields; only the quote parity
of each line is looked at (``csvscan``), so memory is a couple of blocks whatever the file size.
Each chunk gets the header, and the chunks' bodies concatenated are the input's body byte for byte.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..common.csvscan import QUOTE, RecordScanner
from ..common.faultpoints import faultpoint
from ..common.sizing import UNSIZED
from ..errors import MalformedCsvError, SettingsError

BLOCK = 1 << 20


@dataclass(frozen=True)
class SplitOptions:
    """How a CSV is cut into chunks. These defaults are the pipeline's (the Dagster resource and the CLI
    take theirs from here)."""

    min_rows: int = 500_000  # chunk only above this many data rows
    target_bytes: int | None = None  # aim for chunks of about this size; None: the load's sizes (sizing)
    max_chunks: int = 16

    @property
    def target(self) -> int:
        """The chunk size aimed at: the one given (a load's: ``sizing``), else the smallest a load would take."""
        return self.target_bytes if self.target_bytes is not None else UNSIZED.chunk_bytes

    def __post_init__(self) -> None:
        if self.min_rows < 0:
            raise SettingsError(f"min_rows must be >= 0, got {self.min_rows}")
        if self.target_bytes is not None and self.target_bytes < 1:
            raise SettingsError(f"target_bytes must be >= 1, got {self.target_bytes}")
        if self.max_chunks < 1:
            raise SettingsError(f"max_chunks must be >= 1, got {self.max_chunks}")

    def chunk_count(self, rows: int, body_bytes: int) -> int:
        if rows <= self.min_rows:
            return 1
        return max(1, min(self.max_chunks, math.ceil(body_bytes / self.target)))


@dataclass
class Chunk:
    """CSV files loaded together in one step (each with its own header), with their data rows."""

    files: list[Path]
    rows: int
    bytes: int
    temporary: bool = False  # written by the splitter: delete once loaded

    def remove(self) -> None:
        if self.temporary:
            for f in self.files:
                f.unlink(missing_ok=True)


@dataclass
class _Writer:
    """Writes chunk files; the caller scans the bytes once and says how many records each write ends."""

    out_dir: Path
    stem: str
    header: bytes
    chunks: list[Chunk] = field(default_factory=list)
    _file: io.BufferedWriter | None = None
    _bytes: int = 0

    def open(self) -> None:
        path = self.out_dir / f"{self.stem}.part-{len(self.chunks):03d}.csv"
        self._file = open(path, "wb", buffering=BLOCK)
        self._file.write(self.header)
        self._bytes = len(self.header)
        self.chunks.append(Chunk([path], 0, 0, temporary=True))

    def write(self, data: bytes, records: int) -> None:
        assert self._file is not None
        self._file.write(data)
        self._bytes += len(data)
        self.chunks[-1].rows += records

    @property
    def body_bytes(self) -> int:
        return self._bytes - len(self.header)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self.chunks[-1].bytes = self._bytes
            self._file = None


def _header_end(path: Path, block: bytes) -> int:
    end = RecordScanner().first_end(block)
    if end < 0:
        if len(block) >= BLOCK:
            raise MalformedCsvError(f"{path}: no end of header within the first {BLOCK} bytes")
        end = len(block)
    return end


def _field_count(line: bytes, delimiter: str) -> int:
    return len(
        next(csv.reader(io.StringIO(line.decode("utf-8", errors="replace"), newline=""), delimiter=delimiter), [])
    )


def split_csv(
    path: Path, out_dir: Path, options: SplitOptions | None = None, *, delimiter: str = ",", rows: int | None = None
) -> list[Chunk]:
    """Split ``path`` into chunks, or return it whole when it has ``min_rows`` data rows or fewer.

    ``rows`` (data rows, when the caller already knows them) saves a counting pass.
    """
    options = options or SplitOptions()
    path, out_dir = Path(path), Path(out_dir)
    size = path.stat().st_size
    if size == 0:
        return [Chunk([path], 0, 0)]
    if rows is None and size <= 2 * options.target:
        rows = count_data_rows(path)  # small: count first, so a file under the threshold is never copied
    header, header_len = _read_header(path)
    # big and uncounted: one pass that splits and counts; undone below if it stays under min_rows
    n = options.chunk_count(rows if rows is not None else options.min_rows + 1, size - header_len)
    if n == 1:
        return [Chunk([path], rows or 0, size)]
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = _Writer(out_dir, path.name.removesuffix(".csv"), header)
    cut_check = _CutCheck(path, _field_count(header, delimiter), delimiter)
    try:
        scanner = _write_chunks(path, header_len, writer, n, math.ceil((size - header_len) / n), cut_check)
    except BaseException:
        writer.close()
        _remove(writer.chunks)
        raise
    if scanner.inside:
        _remove(writer.chunks)
        raise MalformedCsvError(
            f"{path}: a quoted value is never closed (the file ends inside quotes at byte "
            f"{size}); the last complete record ends before it"
        )
    total = sum(c.rows for c in writer.chunks)
    if rows is None and total <= options.min_rows:
        _remove(writer.chunks)
        return [Chunk([path], total, size)]
    kept = [c for c in writer.chunks if c.rows or c is writer.chunks[0]]
    _remove([c for c in writer.chunks if c not in kept])
    return kept


def _read_header(path: Path) -> tuple[bytes, int]:
    """The header record, newline-terminated, and its length in the file."""
    with open(path, "rb") as f:
        first = f.read(BLOCK)
    header_len = _header_end(path, first)
    header = first[:header_len]
    return (header if header.endswith(b"\n") else header + b"\n"), header_len


@dataclass
class _CutCheck:
    """Checks, once per chunk, that the chunk's first record has as many fields as the header."""

    path: Path
    width: int
    delimiter: str
    done: bool = False

    def __call__(self, writer: _Writer, block: bytes, pos: int, block_offset: int) -> None:
        if not self.done and writer.body_bytes == 0 and pos < len(block):
            _check_record_at_cut(self.path, block, pos, self.width, self.delimiter, block_offset)
            self.done = True


def _write_chunks(
    path: Path, header_len: int, writer: _Writer, n: int, per_chunk: int, cut_check: _CutCheck
) -> RecordScanner:
    """Copy the body into ``n`` chunks of about ``per_chunk`` bytes, cutting only at record ends.
    One scan of the input gives the quote state and the records each write ends."""
    scanner = RecordScanner()
    with open(path, "rb") as f:
        f.seek(header_len)
        writer.open()
        while block := f.read(BLOCK):
            pos = 0
            while len(writer.chunks) < n and writer.body_bytes + (len(block) - pos) >= per_chunk:
                cut_check(writer, block, pos, f.tell() - len(block))
                want = pos + max(per_chunk - writer.body_bytes, 0)
                inside = scanner.inside ^ bool(block.count(QUOTE, pos, want) & 1)
                end = _first_end(block, want, inside)
                if end < 0:
                    break  # no record end in the rest of this block: cut in a later one
                piece = block[pos:end]
                writer.write(piece, scanner.feed(piece))
                writer.close()
                faultpoint("chunk_written", writer.stem.split(".")[0])
                writer.open()
                cut_check.done = False
                pos = end
            cut_check(writer, block, pos, f.tell() - len(block))
            rest = block[pos:] if pos else block
            writer.write(rest, scanner.feed(rest))
    writer.chunks[-1].rows += scanner.complete_records - scanner.records  # a last record without newline
    writer.close()
    return scanner


def _remove(chunks: list[Chunk]) -> None:
    for chunk in chunks:
        chunk.remove()


def _first_end(block: bytes, start: int, inside: bool) -> int:
    scanner = RecordScanner()
    scanner.inside = inside
    return scanner.first_end(block, start)


def _check_record_at_cut(path: Path, block: bytes, pos: int, width: int, delimiter: str, block_offset: int) -> None:
    """The first record of a new chunk must have as many fields as the header (a ragged row there would
    mean the cut, or the file, is wrong)."""
    end = _first_end(block, pos, False)
    if end < 0:
        return  # the record runs past this block: nothing to see cheaply
    found = _field_count(block[pos:end], delimiter)
    if found != width:
        raise MalformedCsvError(
            f"{path}: the record at byte {block_offset + pos} has {found} fields, the header has {width} (a ragged row)"
        )


def count_data_rows(path: Path) -> int:
    """Data rows (records after the header) of a CSV file; raises on an unterminated quote."""
    scanner = RecordScanner()
    last_record_start = 0
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            before = scanner.records
            offset = scanner.offset
            scanner.feed(block)
            if scanner.records != before:
                # remember roughly where the current record began, for the error below
                last_record_start = offset
    if scanner.inside:
        raise MalformedCsvError(
            f"{path}: a quoted value is never closed: the file ends inside quotes "
            f"(the open record starts after byte {last_record_start})"
        )
    return max(scanner.complete_records - 1, 0)


def plan_chunks(
    files: list[Path], out_dir: Path, options: SplitOptions | None = None, rows: list[int] | None = None
) -> list[Chunk]:
    """Group an extract's page files into load chunks: one chunk when the object is small, else up to
    ``max_chunks`` chunks of about ``target`` bytes each, splitting any page bigger than a chunk."""
    options = options or SplitOptions()
    files = [Path(f) for f in files]
    counts = rows if rows is not None else [count_data_rows(f) for f in files]
    sizes = [f.stat().st_size for f in files]
    total_rows, total_bytes = sum(counts), sum(sizes)
    n = options.chunk_count(total_rows, total_bytes)
    if n == 1:
        return [Chunk(files, total_rows, total_bytes)] if files else []
    per_chunk = math.ceil(total_bytes / n)
    return _group(_pieces(files, counts, sizes, out_dir, per_chunk, options), per_chunk)


def _pieces(
    files: list[Path], counts: list[int], sizes: list[int], out_dir: Path, per_chunk: int, options: SplitOptions
) -> list[Chunk]:
    """Each page as it is, but a page much bigger than a chunk split into chunk-sized pieces."""
    piece_options = SplitOptions(min_rows=0, target_bytes=per_chunk, max_chunks=options.max_chunks)
    pieces: list[Chunk] = []
    for f, count, size in zip(files, counts, sizes, strict=True):
        if size > per_chunk * 1.5 and count > 1:
            pieces += split_csv(f, out_dir, piece_options, rows=count)
        else:
            pieces.append(Chunk([f], count, size))
    return pieces


def _group(pieces: list[Chunk], per_chunk: int) -> list[Chunk]:
    """Consecutive pieces together while they fit in a chunk (with 25% to spare)."""
    chunks: list[Chunk] = []
    for piece in pieces:
        if chunks and chunks[-1].bytes + piece.bytes <= per_chunk * 1.25 and chunks[-1].temporary == piece.temporary:
            chunks[-1].files += piece.files
            chunks[-1].rows += piece.rows
            chunks[-1].bytes += piece.bytes
        else:
            chunks.append(Chunk(list(piece.files), piece.rows, piece.bytes, piece.temporary))
    return chunks


class ChunkStream:
    """Cuts pages into load chunks while the extract is still downloading, so chunk k loads while later
    pages arrive. The rules are ``plan_chunks``'s: one chunk when the job holds at most ``min_rows``
    records (cut at the end); else chunks of about the total / ``chunk_count``, the total estimated from the
    job's record count and the first page's bytes per record, each cut as soon as its pages are on disk.
    The first chunk is cut as soon as the first page is there, however small: the load starts while the
    other pages download instead of waiting for a whole chunk's worth (bench/README, the overlap)."""

    def __init__(self, out_dir: Path, options: SplitOptions | None = None) -> None:
        self.out_dir = out_dir
        self.options = options or SplitOptions()
        self.per_chunk: int | None = None  # bytes, once known; None while everything goes in one chunk
        self._pending: list[tuple[Path, int, int]] = []
        self._cut_one = False

    def add(self, path: Path, records: int, job_records: int) -> list[Chunk]:
        """A page complete on disk; returns the chunks it completes (often none)."""
        size = path.stat().st_size
        self._pending.append((path, records, size))
        if job_records <= self.options.min_rows:
            return []
        if self.per_chunk is None:
            estimate = math.ceil(job_records * size / max(records, 1))
            self.per_chunk = math.ceil(estimate / self.options.chunk_count(job_records, estimate))
        # pages come in whole: cut once most of a chunk is there rather than wait for a page that may overshoot
        if self._cut_one and sum(p[2] for p in self._pending) < self.per_chunk * 0.8:
            return []
        self._cut_one = True
        return self._cut()

    def finish(self) -> list[Chunk]:
        """The last chunk(s), once every page is on disk."""
        return self._cut() if self._pending else []

    def _cut(self) -> list[Chunk]:
        files, counts, sizes = (list(x) for x in zip(*self._pending, strict=True))
        self._pending = []
        if self.per_chunk is not None:
            pieces = _pieces(files, counts, sizes, self.out_dir, self.per_chunk, self.options)
            if any(p.temporary for p in pieces):
                return _group(pieces, self.per_chunk)
        return [Chunk(files, sum(counts), sum(sizes))]
