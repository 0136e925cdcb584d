"""The bundled WordNet 3.0 reader: nltk's own lookup code running on the shipped compact data.

Why nltk's code and not a port: METEOR must give exactly nltk's number, and the part that
decides which synonyms a word reaches is nltk's `synsets` + `_morphy` (which forms to try,
which suffix rules, when the exception list replaces them, in which order). Those rules have
changed between nltk releases, so `BundledWordNet` borrows the installed nltk's functions
unchanged (`synsets`, `_morphy`, `morphy`, `MORPHOLOGICAL_SUBSTITUTIONS`) and provides only the
three things they read: `_lemma_pos_offset_map`, `_exception_map` and
`synset_from_pos_and_offset`. Whatever morphy does in the installed nltk, it does here on the
same WordNet 3.0 facts. Glosses, relations, sense keys and other languages are left out on
purpose: METEOR reads only `synsets(word)` and each synset's lemma names.

Why lazy: a process scores a few hundred captions with a few thousand distinct words, so the
147,306 index entries and 117,659 synsets stay as their sorted text lines, found by bisection
and parsed only when a word asks for them; loading is a decompress and one split into lines.
"""

from __future__ import annotations

import gzip
import warnings
from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path

from nltk.corpus.reader.wordnet import WordNetCorpusReader

from nova_mlflow.wordnet.build import BUNDLED_FILE, FORMAT_TAG, POS_ORDER

DATA_FILE = BUNDLED_FILE


class DataError(Exception):
    """The data file is not a complete nova-mlflow WordNet file (damaged install)."""


class Lemma:
    """One word of a synset; `name()` is what METEOR compares (case kept, as in nltk)."""

    __slots__ = ("_name", "_synset")

    def __init__(self, name: str, synset: Synset) -> None:
        self._name = name
        self._synset = synset

    def name(self) -> str:
        return self._name

    def synset(self) -> Synset:
        return self._synset

    def __repr__(self) -> str:
        return f"Lemma('{self._synset.name()}.{self._name}')"


class Synset:
    """A synset with only its part of speech, offset and lemma names."""

    __slots__ = ("_lemmas", "_offset", "_pos", "_reader")

    def __init__(self, reader: BundledWordNet, pos: str, offset: int, names: list[str]) -> None:
        self._reader = reader
        self._pos = pos  # n, v, a, s (adjective satellite) or r, as nltk's Synset.pos()
        self._offset = offset
        self._lemmas = [Lemma(n, self) for n in names]

    def pos(self) -> str:
        return self._pos

    def offset(self) -> int:
        return self._offset

    def lemmas(self, lang: str = "eng") -> list[Lemma]:
        if lang != "eng":
            raise NotImplementedError("the bundled WordNet holds English (WordNet 3.0) only")
        return self._lemmas

    def lemma_names(self, lang: str = "eng") -> list[str]:
        return [lem.name() for lem in self.lemmas(lang)]

    def name(self) -> str:
        """nltk's canonical name ("dog.n.01"): first lemma, pos, rank in the index."""
        first = self._lemmas[0]._name.lower()
        rank = self._reader._lemma_pos_offset_map[first].get(self._pos, []).index(self._offset)
        return f"{first}.{self._pos}.{rank + 1:02d}"

    def __repr__(self) -> str:
        return f"Synset('{self.name()}')"


class SortedTable:
    """Sorted "key<TAB>value" lines, looked up by bisection: no dict of 270,000 entries to
    build at load (that alone cost more than reading and decompressing the file)."""

    __slots__ = ("_lines",)

    def __init__(self, lines: list[str]) -> None:
        self._lines = lines

    def get(self, key: str) -> str | None:
        """The value of `key`, or None. TAB sorts before any key character, so the first
        line >= key + TAB starts with it if the key is present."""
        probe = key + "\t"
        i = bisect_left(self._lines, probe)
        if i < len(self._lines) and self._lines[i].startswith(probe):
            return self._lines[i][len(probe):]
        return None

    def keys(self) -> Iterator[str]:
        return (line.partition("\t")[0] for line in self._lines)

    def __len__(self) -> int:
        return len(self._lines)


class LemmaIndex:
    """lemma -> {pos: [offsets]}, parsed on first access, shaped like nltk's map.

    Like nltk's `defaultdict(dict)`, a missing lemma reads as {} (without being inserted);
    the 's' (satellite) entry of an adjective is derived as nltk derives it: the lemma's
    adjective offsets that are satellite synsets, in index order.
    """

    def __init__(self, raw: SortedTable, adjectives: SortedTable) -> None:
        self._raw = raw
        self._adjectives = adjectives  # adjective offset -> "ss_type\tnames"
        self._parsed: dict[str, dict[str, list[int]]] = {}

    def __contains__(self, lemma: object) -> bool:
        return isinstance(lemma, str) and (lemma in self._parsed or
                                           self._raw.get(lemma) is not None)

    def __getitem__(self, lemma: str) -> dict[str, list[int]]:
        got = self._parsed.get(lemma)
        if got is None:
            raw = self._raw.get(lemma)
            if raw is None:
                return {}
            got = {}
            for part in raw.split(";"):
                pos, *offsets = part.split(" ")
                got[pos] = [int(o) for o in offsets]
                if pos == "a":
                    got["s"] = [int(o) for o in offsets
                                if (self._adjectives.get(f"{int(o):08d}") or "")[:1] == "s"]
            self._parsed[lemma] = got
        return got

    def __len__(self) -> int:
        return len(self._raw)

    def __iter__(self) -> Iterator[str]:
        return self._raw.keys()


class BundledWordNet:
    """Usable as nltk's `meteor_score(..., wordnet=...)`; see the module docstring."""

    # nltk's own lookup and morphology, unchanged (plain functions work as methods here)
    MORPHOLOGICAL_SUBSTITUTIONS = WordNetCorpusReader.MORPHOLOGICAL_SUBSTITUTIONS
    synsets = WordNetCorpusReader.synsets
    morphy = WordNetCorpusReader.morphy
    _morphy = WordNetCorpusReader._morphy

    def __init__(self, header: str, index: SortedTable,
                 exceptions: dict[str, dict[str, list[str]]],
                 synsets: dict[str, SortedTable]) -> None:
        self._header = header
        self._synset_lines = synsets  # pos file (n, v, a, r) -> "offset\ttype\tnames" lines
        self._lemma_pos_offset_map = LemmaIndex(index, synsets["a"])
        self._exception_map = dict(exceptions)
        self._exception_map["s"] = self._exception_map["a"]  # as nltk does
        self._cache: dict[tuple[str, int], Synset] = {}

    def get_version(self) -> str:
        return self._header.split("\t")[1].removeprefix("WordNet ")

    def synset_from_pos_and_offset(self, pos: str, offset: int) -> Synset | None:
        """The synset at `offset` of the data file of `pos` ('s' reads the adjective file)."""
        file_pos = "a" if pos == "s" else pos
        key = (file_pos, offset)
        got = self._cache.get(key)
        if got is None:
            line = self._synset_lines[file_pos].get(f"{offset:08d}")
            if line is None:  # nltk warns and returns None too
                warnings.warn(f"No WordNet synset found for pos={pos} at offset={offset}.",
                              stacklevel=2)
                return None
            ss_type, _, names = line.partition("\t")
            got = self._cache[key] = Synset(self, ss_type, offset, names.split(" "))
        return got

    def _load_lang_data(self, lang: str) -> None:  # what nltk's synsets calls for lang != eng
        raise NotImplementedError("the bundled WordNet holds English (WordNet 3.0) only")


def parse(text: str) -> BundledWordNet:
    """The reader over the data file's text; DataError if a section is missing or cut short.

    Sections are found by their counts, not by scanning: one split into lines, then slices.
    """
    lines = text.split("\n")
    header = lines[0]
    if not header.startswith(FORMAT_TAG + "\t"):
        raise DataError(f"not a {FORMAT_TAG!r} file (header {header[:60]!r})")
    needed = ["index"] + [f"{kind} {p}" for kind in ("exc", "synsets") for p in POS_ORDER]
    found: dict[str, list[str]] = {}
    at = 1
    for name in needed:
        head = lines[at] if at < len(lines) else ""
        got, _, count = head[1:].partition("\t")
        if not head.startswith("%") or got != name or not count.isdigit():
            raise DataError(f"line {at + 1}: expected section {name!r}, found {head[:40]!r}")
        found[name] = lines[at + 1:at + 1 + int(count)]
        at += 1 + int(count)
    if lines[at:] != [""]:
        raise DataError(f"line {at + 1}: the file is cut short or has extra lines")
    exceptions = {p: {form: bases.split() for form, _, bases in
                      (line.partition("\t") for line in found[f"exc {p}"])}
                  for p in POS_ORDER}
    return BundledWordNet(header, SortedTable(found["index"]), exceptions,
                          {p: SortedTable(found[f"synsets {p}"]) for p in POS_ORDER})


def load(path: Path = DATA_FILE) -> BundledWordNet:
    """Read and parse the gzip'd data file (standard library only)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from e
    try:
        text = gzip.decompress(data).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is damaged: {e}") from e
    return parse(text)
