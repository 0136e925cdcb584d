"""WordNet 3.0 for METEOR, shipped with the package: no download, no apt, no setup.

Why this package: METEOR's synonym stage needs WordNet, and without it nltk's METEOR silently
becomes a different (lower) number. nltk.download() needs network, Debian's packages need
apt and root, and nltk's reader takes seconds to build per process. So the package carries
the part of WordNet 3.0 that METEOR reads (lemma index, exception lists, synset lemma names;
2.9 MB, see README.md here for origin, licence and rebuilding) and reads it with nltk's own
`synsets`/`_morphy` code (bundled.py says why), giving nltk's METEOR values exactly.

Which WordNet, from NOVA_MLFLOW_WORDNET:
- unset, "" or "bundled": the data shipped here (the default; ~0.1 s to load).
- "nltk": nltk's data path, `nltk.data.find("corpora/wordnet")` (what nltk.download('wordnet')
  installs, or NLTK_DATA), read by nltk's WordNetCorpusReader.
- a directory of WordNet dict files (e.g. /usr/share/wordnet from Debian's wordnet-base +
  wordnet-sense-index): copied into the cache with `lexnames` added, then nltk's reader
  (sources.py says why the copy).
Anything else, or a source that is not there, raises WordNetMissing (exit code 2, one line
naming the fix): never a silent fallback, since each source is a deliberate choice.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nova_mlflow.errors import NovaError

log = logging.getLogger("nova_mlflow")

ENV_VAR = "NOVA_MLFLOW_WORDNET"
_HINT = (f"unset {ENV_VAR} to use the WordNet 3.0 bundled with nova-mlflow, or set it to "
         "'nltk' (after `python -c \"import nltk; nltk.download('wordnet')\"`) or to a "
         "directory of WordNet dict files (`apt-get install wordnet-base "
         "wordnet-sense-index` gives /usr/share/wordnet)")


class WordNetMissing(NovaError):
    """The chosen WordNet is not there; the message names the fix (the CLI prints it as one
    line). The run cannot go as configured: exit code 2, checked before any run opens."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # always one line


@dataclass(frozen=True)
class Source:
    """A chosen WordNet, found but not read: `kind` is bundled, nltk or directory."""

    kind: str
    path: Path

    def describe(self) -> str:
        """"bundled:<data file>", "nltk:<path>" or "directory:<path>" (logged with a run)."""
        return f"{self.kind}:{self.path}"

    def fingerprint(self) -> str:
        """A digest of the data METEOR reads from this source (what a memoised METEOR value
        depends on besides nltk): the bundled file's bytes, or the dict files' bytes."""
        h = hashlib.sha256(self.kind.encode())
        if self.kind == "bundled":  # its bytes say it all; the install path does not matter
            h.update(self.path.read_bytes())
        else:
            from nova_mlflow.wordnet.build import REQUIRED

            h.update(str(self.path).encode())
            for name in REQUIRED:
                f = self.path / name
                h.update(name.encode() + (f.read_bytes() if f.is_file() else b"-"))
        return h.hexdigest()[:20]


def source(choice: str | None = None) -> Source:
    """The WordNet `choice` names (default: $NOVA_MLFLOW_WORDNET), checked to be there;
    WordNetMissing if not. Cheap: nothing is parsed (only "nltk" imports nltk to look)."""
    value = (os.environ.get(ENV_VAR, "") if choice is None else choice).strip()
    if value in ("", "bundled"):
        from nova_mlflow.wordnet import build

        if not build.BUNDLED_FILE.is_file():
            raise WordNetMissing(f"the bundled WordNet is missing ({build.BUNDLED_FILE}): "
                                 f"reinstall nova-mlflow, or set {ENV_VAR} to 'nltk' or a "
                                 "directory of WordNet dict files")
        return Source("bundled", build.BUNDLED_FILE)

    from nova_mlflow.wordnet import sources

    if value == "nltk":
        try:
            return Source("nltk", sources.nltk_data_root())
        except sources.SourceMissing as e:
            raise WordNetMissing(f"{ENV_VAR}=nltk but {e}: {_HINT}") from e
    path = Path(value).expanduser()
    if not path.is_dir():
        raise WordNetMissing(f"{ENV_VAR}={value!r} is neither 'bundled', 'nltk' nor an "
                             f"existing directory: {_HINT}")
    from nova_mlflow.wordnet.build import REQUIRED

    missing = [f for f in REQUIRED if not (path / f).is_file()]
    if missing:
        raise WordNetMissing(f"{ENV_VAR}={value!r}: {path} is not a WordNet dict directory: "
                             f"it lacks {', '.join(missing)}; {_HINT}")
    return Source("directory", path)


def read(src: Source) -> Any:
    """The reader of a found source (the slow part: seconds for nltk's reader, ~0.1 s for
    the bundled data); WordNetMissing if its data turns out unusable."""
    if src.kind == "bundled":
        from nova_mlflow.wordnet import bundled

        try:
            return bundled.load(src.path)
        except bundled.DataError as e:
            raise WordNetMissing(f"the bundled WordNet is unusable ({e}): reinstall "
                                 f"nova-mlflow, or set {ENV_VAR} to 'nltk' or a directory "
                                 "of WordNet dict files") from e

    from nova_mlflow.wordnet import sources

    try:
        if src.kind == "nltk":
            return sources.from_nltk_data()[0]
        log.info("WordNet for METEOR from %s (nltk's reader on a cached copy)", src.path)
        return sources.from_directory(src.path)[0]
    except sources.SourceMissing as e:
        raise WordNetMissing(f"{ENV_VAR} ({src.describe()}): {e}; {_HINT}") from e


def load(choice: str | None = None) -> tuple[Any, str]:
    """(reader, source description) for `choice` (default: $NOVA_MLFLOW_WORDNET).

    The description is "bundled:<data file>", "nltk:<path>" or "directory:<path>".
    """
    src = source(choice)
    return read(src), src.describe()


@functools.lru_cache(maxsize=1)
def _chosen() -> Source:
    return source()


@functools.lru_cache(maxsize=1)
def _reader() -> Any:
    return read(_chosen())  # the source the memo's fingerprint names, read once


@functools.lru_cache(maxsize=1)
def _fingerprint() -> str:
    return _chosen().fingerprint()


def wordnet() -> Any:
    """The process-wide WordNet reader for nltk's `meteor_score(..., wordnet=...)`.

    Chosen by $NOVA_MLFLOW_WORDNET (module docstring), loaded on first call and cached;
    WordNetMissing if the chosen source is absent.
    """
    return _reader()


def wordnet_source() -> str:
    """Where the process-wide reader comes from: "bundled:...", "nltk:..." or "directory:...",
    found without reading it."""
    return _chosen().describe()


def fingerprint() -> str:
    """The process-wide source's data digest (Source.fingerprint), computed once."""
    return _fingerprint()


def cache_clear() -> None:
    """Forget the process-wide reader (tests, or after changing $NOVA_MLFLOW_WORDNET)."""
    _reader.cache_clear()
    _chosen.cache_clear()
    _fingerprint.cache_clear()


__all__ = ["ENV_VAR", "Source", "WordNetMissing", "cache_clear", "fingerprint", "load", "read",
           "source", "wordnet", "wordnet_source"]
