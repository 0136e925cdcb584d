"""Rebuild the bundled WordNet data (`wordnet-3.0.txt.gz`) from WordNet 3.0 dict files.

    python -m nova_mlflow.wordnet.build [--source /usr/share/wordnet] [--out PATH]

Why a builder of our own instead of pickling nltk's reader: the shipped file must be
reviewable text, loadable with the standard library alone, and reproducible byte for byte
from a public source (Debian's wordnet-base + wordnet-sense-index, the WordNet 3.0 database
that nltk's 'wordnet' download also holds). It reads the dict files directly, replicating
exactly the parsing nltk's WordNetCorpusReader applies to them (comment lines start with a
space; later duplicates in an exception file win; the syntactic marker "(a)", "(p)", "(ip)"
is cut from adjective lemma names; case is kept), and keeps only what METEOR's synonym stage
reads: the lemma index, the exception lists and each synset's lemma names. The tests compare
the result with nltk's reader on the same files, so a parsing difference cannot go unseen.

Format (UTF-8 text, "\\n" line ends, gzip'd by `gzip_bytes`: equal input, equal bytes):
    line 1   the header: FORMAT_TAG, then TAB-separated facts (WordNet version, licence file)
    %index<TAB>count             then: lemma<TAB>pos offset offset ...[;pos offset ...]
    %exc <pos><TAB>count         then: inflected form<TAB>base base ...   (pos n, v, a, r)
    %synsets <pos><TAB>count     then: offset<TAB>ss_type<TAB>name name ...  (pos n, v, a, r)
Offsets are WordNet's own byte offsets (8 digits in the synset lines, as in data.*), so the
bundled reader and nltk's reader name the same synset by the same number. The lines of each
section are sorted as strings (the reader finds a key by bisection; TAB sorts before every
character of a key, so line order is key order) and the part-of-speech order is fixed
(n, v, a, r): the output depends on the input only.
"""

from __future__ import annotations

import re
import struct
import sys
import zlib
from pathlib import Path

FORMAT_TAG = "nova-mlflow-wordnet 1"
POS_ORDER = ("n", "v", "a", "r")
FILE_OF = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
DEFAULT_SOURCE = Path("/usr/share/wordnet")
BUNDLED_FILE = Path(__file__).resolve().parent / "wordnet-3.0.txt.gz"  # the shipped data
DEFAULT_OUT = BUNDLED_FILE
REQUIRED = tuple(f"{kind}.{FILE_OF[p]}" for kind in ("index", "data") for p in POS_ORDER) + \
    tuple(f"{FILE_OF[p]}.exc" for p in POS_ORDER)
_MARKER = re.compile(r"(.*?)(\([^()]*\))?$")  # nltk's own pattern for the syntactic marker
_VERSION = re.compile(r"Word[nN]et (\d+\+?|\d+\.\d+) Copyright")  # as nltk's get_version


class BuildError(Exception):
    """The source is not a complete WordNet 3.0 dict directory."""


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def wordnet_version(source: Path) -> str | None:
    """The version stated in data.adj's licence header (nltk reads it the same way)."""
    for line in _lines(source / "data.adj"):
        if not line.startswith(" "):
            return None
        m = _VERSION.search(line)
        if m:
            return m.group(1)
    return None


def read_index(source: Path) -> dict[str, dict[str, list[int]]]:
    """lemma -> pos -> synset offsets, in the index files' (sense-ranked) order."""
    index: dict[str, dict[str, list[int]]] = {}
    for pos in POS_ORDER:
        name = f"index.{FILE_OF[pos]}"
        for i, line in enumerate(_lines(source / name), 1):
            if line.startswith(" "):
                continue
            tok = line.split()
            try:
                lemma, file_pos, n_synsets, n_pointers = tok[0], tok[1], int(tok[2]), int(tok[3])
                rest = tok[4 + n_pointers:]
                if int(rest[0]) != n_synsets or n_synsets <= 0:
                    raise ValueError("synset count and sense count differ")
                offsets = [int(x) for x in rest[2:2 + n_synsets]]
                if len(offsets) != n_synsets or file_pos != pos:
                    raise ValueError("truncated line or wrong part of speech")
            except (IndexError, ValueError) as e:
                raise BuildError(f"{source / name}, line {i}: {e}") from e
            index.setdefault(lemma, {})[pos] = offsets
    return index


def read_exceptions(source: Path) -> dict[str, dict[str, list[str]]]:
    """pos -> inflected form -> base forms; a later line for the same form wins (as in nltk)."""
    exc: dict[str, dict[str, list[str]]] = {}
    for pos in POS_ORDER:
        table: dict[str, list[str]] = {}
        for line in _lines(source / f"{FILE_OF[pos]}.exc"):
            terms = line.split()
            if terms:
                table[terms[0]] = terms[1:]
        exc[pos] = table
    return exc


def read_synsets(source: Path) -> dict[str, dict[int, tuple[str, list[str]]]]:
    """pos file -> offset -> (ss_type, lemma names without syntactic marker)."""
    out: dict[str, dict[int, tuple[str, list[str]]]] = {}
    for pos in POS_ORDER:
        name = f"data.{FILE_OF[pos]}"
        table: dict[int, tuple[str, list[str]]] = {}
        for i, line in enumerate(_lines(source / name), 1):
            if line.startswith(" ") or not line.strip():
                continue
            tok = line.split("|", 1)[0].split()
            try:
                offset, ss_type, n_lemmas = int(tok[0]), tok[2], int(tok[3], 16)
                names = [_MARKER.match(tok[4 + 2 * k]).group(1)  # type: ignore[union-attr]
                         for k in range(n_lemmas)]
            except (IndexError, ValueError) as e:
                raise BuildError(f"{source / name}, line {i}: {e}") from e
            table[offset] = (ss_type, names)
        out[pos] = table
    return out


def render(source: Path) -> str:
    """The uncompressed text of the data file (see the module docstring for the format)."""
    missing = [f for f in REQUIRED if not (source / f).is_file()]
    if missing:
        raise BuildError(f"{source} is not a WordNet dict directory: it lacks "
                         f"{', '.join(missing)}")
    version = wordnet_version(source)
    if version != "3.0":
        raise BuildError(f"{source} holds WordNet {version or '(unknown version)'}, not 3.0")
    index, exc, synsets = read_index(source), read_exceptions(source), read_synsets(source)
    for lemma, by_pos in index.items():  # every indexed offset must name a real synset
        for pos, offsets in by_pos.items():
            bad = [o for o in offsets if o not in synsets[pos]]
            if bad:
                raise BuildError(f"index.{FILE_OF[pos]}: {lemma!r} points at missing {bad}")
    sections: list[tuple[str, list[str]]] = [("index", [
        lemma + "\t" + ";".join(f"{p} " + " ".join(map(str, index[lemma][p]))
                                for p in POS_ORDER if p in index[lemma])
        for lemma in index])]
    sections += [(f"exc {p}", [f"{form}\t{' '.join(bases)}" for form, bases in exc[p].items()])
                 for p in POS_ORDER]
    sections += [(f"synsets {p}", [f"{off:08d}\t{t}\t{' '.join(names)}"
                                   for off, (t, names) in synsets[p].items()])
                 for p in POS_ORDER]
    out = [(f"{FORMAT_TAG}\tWordNet {version}\tPrinceton University, see "
            "LICENSE-WordNet-3.0.txt\tbuilt by nova_mlflow.wordnet.build")]
    for name, entries in sections:
        clash = next((e for e in entries if e.startswith("%") or "\n" in e), None)
        if clash is not None:  # "%" at a line start opens a section: no entry may do that
            raise BuildError(f"section {name}: entry {clash!r} cannot be written")
        out += [f"%{name}\t{len(entries)}", *sorted(entries)]
    return "\n".join(out) + "\n"


def gzip_bytes(payload: bytes) -> bytes:
    """A gzip member written field by field (mtime 0, no name, OS "unknown").

    Why not gzip.compress: its header differs between Python versions (3.11 lets zlib write
    it, with the OS byte of the machine); here only zlib's deflate stream can vary.
    """
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflate.compress(payload) + deflate.flush()
    # magic, deflate, no flags | mtime 0 | extra flags "max compression", OS "unknown"
    header = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x02\xff"
    return header + body + struct.pack("<II", zlib.crc32(payload), len(payload) & 0xFFFFFFFF)


def build(source: Path = DEFAULT_SOURCE, out: Path = DEFAULT_OUT) -> Path:
    """Write the gzip'd data file; the same source always gives the same bytes."""
    data = gzip_bytes(render(source).encode("utf-8"))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse  # here, not at the top: the bundled reader imports this module's constants

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                    help=f"WordNet 3.0 dict directory [default: {DEFAULT_SOURCE}]")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="file to write [default: the package's own data file]")
    args = ap.parse_args(argv)
    try:
        path = build(args.source, args.out)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
