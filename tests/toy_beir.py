"""A toy BEIR folder for the recipe tests: 8 topics x 4 docs; queries q{i} ("does ...") and r{i}
("what about ...") have doc d{i}_0 as their one positive (train split), the rest is unjudged."""
import json
from pathlib import Path

TOPICS = ["insulin resistance in obese adults", "bone density after vitamin D", "statins and heart attack",
          "malaria vaccine in children", "sleep loss and memory", "smoking and lung cancer",
          "exercise and depression", "antibiotics and gut bacteria"]


def write_toy_beir(root: Path) -> Path:
    docs = [{"_id": f"d{i}_{j}", "title": "", "text": f"Study {j} of {t}: " + " ".join([t] * (j + 1))}
            for i, t in enumerate(TOPICS) for j in range(4)]
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [{"_id": f"{p}{i}", "text": f"{w} {t}?"} for p, w in [("q", "does"), ("r", "what about")]
               for i, t in enumerate(TOPICS)]
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q['_id']}\td{q['_id'][1:]}_0\t1\n" for q in queries))
    return root
