"""The bundled WordNet 3.0 (nova_mlflow.wordnet) against nltk's own reader on Debian's WordNet.

Reference tests need Debian's WordNet 3.0 (/usr/share/wordnet): without it they skip, unless
NOVA_TEST_REQUIRE_WORDNET=1 (CI) makes them fail; `require_debian_wordnet` decides.
"""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import skip_unless_required, REAL_CSV

from nova_mlflow import wordnet as nwn
from nova_mlflow.errors import NovaError
from nova_mlflow.metrics.language import words
from nova_mlflow.wordnet import build, bundled, sources

ROOT = Path(nwn.__file__).resolve().parents[2]  # where this nova_mlflow is imported from
DEBIAN = Path("/usr/share/wordnet")

#: Written by hand, in the register of the captions, with synonyms and inflections of their words.
RADIOLOGY = (
    ("Axial FLAIR images show a large hyperintense tumour with surrounding oedema in the left "
     "frontal lobe."),
    "There is an enlarging mass compressing the lateral ventricles with midline displacement.",
    "Contrast-enhanced T1-weighted scans demonstrate ring enhancement of the lesions.",
    "No haemorrhage or calcifications are seen; the neoplasm restricts diffusion.",
    "Multiple white matter hyperintensities suggest demyelinating disease.",
    "Bleeding within the growth, and swelling of the surrounding brain.",
    "The cerebellar hemispheres appear shrunken, with widened sulci and dilated ventricles.",
    "Sagittal T2 images showed a cystic lesion pressing on the brainstem.",
)


def require_debian_wordnet() -> Path:
    """Debian's WordNet 3.0 dict directory, or skip (fail under NOVA_TEST_REQUIRE_WORDNET=1)."""
    missing = [f for f in build.REQUIRED if not (DEBIAN / f).is_file()]
    if not missing:
        return DEBIAN
    why = (f"Debian's WordNet 3.0 is not in {DEBIAN} (lacks {', '.join(missing)}): "
           "apt-get install wordnet-base wordnet-sense-index")
    skip_unless_required("NOVA_TEST_REQUIRE_WORDNET", why)
    raise AssertionError("unreachable")


def test_require_debian_wordnet_skips_or_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "DEBIAN", tmp_path)  # an empty directory
    monkeypatch.delenv("NOVA_TEST_REQUIRE_WORDNET", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install wordnet-base"):
        require_debian_wordnet()
    monkeypatch.setenv("NOVA_TEST_REQUIRE_WORDNET", "1")
    with pytest.raises(pytest.fail.Exception, match="NOVA_TEST_REQUIRE_WORDNET=1 but"):
        require_debian_wordnet()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Iterator[Any]:
    """nltk's own WordNetCorpusReader on a copy of Debian's files (+ lexnames), built here
    without nova_mlflow's loader so the reference does not depend on the code under test."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    source = require_debian_wordnet()
    root = tmp_path_factory.mktemp("nltk_ref")
    dest = sources.copy_dir(source, root)
    nltk.data.path.append(str(root))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield WordNetCorpusReader(str(dest), None)
    finally:
        nltk.data.path.remove(str(root))


@pytest.fixture(scope="module")
def shipped() -> bundled.BundledWordNet:
    return bundled.load()


@pytest.fixture(scope="module")
def captions() -> list[list[str]]:
    """The tokenised expert captions of the real NOVA metadata (read in place, never copied)."""
    if not REAL_CSV.exists():
        pytest.skip(f"real NOVA metadata not found at {REAL_CSV} (../shared is absent)")
    with REAL_CSV.open(newline="", encoding="utf-8") as f:
        toks = [words(row["caption"]) for row in csv.DictReader(f)]
    return [t for t in toks if t]


def signature(reader: Any, word: str) -> list[tuple[str, int, tuple[str, ...]]]:
    """What `synsets(word)` reaches: each synset's pos, offset and lemma names, in order."""
    return [(s.pos(), s.offset(), tuple(lem.name() for lem in s.lemmas()))
            for s in reader.synsets(word)]


def differences(ref: Any, ours: Any, forms: list[str]) -> list[str]:
    return [w for w in forms if signature(ref, w) != signature(ours, w)]


def inflections(w: str) -> list[str]:
    """Regular (and over-regular) inflections: every suffix rule of morphy gets exercised."""
    forms = [w + s for s in ("s", "es", "ed", "d", "ing", "er", "r", "est", "st")]
    if w.endswith("y"):
        forms += [w[:-1] + s for s in ("ies", "ied", "ier", "iest")]
    if w.endswith("e"):
        forms.append(w[:-1] + "ing")
    if w.endswith("f"):
        forms.append(w[:-1] + "ves")
    if w.endswith("fe"):
        forms.append(w[:-2] + "ves")
    if w.endswith("man"):
        forms.append(w[:-3] + "men")
    if len(w) > 2:
        forms += [w + w[-1] + s for s in ("ed", "ing", "er", "est")]
    return forms


def dict_file_words(source: Path) -> tuple[list[str], list[str]]:
    """(every lemma of index.*, every word of *.exc), read straight from the dict files."""
    lemmas = sorted({line.split()[0] for p in build.POS_ORDER
                     for line in (source / f"index.{build.FILE_OF[p]}").read_text().splitlines()
                     if not line.startswith(" ")})
    exc = sorted({w for p in build.POS_ORDER
                  for line in (source / f"{build.FILE_OF[p]}.exc").read_text().splitlines()
                  for w in line.split()})
    return lemmas, exc


# --- exactness against nltk's reader on Debian's WordNet 3.0 -------------------------------

@pytest.mark.slow
def test_synsets_equal_for_every_lemma_and_exception_word(reference, shipped):
    lemmas, exc = dict_file_words(DEBIAN)
    assert len(lemmas) == 147306 and len(exc) > 5000  # WordNet 3.0's counts
    forms = lemmas + exc + [w.upper() for w in lemmas[::97]]  # synsets() lowercases
    bad = differences(reference, shipped, forms)
    assert bad == [], f"{len(bad)} of {len(forms)} words differ, e.g. {bad[:10]}"


@pytest.mark.slow
def test_synsets_equal_for_inflected_forms_and_stems(reference, shipped, captions):
    """Regular inflections of a quarter of the lemmas and of the caption words, and Porter
    stems of those words and of the captions' inflected forms (METEOR looks up stems, which
    are often not words)."""
    from nltk.stem.porter import PorterStemmer

    lemmas, _ = dict_file_words(DEBIAN)
    vocab = sorted({w for c in captions for w in c})
    bases = [w for w in lemmas[::4] if "_" not in w] + vocab
    stem = PorterStemmer().stem
    forms = {f for w in bases for f in inflections(w)} | set(vocab)
    stems = {stem(w) for w in bases} | {stem(f) for w in vocab for f in inflections(w)}
    assert len(stems - forms) > 10_000  # stems add words the inflections do not have
    forms = sorted(forms | stems)
    assert len(forms) > 300_000
    bad = differences(reference, shipped, forms)
    assert bad == [], f"{len(bad)} of {len(forms)} forms differ, e.g. {bad[:10]}"


def meteor_pairs(captions: list[list[str]]) -> list[tuple[list[str], list[str]]]:
    """(reference, hypothesis) pairs from real captions: wrong case, damaged copies, prose."""
    rng = random.Random(20250520)
    pairs = []
    for i, ref in enumerate(captions):
        nxt = captions[(i + 1) % len(captions)]
        shuffled = ref[:]
        rng.shuffle(shuffled)
        suffix = ("s", "ed", "ing", "es")
        pairs += [
            (ref, nxt), (nxt, ref),  # another case's caption, both ways
            (ref, [w for j, w in enumerate(ref) if j % 3 != 1]),  # words dropped
            (ref, shuffled),
            (ref, [w + "s" for w in ref]),  # pluralised
            (ref, [w + suffix[j % 4] for j, w in enumerate(ref)]),  # inflected
        ]
        if i % 3 == 0:
            pairs += [(ref, words(s)) for s in RADIOLOGY] + [(words(RADIOLOGY[i % 8]), ref)]
    return pairs


class NoSynonyms:
    """A WordNet that knows no word: METEOR without its synonym stage."""

    def synsets(self, word: str) -> list:
        return []


@pytest.mark.slow
def test_meteor_equals_nltk_on_real_captions(reference, shipped, captions):
    from nltk.translate.meteor_score import meteor_score

    pairs = meteor_pairs(captions)
    assert len(captions) >= 900 and len(pairs) > 8000
    ref_scores = [meteor_score([r], h, wordnet=reference) for r, h in pairs]
    our_scores = [meteor_score([r], h, wordnet=shipped) for r, h in pairs]
    bad = [(i, a, b) for i, (a, b) in enumerate(zip(ref_scores, our_scores))
           if abs(a - b) > 1e-9]
    assert bad == [], f"{len(bad)} of {len(pairs)} pairs differ, e.g. {bad[:5]}"
    # the comparison can fail: WordNet changes the score of many of these pairs
    bare = [meteor_score([r], h, wordnet=NoSynonyms()) for r, h in pairs]
    changed = sum(abs(a - b) > 1e-9 for a, b in zip(ref_scores, bare))
    assert changed > 500, f"only {changed} pairs use a WordNet synonym"


def test_rebuild_gives_the_shipped_bytes(tmp_path):
    import zlib

    source = require_debian_wordnet()
    out = build.build(source, tmp_path / "rebuilt.txt.gz")
    shipped_bytes, rebuilt = bundled.DATA_FILE.read_bytes(), out.read_bytes()
    if rebuilt != shipped_bytes:
        same_text = zlib.decompress(rebuilt, 31) == zlib.decompress(shipped_bytes, 31)
        pytest.fail("rebuilt data differs from the shipped file" + (
            f" only in compression (zlib {zlib.ZLIB_RUNTIME_VERSION}); the text is equal"
            if same_text else "; run `python -m nova_mlflow.wordnet.build` and review"))


def test_build_refuses_an_incomplete_source(tmp_path):
    (tmp_path / "index.noun").write_text("")
    with pytest.raises(build.BuildError, match="lacks .*data.noun"):
        build.render(tmp_path)
    assert build.main(["--source", str(tmp_path), "--out", str(tmp_path / "x.gz")]) == 2
    assert not (tmp_path / "x.gz").exists()


# --- the bundled reader on its own ------------------------------------------------------

#: (reference, hypothesis, value) worked out by hand from nltk's METEOR (alpha 0.9, beta 3,
#: gamma 0.5): score = Fmean * (1 - 0.5 * (chunks / matches) ** 3), Fmean = PR / (0.9P + 0.1R).
#: nltk looks up WordNet synonyms of the Porter STEMS left after exact and stem matching
#: (tumours -> tumour, mouse -> mous, mice -> mice). WordNet facts, read in Debian's files:
#: data.noun has "tumour" and "neoplasm" in synset 14235200, "oedema" and "edema" in
#: 14316714, "shiner" and "mouse" in 14289387; noun.exc maps "mice" to "mouse".
HAND_WORKED = [
    # identical, 3 words: P = R = 1, one chunk of 3 -> 1 - 0.5 / 27
    (["the", "cat", "sat"], ["the", "cat", "sat"], 1 - 0.5 / 27),
    # one word, matched only as a WordNet synonym: 1 - 0.5 * 1 ** 3
    (["neoplasm"], ["tumour"], 0.5),
    (["edema"], ["oedema"], 0.5),
    (["neoplasm"], ["tumours"], 0.5),  # via the stem "tumour"
    (["shiner"], ["mice"], 0.5),  # morphy's exception list: mice -> mouse -> shiner
    (["mouse"], ["mice"], 0.0),  # the reference's stem "mous" is no synonym of anything
    # 3 exact + 1 synonym of 5 words each: P = R = 0.8, Fmean 0.8, one chunk of 4
    (["a", "neoplasm", "in", "the", "brain"], ["large", "tumour", "in", "the", "brain"],
     0.8 * (1 - 0.5 / 64)),
    (["dog"], ["cat"], 0.0),  # nothing shared
]


def test_bundled_needs_nothing_outside_the_package(tmp_path):
    """Empty HOME, empty NLTK_DATA, no NOVA_MLFLOW_WORDNET: the only WordNet file opened is
    the package's own, and METEOR gives the hand-worked values."""
    home, nltk_data = tmp_path / "home", tmp_path / "nltk_data"
    home.mkdir()
    nltk_data.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in (nwn.ENV_VAR, "NLTK_DATA")}
    env.update(HOME=str(home), NLTK_DATA=str(nltk_data), PYTHONPATH=str(ROOT),
               NOVA_MLFLOW_CACHE=str(tmp_path / "cache"))
    script = (
        "import json, sys\n"
        "opened = []\n"
        "sys.addaudithook(lambda ev, a: opened.append(str(a[0])) if ev == 'open' else None)\n"
        "from nltk.translate.meteor_score import meteor_score\n"
        "from nova_mlflow.wordnet import wordnet, wordnet_source\n"
        "wn = wordnet()\n"
        "scores = [meteor_score([r], h, wordnet=wn) for r, h, _ in json.loads(sys.argv[1])]\n"
        "print(json.dumps({'source': wordnet_source(), 'scores': scores, 'opened': [\n"
        "    p for p in opened if not p.endswith(('.py', '.pyc', '.so')) and\n"
        "    ('wordnet' in p.lower() or 'nltk_data' in p)]}))\n")
    out = subprocess.run([sys.executable, "-c", script, json.dumps(HAND_WORKED)], check=False,
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["source"] == f"bundled:{bundled.DATA_FILE}"
    assert got["opened"] == [str(bundled.DATA_FILE)]
    assert got["scores"] == pytest.approx([v for _, _, v in HAND_WORKED], abs=1e-12)
    assert not (tmp_path / "cache").exists() and not any(home.iterdir())


def test_default_source_is_bundled_and_cached(monkeypatch):
    monkeypatch.delenv(nwn.ENV_VAR, raising=False)
    nwn.cache_clear()
    try:
        first = nwn.wordnet()
        assert isinstance(first, bundled.BundledWordNet) and nwn.wordnet() is first
        assert nwn.wordnet_source().startswith("bundled:")
        assert first.get_version() == "3.0"
    finally:
        nwn.cache_clear()


def test_damaged_data_is_a_clear_error(tmp_path, monkeypatch):
    text = bundled.DATA_FILE.read_bytes()
    for name, data in (("cut.gz", text[: len(text) // 2]), ("empty.gz", b"")):
        monkeypatch.setattr(build, "BUNDLED_FILE", tmp_path / name)  # where source() looks
        (tmp_path / name).write_bytes(data)
        with pytest.raises(nwn.WordNetMissing, match="bundled WordNet is unusable") as e:
            nwn.load("bundled")
        assert e.value.exit_code == 2 and "\n" not in str(e.value)
    with pytest.raises(bundled.DataError, match="expected section 'exc n'"):
        bundled.parse(f"{build.FORMAT_TAG}\tWordNet 3.0\n%index\t1\ndog\tn 2084071\n")
    with pytest.raises(bundled.DataError, match="cut short"):
        bundled.parse(f"{build.FORMAT_TAG}\tx\n%index\t0\n" + "".join(
            f"%{k} {p}\t0\n" for k in ("exc", "synsets") for p in build.POS_ORDER) + "x\n")


# --- source selection ------------------------------------------------------------------

@pytest.mark.parametrize("value", ["wordnet3", "/no/such/dir", "bundle"])
def test_unknown_or_missing_source_is_exit_2(value, monkeypatch):
    monkeypatch.setenv(nwn.ENV_VAR, value)
    with pytest.raises(nwn.WordNetMissing) as e:
        nwn.load()
    assert isinstance(e.value, NovaError) and e.value.exit_code == 2
    assert "\n" not in str(e.value) and f"unset {nwn.ENV_VAR}" in str(e.value)


def test_directory_without_wordnet_files_names_what_is_missing(tmp_path):
    (tmp_path / "data.noun").write_text("")
    with pytest.raises(nwn.WordNetMissing, match=r"lacks index\.noun.*apt-get install"):
        nwn.load(str(tmp_path))


def test_a_run_checks_its_wordnet_before_any_call(tmp_path, monkeypatch):
    """Setup only finds the WordNet (reading it waits for the first METEOR the score memo
    does not hold), but an absent or incomplete source still stops a run before its calls."""
    from nova_mlflow.pipeline import setup
    from nova_mlflow.schemas import Task

    (tmp_path / "data.noun").write_text("")
    for value in (str(tmp_path), str(tmp_path / "nowhere")):
        monkeypatch.setenv(nwn.ENV_VAR, value)
        nwn.cache_clear()
        with pytest.raises(nwn.WordNetMissing):
            setup.check_resources((Task.captioning,))
    nwn.cache_clear()
    setup.check_resources((Task.localization,))  # no captioning: no WordNet needed


def test_nltk_source_without_nltk_data_is_a_clear_error(tmp_path, monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    monkeypatch.setenv(nwn.ENV_VAR, "nltk")
    with pytest.raises(nwn.WordNetMissing, match="nltk has no 'corpora/wordnet'") as e:
        nwn.load()
    assert e.value.exit_code == 2 and "nltk.download('wordnet')" in str(e.value)


def test_directory_and_nltk_sources_give_nltk_readers(tmp_path, monkeypatch, shipped):
    """A WordNet dict directory is copied into the cache (+ lexnames) and read by nltk; the
    copy also serves as an nltk data path for the 'nltk' source."""
    import nltk

    source = require_debian_wordnet()
    monkeypatch.setenv("NOVA_MLFLOW_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(nltk.data, "path", list(nltk.data.path))
    reader, where = nwn.load(str(source))
    assert where == f"directory:{source}"
    copies = list((tmp_path / "cache" / "nltk_data").glob("*/corpora/wordnet/lexnames"))
    assert len(copies) == 1 and copies[0].read_text() == sources.lexnames_text()
    assert len(copies[0].read_text().splitlines()) == 45
    for w in ("dogs", "mice", "tumours", "better", "oedema"):
        assert signature(reader, w) == signature(shipped, w)

    monkeypatch.setattr(nltk.data, "path", [str(copies[0].parents[2])])
    monkeypatch.setenv(nwn.ENV_VAR, "nltk")
    reader, where = nwn.load()
    assert where == f"nltk:{copies[0].parent}"
    assert signature(reader, "mice") == signature(shipped, "mice")
