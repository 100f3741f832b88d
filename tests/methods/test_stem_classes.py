"""Document-side stemming of the lexical prior: classes over a vocabulary, a plain-Python float64
reference on random token sequences, and an index where a query's inflection finds the document."""
from collections import Counter

import numpy as np
import pytest
import Stemmer

from jaxir.methods.lexical_prior import LexicalPrior
from jaxir.methods.stem_classes import StemClasses

VOCAB = ["[PAD]", "[CLS]", "cell", "cells", "##ular", "run", "running", "runs", "the", "##s",
         "celled", "bone", "x1", "runner"]
SKIP = [0, 1]


def ref_prior(tokens, vocab, avgdl, k1=1.5, b=0.75):
    """{token id: weight} in float64: complete words of a multi-member stem class count per stem,
    everything else per id; a class's weight goes to every member, the larger weight wins."""
    stem = Stemmer.Stemmer("english").stemWord
    whole_words = [i for i, t in enumerate(vocab) if t.isalpha() and i not in SKIP]
    by_stem = {}
    for i in whole_words:
        by_stem.setdefault(stem(vocab[i]), []).append(i)
    multi = {s: ids for s, ids in by_stem.items() if len(ids) > 1}
    keys = []
    for pos, t in enumerate(tokens):
        complete = not vocab[t].startswith("##") and (
            pos + 1 == len(tokens) or not vocab[tokens[pos + 1]].startswith("##"))
        s = stem(vocab[t]) if vocab[t].isalpha() and t not in SKIP else None
        keys.append(("stem", s) if complete and s in multi else ("id", t))
    norm = k1 * (1 - b + b * len(tokens) / avgdl)
    out = {}
    for key, tf in Counter(keys).items():
        w = tf / (tf + norm)
        for t in (multi[key[1]] if key[0] == "stem" else [key[1]]):
            out[t] = max(out.get(t, 0.0), w)
    return out


def test_classes_group_whole_words_by_stem():
    stems = StemClasses(VOCAB, skip_ids=SKIP)
    groups = sorted(stems.members(c).tolist() for c in range(stems.n_classes))
    # runner stems to "runner" (Snowball), so it stays alone; "##s" and "x1" are not whole words.
    assert groups == [[2, 3, 10], [5, 6, 7]]
    assert stems.class_of[[4, 8, 9, 11, 12, 13]].tolist() == [-1] * 6


def test_pieces_of_longer_words_keep_their_own_id():
    stems = StemClasses(VOCAB, skip_ids=SKIP)
    keys = stems.keys([2, 4, 3, 8])  # "cell ##ular cells the"
    c = stems.class_of[3] + len(VOCAB)
    assert keys.tolist() == [2, 4, c, 8]


def test_stemmed_prior_matches_a_float64_reference_on_random_documents():
    rng = np.random.default_rng(0)
    stems = StemClasses(VOCAB, skip_ids=SKIP)
    docs = [rng.integers(2, len(VOCAB), rng.integers(1, 30)).tolist() for _ in range(40)]
    prior = LexicalPrior.fit(docs, stems=stems)
    for d in docs:
        ids, w = prior.vector(d, skip_ids=SKIP)
        want = ref_prior(d, VOCAB, prior.avgdl)
        assert ids.tolist() == sorted(want)
        np.testing.assert_allclose(w, [want[i] for i in ids.tolist()], rtol=1e-6)
        assert len(ids) <= prior.max_terms(docs, skip_ids=SKIP)


def test_without_stems_the_prior_is_unchanged():
    stems = StemClasses(VOCAB, skip_ids=SKIP)
    plain, stemmed = LexicalPrior(avgdl=5.0), LexicalPrior(avgdl=5.0, stems=stems)
    doc = [11, 8, 11, 12]  # no word with a multi-member class
    for a, b in zip(plain.vector(doc), stemmed.vector(doc)):
        np.testing.assert_array_equal(a, b)
    assert plain == stemmed and plain.meta()["stem"] is False and stemmed.meta()["stem"] is True


def test_prior_stem_needs_the_prior():
    from jaxir.methods.sparse_config import SparseConfig

    with pytest.raises(ValueError, match="prior_stem needs lexical_prior"):
        SparseConfig(prior_stem=True)


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_a_query_inflection_finds_the_document_only_with_stemming(tmp_path):
    """Real tokenizer, prior-only index (head biased off): "cells" also finds the document that
    only says "cell" when the prior is stemmed, and not otherwise; build-time choices are checked."""
    import jax

    from jaxir.methods.sparse import SparseModel
    from jaxir.methods.sparse_config import SparseConfig
    from jaxir.retrievers.sparse import SparseRetriever, save_checkpoint

    docs = ["Each cell divides after the trial.", "Bone density improved after vitamin D.",
            "Stem cells and memory loss."]  # "cells" needs an idf: some document must use it
    config = SparseConfig(lexical_prior=True, init_vocab_bias=-1e4, doc_maxlen=32, batch_size=4)
    save_checkpoint(tmp_path / "ckpt", config, SparseModel(config).init(jax.random.PRNGKey(0)))
    hits = {}
    for stem in (False, True):
        r = SparseRetriever(checkpoint=str(tmp_path / "ckpt"), progress=False, dtype="float32", prior_stem=stem)
        index = r.open(r.build(["a", "b", "c"], docs, tmp_path / f"index-{stem}")).index
        assert index.meta["prior_stem"] is stem
        hits[stem] = sorted(index.search("cells", 3)[0])
    assert hits[False] == ["c"] and hits[True] == ["a", "c"]
    with pytest.raises(ValueError, match="built with prior_stem False"):
        SparseRetriever(checkpoint=str(tmp_path / "ckpt"), prior_stem=True).open(tmp_path / "index-False")
