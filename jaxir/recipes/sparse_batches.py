"""The learned-sparse recipe's batch sources: ranking tuples (query, candidates, teacher scores,
and the lexical prior's rows when the model has one) and corpus texts for the MLM warm-up."""
from __future__ import annotations

import numpy as np


class TupleTexts:
    """Training tuples (query, 1 + n_negatives candidate texts, teacher scores) tokenised per batch.

    model: the SparseModel; data: the recipe's SparseData (n_negatives); rows: the train-query
    numbers (into `teacher`) this source draws from; candidates: their doc ids; with model.config.in_batch_negatives the teacher scores cover every candidate of the batch.
    """

    def __init__(self, model, data, rows, candidates, texts, teacher,
                 prior=None, prior_width: int = 0):
        self.model, self.data, self.rows, self.texts, self.teacher = model, data, list(rows), texts, teacher
        self.candidates = [candidates[r] for r in self.rows]
        # Lexical prior over the corpus (LexicalPrior) and its fixed padded width (no recompiles).
        self.prior, self.prior_width = prior, prior_width

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, picks: np.ndarray) -> dict[str, np.ndarray]:
        from jaxir.ops.sparse import inbatch_columns
        from jaxir.text import assemble

        tok, cfg, nway = self.model.tokenizer, self.model.config, 1 + self.data.n_negatives
        picks = [int(p) for p in picks]
        texts = [self.teacher.queries[self.rows[p]] for p in picks]
        if cfg.query_encoder == "mlm":  # [CLS] query [SEP], as the encoder sees it at search time
            q = assemble(tok, tok(texts, add_special_tokens=False)["input_ids"], max_length=cfg.query_maxlen,
                         fixed_length=True)
            q = {"input_ids": q.input_ids, "attention_mask": q.attention_mask}
        else:  # the WordPieces of the IDF vector
            q = tok(texts, add_special_tokens=False, truncation=True, max_length=cfg.query_maxlen,
                    padding="max_length", return_tensors="np")
        ids = [d for p in picks for d in self.candidates[p]]
        tokens = tok([self.texts[d] for d in ids], add_special_tokens=False)["input_ids"]
        d = assemble(tok, tokens, max_length=cfg.doc_maxlen, fixed_length=True)
        shape = (len(picks), nway, cfg.doc_maxlen)
        if cfg.in_batch_negatives:
            cols = inbatch_columns(len(picks), nway)
            teachers = np.stack([self.teacher(self.rows[p], [ids[c] for c in cols[i]])
                                 for i, p in enumerate(picks)])
        else:
            teachers = np.stack([self.teacher(self.rows[p], self.candidates[p]) for p in picks])
        batch = {"q_ids": q["input_ids"].astype(np.int32), "q_mask": q["attention_mask"].astype(np.int32),
                 "d_ids": d.input_ids.reshape(shape), "d_mask": d.attention_mask.reshape(shape),
                 "teachers": teachers}
        if self.prior is not None:  # from the whole document's tokens, as at index time
            ids, vals = self.prior.padded(tokens, self.prior_width, skip_ids=self.model.special_ids,
                                          keep_ids=self.model.vocab_ids)
            batch["prior_ids"], batch["prior_vals"] = ids.reshape(*shape[:2], -1), vals.reshape(*shape[:2], -1)
        return batch


class TextSource:
    """Corpus texts as fixed-length [B, doc_maxlen] MLM batches."""

    def __init__(self, tokenizer, token_lists, max_length: int):
        self.tokenizer, self.token_lists, self.max_length = tokenizer, token_lists, max_length

    def __len__(self) -> int:
        return len(self.token_lists)

    def take(self, rows):
        from jaxir.text import assemble

        b = assemble(self.tokenizer, [self.token_lists[int(r)] for r in rows], max_length=self.max_length,
                     fixed_length=True)
        return {"input_ids": b.input_ids, "attention_mask": b.attention_mask}


def tuple_texts(model, data, row_sets, candidates, texts, teacher, doc_tokens) -> list[TupleTexts]:
    """The tuples of each set of mined-query rows, with the lexical prior's rows when the model has
    one (fitted once; as wide as the widest document's prior vector, rounded up: one batch shape)."""
    prior = model.fit_prior(doc_tokens)
    width = -(-prior.max_terms(doc_tokens, skip_ids=model.special_ids, keep_ids=model.vocab_ids) // 64) * 64 \
        if prior else 0
    return [TupleTexts(model, data, rows, candidates, texts, teacher, prior, width) for rows in row_sets]
