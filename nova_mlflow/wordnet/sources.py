"""The non-bundled WordNet sources: nltk's data path, or a directory of WordNet dict files.

Why keep them: they are the references the bundled data is checked against (Debian's
wordnet-base + wordnet-sense-index in CI) and a way to run on a WordNet one already has.
Both end in nltk's own WordNetCorpusReader, which takes seconds to build (it maps
index.sense), so neither is the default.

Why a directory is copied: nltk >= 3.10 opens files only under its data path roots and
resolves symlinks, so a reader on /usr/share/wordnet is refused. The files are copied into
<cache>/nltk_data/<key>/corpora/wordnet, <key> naming the source directory (two sources never
share a copy), the `lexnames` file, which no Debian package ships, is written there, and
<cache>/nltk_data/<key> joins nltk's data path. The copy must be called "corpora/wordnet":
nltk's reader, on a WordNet that says "3.0", maps it onto `nltk.data.find("corpora/wordnet")`
while it is built (map_wn), and fails if nothing answers to that name.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from nova_mlflow.paths import cache_dir
from nova_mlflow.wordnet.build import FILE_OF, POS_ORDER, REQUIRED

DEBIAN_WORDNET = Path("/usr/share/wordnet")

#: WordNet 3.0's lexicographer files, numbered from 00 (see WordNet's lexnames(5WN)).
#: A fixed fact table of the database format, not data downloaded from anywhere.
LEXNAMES: tuple[str, ...] = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance",
    "noun.time", "verb.body", "verb.change", "verb.cognition", "verb.communication",
    "verb.competition", "verb.consumption", "verb.contact", "verb.creation", "verb.emotion",
    "verb.motion", "verb.perception", "verb.possession", "verb.social", "verb.stative",
    "verb.weather", "adj.ppl",
)
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}  # the file's syntactic-category codes
assert [FILE_OF[p] for p in POS_ORDER] == list(_CATEGORY)


class SourceMissing(Exception):
    """The chosen source is absent or incomplete; the message says what is missing."""


def lexnames_text() -> str:
    """The `lexnames` file: "NN<TAB>name<TAB>category" per line, 45 lines."""
    return "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n"
                   for i, name in enumerate(LEXNAMES))


def _reader(root: Path) -> Any:
    """nltk's WordNetCorpusReader on `root` (no OMW: METEOR is English only)."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    with warnings.catch_warnings():  # "multilingual functions are not available": not needed
        warnings.filterwarnings("ignore", message=".*multilingual.*")
        return WordNetCorpusReader(str(root), None)


def nltk_data_root() -> Path:
    """Where nltk finds 'corpora/wordnet' (what nltk.download('wordnet') installs, or NLTK_DATA)."""
    import nltk

    try:
        return Path(str(nltk.data.find("corpora/wordnet")))
    except LookupError as e:
        raise SourceMissing("nltk has no 'corpora/wordnet' on its data path "
                            f"({os.pathsep.join(map(str, nltk.data.path))})") from e


def from_nltk_data() -> tuple[Any, str]:
    """nltk's own WordNet reader on nltk_data_root()."""
    found = nltk_data_root()
    return _reader(found), f"nltk:{found}"


def copy_dir(source: Path, root: Path) -> Path:
    """Copy WordNet dict files into <root>/corpora/wordnet and add `lexnames`.

    Written to a temporary sibling and renamed into place, so a crash or a second process
    never leaves a half-built directory that later looks complete.
    """
    missing = [f for f in REQUIRED if not (source / f).is_file()]
    if missing:
        raise SourceMissing(f"{source} is not a WordNet dict directory: it lacks "
                            f"{', '.join(missing)}")
    dest = root / "corpora" / "wordnet"
    if (dest / "lexnames").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=dest.parent))
    try:
        for f in sorted(source.iterdir()):
            if f.is_file():
                shutil.copyfile(f, tmp / f.name)  # a real copy: nltk refuses symlinks
        if not (tmp / "lexnames").is_file():
            (tmp / "lexnames").write_text(lexnames_text(), encoding="utf-8")
        try:
            os.rename(tmp, dest)
        except OSError:  # another process finished first
            if not (dest / "lexnames").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _authorise(root: Path) -> None:
    """nltk only opens files under its data path: add our root to it (once)."""
    import nltk

    if str(root) not in [str(p) for p in nltk.data.path]:
        nltk.data.path.append(str(root))


def from_directory(source: Path) -> tuple[Any, str]:
    """nltk's reader on a copy of the WordNet dict files in `source` (see the docstring)."""
    key = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
    root = cache_dir() / "nltk_data" / f"wordnet-{key}"
    dest = copy_dir(source, root)
    _authorise(root)
    return _reader(dest), f"directory:{source}"
