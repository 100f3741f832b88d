"""Training data for retrieval models: hard-negative mining and seeded n-way training tuples.

    mine.py    first-stage retriever over the TRAIN split -> JSONL of positives + candidates
    tuples.py  mined JSONL -> fixed-shape token arrays per query (a training BatchSource)
"""
