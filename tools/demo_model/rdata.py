"""Minimal reader for R lazy-load data bases (data/Rdata.rdx + Rdata.rdb), enough
to pull character vectors out of an R data package (here: r-cran-janeaustenr).

R serialisation format (R Internals, "Serialization Formats"), XDR version 2/3:
  header 'X\\n', version ints, then one item; each item starts with a 32-bit
  flags word: type = flags & 0xff, has-attributes bit 9, has-tag bit 10,
  object bit 8, levels flags >> 12.
The .rdx index is a gzip-compressed serialised list(variables=, references=,
compressed=) mapping each name to (offset, length) in .rdb; every .rdb chunk is a
4-byte big-endian uncompressed length followed by zlib data.
Only the node types that plain data sets use are decoded.
"""
import gzip
import struct
import zlib

NILVALUE, SYMSXP, LISTSXP, CHARSXP, LGLSXP, INTSXP, REALSXP, STRSXP, VECSXP = 254, 1, 2, 9, 10, 13, 14, 16, 19
REFSXP, NILSXP, GLOBALENV, UNBOUNDVALUE, MISSINGARG, BASENAMESPACE, EMPTYENV, BASEENV = (
    255, 0, 253, 252, 251, 247, 242, 241)
NA_INT = -(2 ** 31)


class Reader:
    def __init__(self, buf):
        self.b, self.p, self.refs = buf, 0, []

    def i32(self):
        v = struct.unpack_from(">i", self.b, self.p)[0]
        self.p += 4
        return v

    def header(self):
        assert self.b[:2] == b"X\n", "only XDR serialisation is supported"
        self.p = 2
        version = self.i32()
        self.i32()  # writer R version
        self.i32()  # minimal reader version
        if version == 3:
            n = self.i32()
            self.p += n  # native encoding name
        return self

    def attrs(self, flags):
        return self.item() if flags & (1 << 9) else None

    def item(self):
        flags = self.i32()
        t = flags & 0xFF
        if t in (NILVALUE, NILSXP, GLOBALENV, UNBOUNDVALUE, MISSINGARG, BASENAMESPACE, EMPTYENV, BASEENV):
            return None
        if t == REFSXP:
            return self.refs[(flags >> 8) - 1]
        if t == SYMSXP:
            name = self.item()
            self.refs.append(name)
            return name
        if t == CHARSXP:
            n = self.i32()
            if n == -1:
                return None
            s = self.b[self.p:self.p + n]
            self.p += n
            # levels = flags >> 12: LATIN1 = 1 << 2 (bit 14), UTF8 = 1 << 3; ASCII decodes as UTF-8
            return s.decode("latin-1" if flags & (1 << 14) else "utf-8")
        if t == LISTSXP:
            out = []
            while True:
                attr = self.attrs(flags)
                tag = self.item() if flags & (1 << 10) else None
                out.append((tag, self.item()))
                del attr
                flags = self.i32()
                if (flags & 0xFF) != LISTSXP:
                    if (flags & 0xFF) not in (NILVALUE, NILSXP):
                        raise ValueError("unexpected pairlist tail %d" % (flags & 0xFF))
                    return out
        if t in (LGLSXP, INTSXP):
            n = self.i32()
            v = list(struct.unpack_from(">%di" % n, self.b, self.p))
            self.p += 4 * n
            self.attrs(flags)
            return v
        if t == REALSXP:
            n = self.i32()
            v = list(struct.unpack_from(">%dd" % n, self.b, self.p))
            self.p += 8 * n
            self.attrs(flags)
            return v
        if t in (STRSXP, VECSXP):
            n = self.i32()
            v = [self.item() for _ in range(n)]
            a = self.attrs(flags)
            if t == VECSXP and a:
                names = dict(a).get("names")
                if names:
                    return dict(zip(names, v))
            return v
        raise ValueError("unsupported R node type %d" % t)


def load_rdx(rdx_path, rdb_path):
    """Returns {name: value} for every variable of an R lazy-load data base."""
    with open(rdx_path, "rb") as f:
        raw = f.read()
    index = Reader(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else zlib.decompress(raw[4:])).header().item()
    with open(rdb_path, "rb") as f:
        rdb = f.read()
    out = {}
    for name, (off, length) in index["variables"].items():
        chunk = rdb[int(off):int(off) + int(length)]
        (n,) = struct.unpack_from(">I", chunk, 0)
        data = zlib.decompress(chunk[4:])
        assert len(data) == n
        out[name] = Reader(data).header().item()
    return out
