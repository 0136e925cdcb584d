"""Task 3 metrics: diagnosis normalisation, Top-k, coverage, entropy (pure, no I/O).

Normalisation (`normalize`, `analyse`): accents dropped, lower case, possessives dropped
("Wilson's"), a leading list marker or lead-in ("Case of", "MRI findings were suggestive of",
"histologically confirmed") dropped, punctuation to spaces, the prefixes non/anti/pseudo/
post/pre/intra/extra/sub/supra/hypo/hyper/bi joined to their word ("non-accidental" is one
word), British -> American spelling (haem, aem, oe, paed, tumour, leuco, -ise), plurals
singularised (metastases -> metastasis, cysts -> cyst), abbreviations expanded
(`ABBREVIATIONS`, also when plural: "AVMs"), Roman numerals after type/grade/stage (and
"Chiari I-IV", bare "II"/"III") made Arabic, synonym phrases rewritten (`SYNONYMS`, e.g.
cavernoma = cavernous angioma = cavernous malformation; `WORD_SYNONYMS`: infarction =
infarct) and "type C" kept as one exact token.

`analyse` splits a label into clauses (commas, colons, parentheses, " - ", and the
connectors in `CONNECTORS`: with, secondary to, due to, of, in, ...). Per alias it keeps the
*distinctive* words (all minus `GENERIC`: cerebral, brain, CNS, disease, syndrome, acute,
chronic, primary, left, ...), the *head* (distinctive words of the first clause, extended
clause by clause while it holds only `CLASS_NOUNS` such as "edema" or "toxic
leukoencephalopathy") and the opposed qualifiers present (primary/secondary, acute/chronic).
The rules that compare two analysed labels live in nova_mlflow/matching.py.

Top-k: share of cases whose first matching prediction has rank <= k; every case counts
(missing, failed and unparseable answers are misses). Coverage and entropy are defined on
labels (`coverage`, `entropy_bits`); which labels is the scoring's choice, written out in
nova_mlflow/scoring/diagnosis.py `DEFINITIONS`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache


ABBREVIATIONS: dict[str, str] = {
    "ms": "multiple sclerosis", "pml": "progressive multifocal leukoencephalopathy",
    "adem": "acute disseminated encephalomyelitis", "gbm": "glioblastoma",
    "pcnsl": "primary cns lymphoma", "cjd": "creutzfeldt jakob disease",
    "vcjd": "variant creutzfeldt jakob disease", "nmosd": "neuromyelitis optica",
    "nmo": "neuromyelitis optica", "pres": "posterior reversible encephalopathy",
    "rcvs": "reversible cerebral vasoconstriction", "avm": "arteriovenous malformation",
    "davf": "dural arteriovenous fistula",
    "dva": "developmental venous anomaly", "dnet": "dysembryoplastic neuroepithelial tumor",
    "sws": "sturge weber", "hie": "hypoxic ischemic encephalopathy",
    "hse": "herpes simplex encephalitis", "hsv": "herpes simplex", "cmv": "cytomegalovirus",
    "ebv": "epstein barr", "tb": "tuberculosis", "cvst": "venous sinus thrombosis",
    "cvt": "venous thrombosis", "sah": "subarachnoid hemorrhage", "sdh": "subdural hematoma",
    "edh": "epidural hematoma", "ich": "intracerebral hemorrhage", "dai": "diffuse axonal injury",
    "pacns": "primary angiitis of the cns", "mogad": "mog antibody associated disease",
    "melas": "mitochondrial encephalomyopathy lactic acidosis stroke like episode",
    "mld": "metachromatic leukodystrophy", "ald": "adrenoleukodystrophy",
    "msa": "multiple system atrophy", "psp": "progressive supranuclear palsy",
    "als": "amyotrophic lateral sclerosis", "nf1": "neurofibromatosis type 1",
    "nf2": "neurofibromatosis type 2", "nf": "neurofibromatosis", "tsc": "tuberous sclerosis",
    "vhl": "von hippel lindau", "cpm": "central pontine myelinolysis",
    "pxa": "pleomorphic xanthoastrocytoma", "atrt": "atypical teratoid rhabdoid tumor",
    "dipg": "diffuse intrinsic pontine glioma", "lgg": "low grade glioma",
    "hgg": "high grade glioma", "sft": "solitary fibrous tumor",
    "fcd": "focal cortical dysplasia", "sod": "septo optic dysplasia",
    "pkan": "pantothenate kinase associated neurodegeneration",
    "nbia": "neurodegeneration with brain iron accumulation",
    "fxtas": "fragile x associated tremor ataxia", "emh": "extramedullary hematopoiesis",
    "ccd": "crossed cerebellar diaschisis", "mma": "methylmalonic acidemia",
    "mlc": "megalencephalic leukoencephalopathy with subcortical cyst",
    "cadasil": "cerebral autosomal dominant arteriopathy with subcortical infarct",
    "hod": "hypertrophic olivary degeneration", "mets": "metastasis",
    "mers": "mild encephalitis encephalopathy with reversible splenial lesion",
}
# Whole-phrase synonyms, applied to the normalised text (left side as a regex).
SYNONYMS: tuple[tuple[str, str], ...] = (
    (r"central nervous system", "cns"),
    (r"glioblastoma multiforme", "glioblastoma"),
    (r"cavernoma|cavernous (?:angioma|hemangioma)", "cavernous malformation"),
    (r"tuberculous granuloma", "tuberculoma"),
    (r"globoid cell leukodystrophy", "krabbe"),
    (r"bourneville(?: pringle)?(?: disease)?", "tuberous sclerosis"),
    (r"van der knaap(?: disease)?", "megalencephalic leukoencephalopathy with subcortical cyst"),
    (r"hepatolenticular degeneration", "wilson disease"),
    (r"dysplastic (?:cerebellar gangliocytoma|gangliocytoma of the cerebellum)",
     "lhermitte duclos"),
    (r"virchow robin space", "perivascular space"),
    (r"metastatic (?:disease|deposit|lesion)", "metastasis"),
    (r"(?:4|4th|iv|fourth) ventricle", "fourth ventricle"),
    (r"(?:3|3rd|third) ventricle", "third ventricle"),
    (r"primary familial brain calcification", "fahr"),
    (r"multiple system atrophy(?: type)? c", "multiple system atrophy cerebellar"),
    (r"multiple system atrophy(?: type)? p", "multiple system atrophy parkinsonian"),
)
WORD_SYNONYMS = {"infarction": "infarct", "neoplasm": "tumor", "neoplasia": "tumor",
                 "splenial": "splenium", "leucodystrophy": "leukodystrophy"}
_SPELLING = (("tumour", "tumor"), ("haem", "hem"), ("aemia", "emia"), ("aemic", "emic"),
             ("ischaem", "ischem"), ("leukaem", "leukem"), ("paed", "ped"), ("oedem", "edem"),
             ("oesoph", "esoph"), ("foet", "fet"), ("aesth", "esth"), ("grey", "gray"),
             ("leuco", "leuko"), ("isation", "ization"), ("coeli", "celi"))
STOPWORDS = frozenset("a an the of with and or in on at to by for from as is are was be this "
                      "that it its into onto via vs versus".split())
CONNECTORS = ("associated with", "complicated with", "complicated by", "secondary to",
              "due to", "caused by", "leading to", "arising from", "related to", "with",
              "causing", "after", "following", "from", "involving", "in", "of", "vs", "versus")
GENERIC = STOPWORDS | frozenset(
    "cerebral brain intracranial cns disease syndrome disorder condition acute subacute chronic "
    "primary secondary left right bilateral unilateral lesion finding change likely probable "
    "possible possibly suspected suspicion consistent suggestive most type subtype form "
    "phenotype who grade nos case patient diagnosis final mri ct imaging sign feature pattern "
    "typical classic mild moderate severe extensive spectrum complex virus onset rare "
    "unusual presentation differential not found unknown unclear undetermined "
    "indeterminate".split())
OPPOSED = (("primary", "secondary"), ("acute", "chronic"), ("subacute", "chronic"))
CLASS_NOUNS = frozenset(
    "tumor mass cyst malformation anomaly dysplasia encephalitis encephalopathy meningitis "
    "infection infarct stroke ischemia hemorrhage hematoma atrophy sclerosis degeneration "
    "neurodegeneration palsy leukodystrophy leukoencephalopathy vasculitis demyelination "
    "inflammation edema hydrocephalus calcification agenesis dementia carcinoma sarcoma "
    "granuloma thrombosis embolism trauma injury toxicity intoxication poisoning deficiency "
    "aciduria acidemia myelitis vasculopathy angiopathy hypoplasia herniation congestion "
    "hygroma effusion collection abnormality process neuropathy myelopathy meningoencephalitis "
    "encephalomyelitis cerebritis cerebellitis ventriculitis leukoencephalitis hypophysitis "
    "polyneuropathy encephalomalacia leukomalacia gliosis dilatation stenosis occlusion "
    "necrosis ischemic hemorrhagic infectious inflammatory neoplastic vascular metabolic "
    "toxic degenerative demyelinating congenital".split())
_NOT_PLURAL = frozenset("pons pancreas atlas corpus herpes diabetes rabies scabies series "
                        "species meninges lues varices status sepsis ascites mellitus fungus "
                        "arachnoiditis hydrops bias gas lens duclos".split())
_IRREGULAR = {"metastases": "metastasis", "diagnoses": "diagnosis", "stenoses": "stenosis",
              "anastomoses": "anastomosis", "fibroses": "fibrosis", "ganglia": "ganglion"}
_ROMAN = {"i": "1", "ii": "2", "iii": "3", "iv": "4", "v": "5", "vi": "6", "vii": "7",
          "viii": "8", "ix": "9", "x": "10"}
_ROMAN_RE = re.compile(
    r"\b(type|grade|stage|class|group|phase)\s+(i{1,3}|iv|vi{0,3}|ix|x)([a-d]?)\b")
_BARE_ROMAN_RE = re.compile(r"\b(ii|iii)([ab]?)\b|(?<=\bchiari )(i|iv)\b")
_TYPE_LETTER_RE = re.compile(r"\b(type|group|class)\s+([a-z])\b")
_PREFIX_RE = re.compile(r"\b(non|anti|pseudo|post|pre|extra|intra|infra|supra|sub|peri|para|hypo"
                        r"|hyper|bi)\s+(?=[a-z])")
_LEAD_WORDS = (r"(?:(?:this|the|patient|was|were|is|are|mri|ct|imaging|findings?|features?|"
               r"appearances?|most|likely|final|differential|regarding|whole|file|we|believe|it|"
               r"overall|in|summary|conclusion|radiological|clinical)\W+)*")
_LEADIN = re.compile(
    r"^(?:\s*(?:[a-z]|\d{1,2})[.)]\s*)?(?:(?:(?:surgically|histologically|pathologically|"
    r"radiologically|clinically|laboratory|tests?|and|mri|ct|biopsy)\s+)+confirmed\s+|"
    + _LEAD_WORDS + r"(?:diagnosed as(?: having)?|suggestive of|consistent with|diagnosis(?: is)?"
    r"|is|case of)\b\s*:?\s*)?")
_PAREN = re.compile(r"\(([^()]*)\)")
_ACRONYM = re.compile(r"^\s*[A-Za-z0-9-]*[A-Z][A-Za-z0-9-]*[A-Z0-9][A-Za-z0-9-]*\s*$")
_CONNECTOR_RE = re.compile(r"\b(?:" + "|".join(c.replace(" ", r"\s+") for c in CONNECTORS) + r")\b")
_SYN_RES = tuple((re.compile(rf"\b(?:{pat})\b"), rep) for pat, rep in SYNONYMS)


def _ascii_lower(s: str) -> str:
    s = s.replace("\u00b4", "'").replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode().lower()
    return re.sub(r"(\w)'s\b|(\w)s'(?=\s|$)", r"\1\2", s)


def _singular(w: str) -> str:
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if len(w) < 4 or w in _NOT_PLURAL or not w.endswith("s") or w.endswith(("ss", "us", "is")):
        return w
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(("sses", "uses", "ches", "shes", "xes")):
        return w[:-2]
    return w[:-1]


def _word(w: str) -> str:
    """One token: spelling -> singular -> synonym; abbreviations (also plural ones) expanded."""
    if w in ABBREVIATIONS:
        return ABBREVIATIONS[w]
    if w.endswith("s") and w[:-1] in ABBREVIATIONS and len(w) > 2:
        return ABBREVIATIONS[w[:-1]]
    for brit, us in _SPELLING:
        if brit in w:
            w = w.replace(brit, us)
    if len(w) >= 9 and w.endswith(("ising", "ised")):  # necrotising, organised
        w = w[:-4] + "iz" + w[-2:] if w.endswith("ised") else w[:-5] + "izing"
    w = _singular(w)
    return WORD_SYNONYMS.get(w, w)


def _words(s: str) -> str:
    """Lower-case ASCII text -> normalised words (keeps no punctuation)."""
    s = _PREFIX_RE.sub(r"\1", re.sub(r"[^a-z0-9]+", " ", s))  # "non-accidental" is one word
    s = " ".join(_word(w) for w in s.split())
    s = _ROMAN_RE.sub(lambda m: f"{m.group(1)} {_ROMAN[m.group(2)]}{m.group(3)}", s)
    s = _BARE_ROMAN_RE.sub(lambda m: _ROMAN[m.group(1) or m.group(3)] + (m.group(2) or ""), s)
    for rx, rep in _SYN_RES:
        s = rx.sub(rep, s)
    s = _TYPE_LETTER_RE.sub(r"\1-\2", s)  # "type C" is exact like a number ("a" is no stopword)
    return " ".join(s.split())


def _strip_leadin(s: str) -> str:
    """Drop "Case of", "MRI findings were suggestive of", a list marker; never everything."""
    rest = _LEADIN.sub("", s, count=1).strip()
    return rest if re.search(r"[a-z0-9]", rest) else s


def normalize(label: str) -> str:
    """The comparable form of a diagnosis: equal strings here are the same diagnosis."""
    s = _strip_leadin(_ascii_lower(label).strip())
    return _words(s.replace("(", " ").replace(")", " "))


@dataclass(frozen=True)
class Alias:
    """One name of a diagnosis, split into the word sets the matching rules look at."""

    text: str
    distinctive: frozenset[str]
    head: frozenset[str]
    qualifiers: frozenset[str]

    @property
    def numbers(self) -> frozenset[str]:
        return frozenset(t for t in self.distinctive if "-" in t or any(c.isdigit() for c in t))


def _alias(clauses: list[str]) -> Alias | None:
    words = [w for c in clauses for w in c.split()]
    if not words:
        return None
    dist = frozenset(w for w in words if w not in GENERIC)
    head: set[str] = set()
    for c in clauses:
        head |= {w for w in c.split() if w not in GENERIC}
        if head - CLASS_NOUNS:
            break
    quals = frozenset(w for pair in OPPOSED for w in pair if w in words)
    return Alias(" ".join(words), dist, frozenset(head), quals)


def _clauses(raw: str) -> list[str]:
    parts = re.split(r"[,;:\u2022\n\t]|\s[-\u2013\u2014]\s", raw)
    out: list[str] = []
    for p in parts:
        for q in _CONNECTOR_RE.split(_words(p)):
            if q.strip():
                out.append(q.strip())
    return out


@lru_cache(maxsize=65536)
def analyse(label: str) -> tuple[str, tuple[Alias, ...]]:
    """(normalised text, aliases): what the offline matcher compares.

    Parenthesised acronyms become aliases when they abbreviate the whole label, else are
    dropped; other parenthesised text is a qualifier clause.
    """
    low = _strip_leadin(_ascii_lower(label).strip())
    inner = [m.group(1) for m in _PAREN.finditer(low)]
    originals = [m.group(1) for m in _PAREN.finditer(label)]
    main = _PAREN.sub(" ", low)
    extra: list[str] = []
    alt: list[str] = []
    # an acronym is an alias only when it abbreviates the whole label: "X (ACR)" at the end,
    # X one clause; elsewhere ("X (ACR) with Y") it only repeats words and is dropped
    whole = bool(re.fullmatch(r"[^()]*\([^()]*\)[\s.]*", low)) and len(_clauses(main)) == 1
    for low_in, orig in zip(inner, originals + [""] * len(inner)):
        key = re.sub(r"[^a-z0-9]", "", low_in)
        if key in ABBREVIATIONS or (len(low_in.split()) == 1 and _ACRONYM.match(orig)):
            if key in ABBREVIATIONS and whole:
                alt.append(low_in)
        else:
            extra.append(low_in)
    main_key = re.sub(r"[^a-z0-9]", "", main)
    if main_key in ABBREVIATIONS and extra:  # "ADEM (acute disseminated ...)"
        alt.extend(extra)
        extra = []
    aliases = [a for a in [_alias(_clauses(main) + [c for e in extra for c in _clauses(e)])]
               + [_alias(_clauses(x)) for x in alt] if a is not None]
    return normalize(label), tuple(aliases)



def distinctive_words(label: str) -> frozenset[str]:
    """All distinctive words of a label over its aliases (used to index a label space)."""
    return frozenset().union(*(a.distinctive for a in analyse(label)[1]))


def closeness(prediction: str, label: str) -> int:
    """Words the two do not share (smaller = closer), to pick among several matching labels."""
    return len(distinctive_words(prediction) ^ distinctive_words(label))



# --- accuracy, coverage, entropy ----------------------------------------------------------

def first_match_rank(verdicts: Sequence[bool]) -> int | None:
    """1-based rank of the first matching prediction, None when none matches."""
    return next((i for i, v in enumerate(verdicts, start=1) if v), None)


def top_k(ranks: Sequence[int | None], k: int) -> float:
    """ranks: one entry per case (None = not found / unanswered), all cases counted."""
    if not ranks:
        return 0.0
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def coverage(predicted: Iterable[Hashable], ground_truth: Iterable[Hashable]) -> float:
    """Share of distinct ground-truth labels that occur among the predicted labels."""
    gt = set(ground_truth)
    return len(gt & set(predicted)) / len(gt) if gt else 0.0


def entropy_bits(labels: Iterable[Hashable]) -> float:
    """Shannon entropy (bits) of the empirical distribution of the labels; 0 when empty."""
    counts = Counter(labels)
    n = sum(counts.values())
    return -sum(c / n * math.log2(c / n) for c in counts.values()) if n else 0.0


def rank_frequency(labels: Iterable[Hashable]) -> list[int]:
    """Label counts sorted from most to least frequent (Figure 6's curves)."""
    return sorted(Counter(labels).values(), reverse=True)
