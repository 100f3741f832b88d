"""The retriever registry: every CLI path goes through it, options are checked, a method plugs in
with one file and one line."""
import json
import sys
import textwrap

import pytest

from jaxir.cli import main
from jaxir.retrievers import registry

TOY_FILE = '''
"""A toy first-stage method: documents score by how many query words they contain."""
import dataclasses

import numpy as np

from jaxir.index.store import load_index, save_index
from jaxir.retrievers.base import FunctionSearcher, option


@dataclasses.dataclass
class WordOverlap:
    lowercase: bool = option(True, "compare words case-insensitively")
    name: str = dataclasses.field(default="toy", init=False)
    index_kind = "toy-overlap"

    def _words(self, text):
        return set((text.lower() if self.lowercase else text).split())

    def build(self, doc_ids, texts, out):
        return save_index(out, {"doc_ids": np.asarray(doc_ids, dtype=str),
                                "texts": np.asarray(list(texts), dtype=str)},
                          method=self.index_kind, model_fingerprint="none")

    def open(self, index_dir):
        stored = load_index(index_dir, method=self.index_kind)
        ids, docs = stored.arrays["doc_ids"], [self._words(t) for t in stored.arrays["texts"]]

        def search(queries, k):
            hits = []
            for q in queries:
                s = np.array([len(self._words(q) & d) for d in docs], np.float32)
                top = np.argsort(-s, kind="stable")[:k]
                hits.append(([str(ids[i]) for i in top], s[top]))
            return hits
        return FunctionSearcher(search)
'''


@pytest.fixture()
def tiny_beir(tmp_path):
    root = tmp_path / "tiny"
    (root / "qrels").mkdir(parents=True)
    docs = {"d1": "Cats purr softly", "d2": "Dogs bark at night", "d3": "Cats and dogs play"}
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n"
                                               for i, t in docs.items()))
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "cats purr"}) + "\n"
                                        + json.dumps({"_id": "q2", "text": "dogs bark"}) + "\n")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    return root


def test_a_new_method_is_one_file_and_one_registry_line(tiny_beir, tmp_path, monkeypatch, capsys):
    (tmp_path / "toy_method.py").write_text(textwrap.dedent(TOY_FILE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.REGISTRY, "toy", "toy_method:WordOverlap")  # the one line

    out = tmp_path / "out.json"
    assert main(["eval", "--method", "toy", "--data", str(tiny_beir), "--cache", str(tmp_path / "c"),
                 "--k", "3", "--output-json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["method"] == "toy" and result["metrics"]["ndcg@10"] == pytest.approx(1.0)
    # Its option is on the CLI (generated from the field), index + search find it by index kind.
    assert main(["index", "--method", "toy", "--lowercase", "false", "--data", str(tiny_beir),
                 "--out", str(tmp_path / "idx")]) == 0
    assert main(["search", "--index", str(tmp_path / "idx"), "--queries", str(tiny_beir),
                 "--k", "1", "--run", str(tmp_path / "r.trec")]) == 0
    assert (tmp_path / "r.trec").read_text().split()[2] == "d1"
    assert registry.method_of_index("toy-overlap") == "toy"
    sys.modules.pop("toy_method", None)


def test_unknown_options_are_an_error_naming_them():
    with pytest.raises(ValueError, match=r"'bm25' takes no option --nbits"):
        registry.get_retriever("bm25", nbits=2)
    with pytest.raises(ValueError, match="unknown method 'nosuch'"):
        registry.get_retriever("nosuch")
    assert registry.get_retriever("bm25", nbits=None).analyzer == "word"  # None = not given


def test_cli_rejects_an_option_the_method_does_not_take(tiny_beir, tmp_path, capsys):
    assert main(["eval", "--method", "bm25", "--nbits", "2", "--data", str(tiny_beir),
                 "--cache", str(tmp_path)]) == 2
    assert "takes no option --nbits" in capsys.readouterr().err


def test_every_registered_method_lists_its_kind_and_options():
    assert set(registry.first_stage_methods()) == {"bm25", "dense", "colbert", "sparse", "splade", "i3"}
    assert registry.rerank_methods() == ["cross-encoder", "mice", "colbert-rerank"]
    for name in registry.REGISTRY:
        cls = registry.retriever_class(name)
        assert cls().name == name if name != "cross-encoder" else cls(checkpoint="x").name == name
        assert all(f.metadata["help"] for f in registry.options_of(name).values()), name
