"""Task 2 metrics: keywords, BLEU/METEOR against values worked out by hand (and one parity
check with nltk, which they wrap), negation-aware status, language statistics, and the
offline WordNet. WordNet is required (no skip): .ci/run installs it."""

from __future__ import annotations

import math

import pytest
from nltk.translate.bleu_score import corpus_bleu
from nltk.translate.meteor_score import meteor_score

from nova_mlflow.metrics import captioning as cap
from nova_mlflow.metrics.language import language_stats, words
from nova_mlflow.metrics.status import binary_scores, read_status


@pytest.fixture(scope="session")
def wn(session_cache):
    """The package's WordNet reader (the bundled WordNet 3.0)."""
    from nova_mlflow.wordnet import wordnet

    return wordnet()


class NoSynonyms:
    """A WordNet with no synsets: METEOR with exact and stem matching only."""

    def synsets(self, *args, **kwargs):
        return []


# --- keywords -----------------------------------------------------------------------------

def test_keywords_split_modality_multiword_and_stop_words():
    k = cap.keywords("Axial T2-weighted FLAIR image (A) shows MASS EFFECT and a hyperintense "
                     "lesion in the white matter; 19 x 25 mm.")
    assert k.modality == {"axial", "t2", "weighted", "flair"}
    assert k.clinical == {"mass effect", "hyperintense", "lesion", "white matter"}
    assert "mass" not in k.clinical and "matter" not in k.clinical  # inside multi-word terms


def test_keywords_longest_term_and_anatomical_sagittal():
    k = cap.keywords("Thrombosis of the superior sagittal sinus on sagittal T1WI")
    assert k.clinical == {"thrombosis", "superior sagittal sinus", "t1wi"}
    assert k.modality == {"sagittal"}  # the plane, not the sinus
    assert cap.keywords("grey matter and gray-matter").clinical == {"grey matter", "gray matter"}
    assert cap.keywords(None) == cap.Keywords(frozenset(), frozenset())


def test_corpus_micro_and_case_mean_differ_and_are_hand_checked():
    a = cap.match(frozenset({"lesion", "edema"}), frozenset({"lesion", "pons", "mass effect"}))
    b = cap.match(frozenset({"cyst", "ring", "wall", "septa"}), frozenset({"cyst"}))
    assert a.hits == {"lesion"} and a.missed == {"pons", "mass effect"} and a.extra == {"edema"}
    prf = cap.corpus_prf([a, b])
    assert prf["precision"] == pytest.approx(2 / 6) and prf["recall"] == pytest.approx(2 / 4)
    assert prf["f1"] == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))  # 0.4
    # per case: a = 2*1/(2+3) = 0.4, b = 2*1/(4+1) = 0.4 -> equal by chance; add a third case
    c = cap.match(frozenset({"cyst"}), frozenset({"cyst"}))
    assert cap.case_mean_f1([a, b, c]) == pytest.approx((0.4 + 0.4 + 1.0) / 3)
    assert cap.corpus_prf([a, b, c])["f1"] == pytest.approx(2 * 3 / (7 + 5))


def test_case_mean_leaves_out_cases_with_nothing_to_score():
    empty = cap.match(frozenset(), frozenset())
    only_pred = cap.match(frozenset({"axial"}), frozenset())
    assert empty.f1 is None and only_pred.f1 == 0.0
    assert cap.case_mean_f1([empty, cap.match(frozenset({"t1"}), frozenset({"t1"}))]) == 1.0
    assert cap.case_mean_f1([empty]) == 0.0
    assert cap.corpus_prf([]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


# --- BLEU and METEOR ----------------------------------------------------------------------

REFS = ["Axial FLAIR image shows a hyperintense lesion in the right frontal lobe.",
        "Sagittal T1 weighted image shows a cystic mass in the posterior fossa with mass effect.",
        "Coronal T2 image shows bilateral hippocampal hyperintensity."]
HYPS = ["Axial FLAIR image shows a large hyperintense lesion in the left frontal lobe.",
        "Sagittal T1 image shows a mass in the posterior fossa.",
        "There is bilateral hippocampal swelling on coronal T2."]


# Worked by hand. Sentence 1: reference "the lesion is in the left frontal lobe" (8 words),
# hypothesis "the lesion is in the right frontal lobe" (8 words): clipped n-gram matches
# 7/8 unigrams, 5/7 bigrams ("the lesion", "lesion is", "is in", "in the", "frontal lobe"),
# 3/6 trigrams, 2/5 four-grams. Sentence 2: reference "axial flair image shows a
# hyperintense lesion" (7), hypothesis "axial flair image" (3): 3/3, 2/2, 1/1 and no
# four-gram, which nltk's corpus_bleu counts as 0 of 1 (its denominator is max(1, count)).
R1, H1 = "the lesion is in the left frontal lobe", "the lesion is in the right frontal lobe"
R2, H2 = "axial flair image shows a hyperintense lesion", "axial flair image"


def test_bleu_worked_by_hand():
    one = cap.corpus_bleu4([words(R1)], [words(H1)])
    assert one == pytest.approx((7 / 8 * 5 / 7 * 3 / 6 * 2 / 5) ** 0.25)  # = 2 ** -0.75, BP 1
    both = cap.corpus_bleu4([words(R1), words(R2)], [words(H1), words(H2)])
    precisions = (7 + 3) / (8 + 3) * (5 + 2) / (7 + 2) * (3 + 1) / (6 + 1) * (2 + 0) / (5 + 1)
    brevity = math.exp(1 - (8 + 7) / (8 + 3))  # corpus lengths: reference 15, hypothesis 11
    assert both == pytest.approx(brevity * precisions ** 0.25)  # 0.42111
    r = [words(t) for t in REFS]
    assert cap.corpus_bleu4(r, r) == pytest.approx(1.0)
    assert cap.corpus_bleu4(r, [[], [], []]) == 0.0
    with pytest.raises(ValueError):
        cap.corpus_bleu4(r, r[:2])


def test_meteor_worked_by_hand(wn):
    """METEOR (alpha 0.9, beta 3, gamma 0.5): Fmean = P R / (0.9 P + 0.1 R), penalty
    0.5 (chunks / matches)^3, score = Fmean (1 - penalty)."""
    # 7 of 8 words match ("right" / "left" do not, not even as synonyms), in 2 chunks
    (s1,) = cap.meteor_scores([words(R1)], [words(H1)], wn)
    assert s1 == pytest.approx(7 / 8 * (1 - 0.5 * (2 / 7) ** 3))  # 0.86480
    # P = 3/3, R = 3/7, one chunk
    (s2,) = cap.meteor_scores([words(R2)], [words(H2)], wn)
    fmean = (1 * 3 / 7) / (0.9 * 1 + 0.1 * 3 / 7)
    assert s2 == pytest.approx(fmean * (1 - 0.5 * (1 / 3) ** 3))  # 0.44613
    # "edema" matches "oedema" only through WordNet: 5/5 in one chunk, else 4/5 in two
    ref, hyp = words("marked oedema around the lesion"), words("marked edema around the lesion")
    assert cap.meteor_scores([ref], [hyp], wn) == [pytest.approx(1 - 0.5 * (1 / 5) ** 3)]
    assert cap.meteor_scores([ref], [hyp], NoSynonyms()) == \
        [pytest.approx(4 / 5 * (1 - 0.5 * (2 / 4) ** 3))]  # 0.75
    r = [words(t) for t in REFS]
    assert cap.meteor_scores(r, [[], [], []], wn) == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="WordNet"):
        cap.meteor_scores(r, r, None)


def test_bleu_and_meteor_are_nltks_on_our_tokens(wn):
    """The one parity check: both metrics are thin wrappers of nltk (the NOVA paper's
    tools), fed our tokenisation; the values must be nltk's exactly."""
    r, h = [words(t) for t in REFS], [words(t) for t in HYPS]
    assert cap.corpus_bleu4(r, h) == pytest.approx(corpus_bleu([[x] for x in r], h))
    assert cap.meteor_scores(r, h, wn) == \
        pytest.approx([meteor_score([x], y, wordnet=wn) for x, y in zip(r, h)])


def test_synonyms_score_higher_with_wordnet_than_without(wn):
    ref, hyp = words("marked oedema around the lesion"), words("marked edema around the lesion")
    with_wn = cap.meteor_scores([ref], [hyp], wn)[0]
    without = cap.meteor_scores([ref], [hyp], NoSynonyms())[0]
    assert with_wn > without + 0.1
    assert wn.get_version() == "3.0"


# --- binary status ------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("No abnormality.", "normal"),
    ("Unremarkable brain MRI.", "normal"),
    ("Normal study.", "normal"),
    ("No focal lesion is seen.", "normal"),
    ("No significant intracranial abnormality is detected.", "normal"),
    ("No evidence of pathology.", "normal"),
    ("Haemorrhage is not seen. The brain appears normal.", "normal"),
    ("There is no hydrocephalus. No acute abnormality.", "normal"),
    ("Hyperintense lesion in the right frontal lobe. No other abnormality is seen.", "abnormal"),
    ("Small cyst in the pineal gland; otherwise unremarkable.", "abnormal"),
    ("The rest of the brain is unremarkable.", "abnormal"),
    ("No new lesions compared with the prior study.", "abnormal"),
    ("No enhancement of the lesion.", "abnormal"),  # the lesion exists
    ("Lesion in the pons. Unremarkable ventricles.", "abnormal"),
    ("The ventricles are normal.", "abnormal"),  # one structure, not the study
    ("No mass effect.", "abnormal"),  # says nothing about abnormality overall
    ("Axial FLAIR image.", "abnormal"),  # default: abnormal unless told otherwise
])
def test_read_status_is_negation_aware(text, expected):
    assert read_status(text) == expected


def test_read_status_empty_and_binary_scores():
    assert read_status("") is None and read_status(None) is None
    truth = ["abnormal", "abnormal", "normal", "abnormal"]
    pred = ["abnormal", "normal", "abnormal", None]
    s = binary_scores(truth, pred)
    assert s["accuracy"] == 0.25
    assert s["f1"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 2))  # tp 1, fp 1, fn 2
    assert binary_scores([], []) == {"accuracy": 0.0, "f1": 0.0}


# --- language statistics ------------------------------------------------------------------

def test_words_and_language_stats():
    assert words("T2-weighted FLAIR (A), T1+Gd: 19 x 25 mm") == [
        "t2", "weighted", "flair", "a", "t1", "gd", "19", "x", "25", "mm"]
    s = language_stats(["Axial FLAIR.", "axial  flair", "A lesion.", "", None])
    assert (s.n_captions, s.unique_captions_normalized, s.vocab_size) == (3, 2, 4)
    # as written: three distinct strings, plus one value for the empty and missing ones
    assert s.unique_captions == 4
    assert s.mean_words == pytest.approx(2.0) and s.word_counts == (2, 2, 2)
    assert language_stats([]).as_metrics("gt_") == {
        "gt_vocab_size": 0.0, "gt_unique_captions": 0.0, "gt_unique_captions_normalized": 0.0,
        "gt_mean_words": 0.0}


def test_ground_truth_language_stats_on_the_real_metadata(real_metadata):
    """Our figures for NOVA's 900 expert captions (the paper's own figures could not be
    checked here: they are not in the project's notes). A change means the tokeniser moved."""
    from nova_mlflow.data import load_dataset

    cases = load_dataset(real_metadata, check_images=False).cases
    s = language_stats(c.caption for c in cases)
    assert s.n_captions == 900
    assert (s.vocab_size, s.unique_captions, s.unique_captions_normalized) == (1527, 729, 724)
    assert s.mean_words == pytest.approx(23.33, abs=0.01)
    assert sum(read_status(c.caption) == "normal" for c in cases) == 0






def test_meteor_with_per_call_word_caches_is_nltks_on_every_real_caption(wn, real_metadata):
    """meteor_scores keeps each word's stem and synsets for the rest of the call (a speed-up
    of ~3x on NOVA's captions); every value must still be nltk's plain meteor_score, bit for
    bit: each real caption against another case's, a shortened one and itself."""
    import random

    from nova_mlflow.data import load_dataset

    refs = [words(c.caption) for c in load_dataset(real_metadata, check_images=False).cases
            if words(c.caption)]
    others = refs[:]
    random.Random(7).shuffle(others)
    hyps = [o if i % 3 == 0 else o[: len(o) // 2] if i % 3 == 1 else r
            for i, (r, o) in enumerate(zip(refs, others))]
    got = cap.meteor_scores(refs, hyps, wn)
    want = [float(meteor_score([r], h, wordnet=wn)) if h else 0.0 for r, h in zip(refs, hyps)]
    assert len(got) == len(refs) > 800
    assert got == want
    assert len({round(v, 6) for v in got}) > 300  # a real spread of values, not a constant
