"""How close MICE's precomputed document states are to the cross-encoder's, per document layout.

For SciFact test pairs (query, judged document) and pretrained MiniLM (a proxy for the trained
cross-encoder MICE starts from), the document tokens' states after layer l are compared with the
same tokens' states in the cross-encoder's packed `[CLS] q [SEP] d [SEP]` row (full attention,
the cross-encoder's positions): mean and minimum over pairs of the per-pair mean cosine.

Layouts: `bare` (`d [SEP]` from position Lq, the first layout), `sinks` (`[CLS] [SEP] d [SEP]`,
the default: sinks at 0 and Lq-1, d from Lq) through `MiceModel.doc_states`, and, as the ceiling
no precomputed layout can reach, `sinks at the cross-encoder's positions` (the document placed
where this query puts it, which depends on the query's length). `--text-starts 16,20` adds the
sinks layout with the text from those fixed positions instead of Lq (the sinks at 0 and start-1).

    python -m benchmarks.claims.mice_layout_check --data ../shared/data/beir/scifact --pairs 48
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    import jax
    import jax.numpy as jnp

    from jaxir.eval.beir import load_beir
    from jaxir.methods.mice import MiceModel
    from jaxir.methods.mice_config import MiceConfig
    from jaxir.models.bert import bert_apply
    from jaxir.models.hf import load_bert
    from jaxir.text import load_tokenizer

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="BEIR folder (test split)")
    ap.add_argument("--pairs", type=int, default=48, help="first N (query, judged document) pairs")
    ap.add_argument("--layers", default="1,2,3,4", help="layers l_f to compare after")
    ap.add_argument("--text-starts", default="", help="also: sinks with the text from these fixed positions")
    ap.add_argument("--output-json", default=None)
    args = ap.parse_args()

    data = load_beir(args.data, split="test")
    pairs = [(data.queries[q], data.text_of(d)) for q in data.qrels for d in data.qrels[q]][: args.pairs]
    bert_config, params = load_bert(None)
    tok = load_tokenizer(None)
    lq, ld = 32, 160
    def states(ids, positions, types, layer):
        ids = jnp.asarray([ids])
        return np.asarray(bert_apply(bert_config, params, ids, jnp.ones_like(ids), jnp.asarray([types]),
                                     end_layer=layer, position_ids=jnp.asarray([positions])))[0]

    def cosine(a, b):
        return float(np.mean(np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)))

    rows = []
    for layer in (int(x) for x in args.layers.split(",")):
        starts = [int(x) for x in args.text_starts.split(",") if x]
        cos = {"bare": [], "sinks": [], "sinks at the cross-encoder's positions": [],
               **{f"sinks, text from position {p}": [] for p in starts}}
        models = {layout: MiceModel(MiceConfig(doc_layout=layout, query_maxlen=lq, doc_maxlen=ld, fusion_layer=layer),
                                    bert_config=bert_config, bert_params=params, tokenizer=tok)
                  for layout in ("bare", "sinks")}
        encode = {layout: jax.jit(m.doc_states) for layout, m in models.items()}
        for q, d in pairs:
            qt = tok(q, add_special_tokens=False)["input_ids"][: lq - 2]
            dt = tok(d, add_special_tokens=False)["input_ids"][: ld - 3]  # what both layouts keep
            packed = [tok.cls_token_id, *qt, tok.sep_token_id, *dt, tok.sep_token_id]
            start = len(qt) + 2
            ref = states(packed, list(range(len(packed))), [0] * start + [1] * (len(dt) + 1), layer)[start:]
            for layout, model in models.items():
                ids, mask = model.doc_arrays(token_lists=[dt])
                h = np.asarray(encode[layout]({"bert": params}, ids, mask))[0, : int(mask.sum())]
                cos[layout].append(cosine(h[model.sinks:], ref))
            n, ids = len(dt) + 1, [tok.cls_token_id, tok.sep_token_id, *dt, tok.sep_token_id]
            for name, p in [("sinks at the cross-encoder's positions", start),
                            *((f"sinks, text from position {p}", p) for p in starts)]:
                h = states(ids, [0, p - 1, *range(p, p + n)], [0, 0] + [1] * n, layer)
                cos[name].append(cosine(h[2:], ref))
        for name, values in cos.items():
            rows.append({"layer": layer, "layout": name, "mean": float(np.mean(values)), "min": float(np.min(values))})
            print(f"layer {layer}  {name:<40} mean {np.mean(values):.4f}  min {np.min(values):.4f}", flush=True)
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump({"pairs": len(pairs), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
