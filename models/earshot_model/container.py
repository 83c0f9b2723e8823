"""earshot container format (docs/DESIGN.md section 4): writer and validating reader.

Layout (little-endian):
    0   8  magic b"EARSHOT\\x1a"
    8   4  u32 container_version (= 1)
    12  4  kind, 4 ASCII chars ("MODL", "QUAN", "SHRD")
    16  4  u32 meta_bytes
    20  4  u32 n_sections (<= 4096)
    24  8  u64 file_bytes (total, including the 32-byte checksum)
    32     metadata JSON (UTF-8), zero-padded to a multiple of 8
    ...    section table, 72 bytes per entry
    ...    payloads, each at a 64-byte aligned offset
    last 32: SHA-256 of bytes [0, file_bytes - 32)
"""

import hashlib
import json
import struct

import numpy as np

MAGIC = b"EARSHOT\x1a"
CONTAINER_VERSION = 1
ALIGN = 64
MAX_SECTIONS = 4096
HEADER_BYTES = 32
ENTRY_BYTES = 72
SHA256_BYTES = 32
NAME_BYTES = 32

# dtype code -> numpy dtype (little-endian)
DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("u1"),
    2: np.dtype("<u2"),
    3: np.dtype("<u4"),
    4: np.dtype("i1"),
    5: np.dtype("<f2"),
    6: np.dtype("<u8"),
}
DTYPE_CODES = {v: k for k, v in DTYPES.items()}


class ContainerError(ValueError):
    """A container that does not follow docs/DESIGN.md section 4."""


def _pad_to(n, align):
    return (n + align - 1) // align * align


def _dtype_code(array):
    dt = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    for code, known in DTYPES.items():
        if np.dtype(dt) == known:
            return code
    raise ContainerError(f"unsupported dtype {array.dtype}; use f32, u8, u16, u32, i8 or f16")


def write_container(kind, meta, sections):
    """Builds a container and returns its bytes.

    kind: 4 ASCII chars. meta: JSON-serialisable dict. sections: list of (name, ndarray),
    written in that order; arrays must have 1..4 dims and a supported dtype.
    """
    if len(kind) != 4 or not kind.isascii():
        raise ContainerError(f"kind must be 4 ASCII chars, got {kind!r}")
    if not isinstance(meta, dict):
        raise ContainerError("metadata must be a JSON object")
    if len(sections) > MAX_SECTIONS:
        raise ContainerError(f"{len(sections)} sections > {MAX_SECTIONS}")
    names = [name for name, _ in sections]
    if len(set(names)) != len(names):
        raise ContainerError("section names must be unique")

    meta_bytes = json.dumps(meta, ensure_ascii=False, separators=(",", ":"),
                            sort_keys=False).encode("utf-8")
    table_offset = HEADER_BYTES + _pad_to(len(meta_bytes), 8)
    payload_offset = _pad_to(table_offset + ENTRY_BYTES * len(sections), ALIGN)

    entries = []
    payloads = []
    offset = payload_offset
    for name, array in sections:
        encoded_name = name.encode("ascii")
        if not 0 < len(encoded_name) < NAME_BYTES:
            raise ContainerError(f"section name {name!r} must be 1..31 ASCII chars")
        array = np.asarray(array)
        if not 1 <= array.ndim <= 4:
            raise ContainerError(f"section {name}: ndim {array.ndim} not in 1..4")
        code = _dtype_code(array)
        data = np.ascontiguousarray(array, dtype=DTYPES[code]).tobytes()
        shape = list(array.shape) + [0] * (4 - array.ndim)
        entries.append(struct.pack("<32sII4IQQ", encoded_name, code, array.ndim, *shape,
                                   offset, len(data)))
        payloads.append((offset, data))
        offset = _pad_to(offset + len(data), ALIGN)
    end_of_payloads = payloads[-1][0] + len(payloads[-1][1]) if payloads else payload_offset
    file_bytes = end_of_payloads + SHA256_BYTES

    out = bytearray(file_bytes)
    struct.pack_into("<8sI4sIIQ", out, 0, MAGIC, CONTAINER_VERSION, kind.encode("ascii"),
                     len(meta_bytes), len(sections), file_bytes)
    out[HEADER_BYTES:HEADER_BYTES + len(meta_bytes)] = meta_bytes
    for i, entry in enumerate(entries):
        out[table_offset + i * ENTRY_BYTES:table_offset + (i + 1) * ENTRY_BYTES] = entry
    for off, data in payloads:
        out[off:off + len(data)] = data
    checked = bytes(out[:file_bytes - SHA256_BYTES])
    out[file_bytes - SHA256_BYTES:] = hashlib.sha256(checked).digest()
    return bytes(out)


class Container:
    """A parsed container: kind, meta (dict), sections (name -> ndarray), sha256_hex."""

    def __init__(self, kind, meta, sections, sha256_hex):
        self.kind = kind
        self.meta = meta
        self.sections = sections
        self.sha256_hex = sha256_hex

    def __getitem__(self, name):
        return self.sections[name]


def read_container(buf, expected_kind=None, what="container"):
    """Parses and validates `buf` (bytes). Raises ContainerError with a clear message."""
    buf = bytes(buf)
    size = len(buf)
    if size < HEADER_BYTES + SHA256_BYTES:
        raise ContainerError(f"{what}: {size} bytes is too short for a container header")
    magic, version, kind_raw, meta_len, n_sections, file_bytes = struct.unpack_from(
        "<8sI4sIIQ", buf, 0)
    if magic != MAGIC:
        raise ContainerError(f"{what}: bad magic {magic!r}; not an earshot container")
    if version != CONTAINER_VERSION:
        raise ContainerError(f"{what}: container version {version}, expected "
                             f"{CONTAINER_VERSION}")
    try:
        kind = kind_raw.decode("ascii")
    except UnicodeDecodeError:
        raise ContainerError(f"{what}: kind {kind_raw!r} is not ASCII") from None
    if expected_kind and kind != expected_kind:
        raise ContainerError(f"{what}: kind {kind!r}, expected {expected_kind!r}")
    if file_bytes != size:
        raise ContainerError(f"{what}: header says {file_bytes} bytes, buffer has {size}")
    if n_sections > MAX_SECTIONS:
        raise ContainerError(f"{what}: {n_sections} sections > {MAX_SECTIONS}")
    table_offset = HEADER_BYTES + _pad_to(meta_len, 8)
    header_end = table_offset + ENTRY_BYTES * n_sections
    if header_end > size - SHA256_BYTES:
        raise ContainerError(f"{what}: metadata ({meta_len} bytes) and section table "
                             f"({n_sections} entries) run past the end of the file")
    digest = hashlib.sha256(buf[:size - SHA256_BYTES]).digest()
    if digest != buf[size - SHA256_BYTES:]:
        raise ContainerError(f"{what}: SHA-256 checksum mismatch; the file is corrupt or "
                             "truncated")
    try:
        meta = json.loads(buf[HEADER_BYTES:HEADER_BYTES + meta_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ContainerError(f"{what}: metadata is not valid UTF-8 JSON: {e}") from None
    if not isinstance(meta, dict):
        raise ContainerError(f"{what}: metadata must be a JSON object")

    sections = {}
    ranges = []
    for i in range(n_sections):
        name_raw, code, ndim, s0, s1, s2, s3, offset, nbytes = struct.unpack_from(
            "<32sII4IQQ", buf, table_offset + i * ENTRY_BYTES)
        name = name_raw.split(b"\0", 1)[0]
        try:
            name = name.decode("ascii")
        except UnicodeDecodeError:
            raise ContainerError(f"{what}: section {i} name is not ASCII") from None
        if not name:
            raise ContainerError(f"{what}: section {i} has an empty name")
        if name in sections:
            raise ContainerError(f"{what}: duplicate section name {name!r}")
        if code not in DTYPES:
            raise ContainerError(f"{what}: section {name}: unknown dtype code {code}")
        if not 1 <= ndim <= 4:
            raise ContainerError(f"{what}: section {name}: ndim {ndim} not in 1..4")
        shape = (s0, s1, s2, s3)[:ndim]
        if any(d != 0 for d in (s0, s1, s2, s3)[ndim:]):
            raise ContainerError(f"{what}: section {name}: unused shape dims must be 0")
        expected = int(np.prod(shape, dtype=np.uint64)) * DTYPES[code].itemsize
        if nbytes != expected:
            raise ContainerError(f"{what}: section {name}: {nbytes} bytes, shape {shape} "
                                 f"needs {expected}")
        if offset % ALIGN:
            raise ContainerError(f"{what}: section {name}: offset {offset} not "
                                 f"{ALIGN}-byte aligned")
        if offset < header_end or offset + nbytes > size - SHA256_BYTES:
            raise ContainerError(f"{what}: section {name}: [{offset}, {offset + nbytes}) "
                                 f"outside the payload area [{header_end}, "
                                 f"{size - SHA256_BYTES}]")
        ranges.append((offset, offset + nbytes, name))
        array = np.frombuffer(buf, dtype=DTYPES[code], count=expected // DTYPES[code].itemsize,
                              offset=offset).reshape(shape)
        sections[name] = array
    ranges.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(ranges, ranges[1:]):
        if b0 < a1:
            raise ContainerError(f"{what}: sections {an} and {bn} overlap")
    return Container(kind, meta, sections, digest.hex())


def read_container_file(path, expected_kind=None):
    with open(path, "rb") as f:
        return read_container(f.read(), expected_kind, what=str(path))
