"""Find WordNet for METEOR without downloading anything at run time.

Why this module: METEOR's synonym stage needs WordNet, and nltk's hub is not reachable on
every machine. Without WordNet METEOR silently becomes a different (lower) number, so there
is no fallback here: either a real WordNet 3.0 is found or `WordNetMissing` says how to get it.

Where WordNet comes from, in this order:
1. nltk's data path (`nltk.data.find("corpora/wordnet")`: what nltk.download('wordnet')
   installs, or NLTK_DATA).
2. <cache_dir()>/nltk_data/corpora/wordnet, built once from the Debian packages
   wordnet-base + wordnet-sense-index (/usr/share/wordnet): the files are COPIED (nltk >= 3.10
   refuses paths outside its data roots and resolves symlinks) and the `lexnames` file, which
   no Debian package ships, is written from LEXNAMES below. Debian's files are the WordNet
   3.0 database, the same one nltk's own 'wordnet' package holds.
The reader is built once per process (~5 s) and cached.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from nova_mlflow.errors import NovaError
from nova_mlflow.paths import cache_dir

log = logging.getLogger("nova_mlflow")

DEBIAN_WORDNET = Path("/usr/share/wordnet")
INSTALL_HINT = ("install it with `apt-get install wordnet-base wordnet-sense-index` (Debian/"
                "Ubuntu; .ci/run does this), or on a machine with network access run "
                "`python -c \"import nltk; nltk.download('wordnet')\"`")

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
_REQUIRED = ("data.noun", "data.verb", "data.adj", "data.adv", "index.noun", "index.verb",
             "index.adj", "index.adv", "noun.exc", "verb.exc", "adj.exc", "adv.exc")


class WordNetMissing(NovaError):
    """No WordNet anywhere we may look; the message names the fix (the CLI prints it as one
    line). The run cannot go as configured: exit code 2, checked before any run opens."""

    exit_code = 2


def lexnames_text() -> str:
    """The `lexnames` file: "NN<TAB>name<TAB>category" per line, 45 lines."""
    return "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n"
                   for i, name in enumerate(LEXNAMES))


def _authorise(root: Path) -> None:
    """nltk only opens files under its data path: add our root to it (once)."""
    import nltk

    if str(root) not in [str(p) for p in nltk.data.path]:
        nltk.data.path.append(str(root))


def build_from_debian(root: Path, source: Path = DEBIAN_WORDNET) -> Path:
    """Copy the Debian WordNet files into <root>/corpora/wordnet and add `lexnames`.

    Written to a temporary sibling and renamed into place, so a crash or a second process
    never leaves a half-built directory that later looks complete.
    """
    missing = [f for f in _REQUIRED if not (source / f).is_file()]
    if missing:
        raise WordNetMissing(f"WordNet not found: {source} lacks {', '.join(missing)}; "
                             f"{INSTALL_HINT}")
    dest = root / "corpora" / "wordnet"
    if (dest / "lexnames").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=dest.parent))
    try:
        for f in source.iterdir():
            if f.is_file():
                shutil.copyfile(f, tmp / f.name)  # a real copy: nltk refuses symlinks
        (tmp / "lexnames").write_text(lexnames_text(), encoding="utf-8")
        try:
            os.rename(tmp, dest)
        except OSError:  # another process finished first
            if not (dest / "lexnames").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _from_nltk_path() -> Any | None:
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    try:
        found = nltk.data.find("corpora/wordnet")
    except LookupError:
        return None
    return WordNetCorpusReader(found, None)


@functools.lru_cache(maxsize=1)
def wordnet() -> Any:
    """The process-wide WordNet reader (built on first use, ~5 s), see `load_wordnet`."""
    return load_wordnet()


def load_wordnet() -> Any:
    """An nltk WordNetCorpusReader on WordNet 3.0, or WordNetMissing naming the fix."""
    import warnings

    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    with warnings.catch_warnings():  # "multilingual functions are not available": not needed
        warnings.filterwarnings("ignore", message=".*multilingual.*")
        reader = _from_nltk_path()
        if reader is not None:
            log.debug("WordNet from nltk's data path")
            return reader
        root = cache_dir() / "nltk_data"
        dest = root / "corpora" / "wordnet"
        if not (dest / "lexnames").is_file():
            if not DEBIAN_WORDNET.is_dir():
                raise WordNetMissing(
                    "METEOR needs WordNet, which is neither in nltk's data path nor in "
                    f"{DEBIAN_WORDNET}: {INSTALL_HINT}")
            log.info("building WordNet for METEOR from %s into %s", DEBIAN_WORDNET, dest)
            build_from_debian(root)
        _authorise(root)
        return WordNetCorpusReader(str(dest), None)
