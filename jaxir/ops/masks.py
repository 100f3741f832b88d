"""Boolean attention masks: padding, block-diagonal segments, MICE variants, ColBERT, causal.

Convention: an attention mask is bool [B, L, L] with out[b, i, j] True when position i (the
query row) may attend to position j (the key column). Padding masks are bool [B, L].
A row with no True entry (e.g. a padded position under attention_mask_2d) is safe only in an
attention that fills masked logits with a finite value (flax's dot_product_attention does);
callers using -inf must not feed such rows.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import chex
import jax.numpy as jnp

MiceVariant = Literal["full", "block_diagonal", "query_to_doc", "query_to_doc_no_qq"]

# allowed[s_i][s_j]: may a token of segment s_i attend to a token of segment s_j?
# Segment 0 = query side ([CLS] q [SEP]), segment 1 = document side (d [SEP], or MICE's [CLS] [SEP] d [SEP]).
MICE_VARIANTS: dict[str, tuple[tuple[bool, bool], tuple[bool, bool]]] = {
    # Plain cross-encoder: every valid token attends to every valid token.
    "full": ((True, True), (True, True)),
    # Early (independent) layers 1..l_f: query and document each attend within themselves, so the
    # document states are query-independent and can be precomputed.
    "block_diagonal": ((True, False), (False, True)),
    # Interaction layers: query attends to query and document; document never sees the query.
    "query_to_doc": ((True, True), (False, True)),
    # Ablation: interaction without query self-attention (the card reports it collapses quality).
    "query_to_doc_no_qq": ((False, True), (False, True)),
}


def padding_mask(token_ids: chex.Array, *, pad_id: int) -> chex.Array:
    """Real-token mask from ids: out[b, l] = token_ids[b, l] != pad_id.  [B, L] -> bool [B, L]."""
    chex.assert_rank(token_ids, 2)
    return token_ids != pad_id


def length_mask(lengths: chex.Array, *, max_len: int) -> chex.Array:
    """Real-token mask from lengths: out[b, l] = l < lengths[b].  [B] -> bool [B, max_len]."""
    chex.assert_rank(lengths, 1)
    return jnp.arange(max_len)[None, :] < lengths[:, None]


def attention_mask_2d(mask: chex.Array, *, mask_queries: bool = True) -> chex.Array:
    """Pairwise mask from padding: out[b, i, j] = mask[b, j] (& mask[b, i] if mask_queries).

    mask: [B, L] -> bool [B, L, L]. With mask_queries=False, padded rows still attend to the real
    tokens (the usual BERT key-padding behaviour, never an empty row unless the sequence is empty).
    """
    chex.assert_rank(mask, 2)
    valid = mask.astype(bool)
    keys = jnp.broadcast_to(valid[:, None, :], valid.shape + valid.shape[-1:])
    return keys & valid[:, :, None] if mask_queries else keys


def block_diagonal_mask(segment_ids: chex.Array, mask: chex.Array) -> chex.Array:
    """Within-segment attention: out[b, i, j] = mask[b, i] & mask[b, j] & (seg[b,i] == seg[b,j]).

    segment_ids: [B, L] ints (any number of segments); mask: [B, L] -> bool [B, L, L].
    """
    chex.assert_rank([segment_ids, mask], 2)
    chex.assert_equal_shape([segment_ids, mask])
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    return same & attention_mask_2d(mask)


def segment_pair_mask(
    segment_ids: chex.Array,
    mask: chex.Array,
    *,
    allowed: Sequence[Sequence[bool]],
) -> chex.Array:
    """out[b, i, j] = mask[b, i] & mask[b, j] & allowed[seg[b, i]][seg[b, j]].

    segment_ids: [B, L] with values in 0..S-1; allowed: S x S booleans (row = attending segment);
    mask: [B, L] -> bool [B, L, L]. Out-of-range segment ids are clamped (keep them in range).
    """
    chex.assert_rank([segment_ids, mask], 2)
    chex.assert_equal_shape([segment_ids, mask])
    table = jnp.asarray(allowed, bool)
    chex.assert_rank(table, 2)
    pair = table[segment_ids[:, :, None], segment_ids[:, None, :]]
    return pair & attention_mask_2d(mask)


def mice_masks(segment_ids: chex.Array, mask: chex.Array, *, variant: MiceVariant) -> chex.Array:
    """MICE segment mask for one layer range; variant is a key of MICE_VARIANTS.

    segment_ids: [B, L], 0 for the query side ([CLS] q [SEP]), 1 for the document side;
    mask: [B, L] -> bool [B, L, L].
      "full"               q->q, q->d, d->q, d->d   (cross-encoder)
      "block_diagonal"     q->q, d->d               (MICE layers 1..l_f, docs precomputable)
      "query_to_doc"       q->q, q->d, d->d         (MICE interaction layers)
      "query_to_doc_no_qq" q->d, d->d               (ablation: no query self-attention)
    The mask only decides who attends to whom: in MICE's interaction layers the document states
    are frozen (no document self-attention, no FFN), which the model does by carrying the doc rows
    through unchanged, not by masking.

    Two query tokens, two document tokens and a pad (rows attend to columns):

    >>> import numpy as np
    >>> seg, valid = np.array([[0, 0, 1, 1, 1]]), np.array([[1, 1, 1, 1, 0]])
    >>> mice_masks(seg, valid, variant="query_to_doc")[0].astype(int).tolist()
    [[1, 1, 1, 1, 0], [1, 1, 1, 1, 0], [0, 0, 1, 1, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 0]]
    >>> mice_masks(seg, valid, variant="block_diagonal")[0, 0].astype(int).tolist()
    [1, 1, 0, 0, 0]
    """
    if variant not in MICE_VARIANTS:
        raise ValueError(
            f"mice_masks: unknown variant {variant!r}; choose from {sorted(MICE_VARIANTS)}"
        )
    return segment_pair_mask(segment_ids, mask, allowed=MICE_VARIANTS[variant])


def mask_queries_to_nonmask_tokens(token_ids: chex.Array, *, mask_token_id: int) -> chex.Array:
    """ColBERT query mask: every position attends only to non-[MASK] tokens.

    out[b, i, j] = token_ids[b, j] != mask_token_id, for every row i, including the [MASK] rows:
    their output vectors are still computed and all enter MaxSim (query augmentation).
    token_ids: [B, L] (query padded with [MASK]) -> bool [B, L, L].
    """
    chex.assert_rank(token_ids, 2)
    return attention_mask_2d(token_ids != mask_token_id, mask_queries=False)


def causal_mask(length: int) -> chex.Array:
    """Decoder mask: out[i, j] = j <= i.  -> bool [L, L] (broadcast against [B, L, L])."""
    idx = jnp.arange(length)
    return idx[None, :] <= idx[:, None]


# The four MICE configurations jaxir exposes (DESIGN §3.4: which segment pairs may attend to which,
# per layer range). name -> (mask of layers 1..l_f, mask of the interaction layers, whether the
# document rows are updated in the interaction layers).
#   cross-encoder  the unmasked model MICE starts from (every layer full; nothing precomputable)
#   late-full      PreTTR-style late fusion: documents precomputed up to l_f, then full attention
#                  with documents updated (their states become query-dependent: every interaction
#                  layer runs over all q + d tokens)
#   mice           MICE: documents precomputed up to l_f and frozen; the interaction layers update
#                  only the query rows, which attend to the query and to the frozen document
#   mice-no-qq     ablation of mice without query self-attention in the interaction layers (the
#                  card: removing it collapses quality)
MICE_CONFIGURATIONS: dict[str, tuple[str, str, bool]] = {
    "cross-encoder": ("full", "full", True),
    "late-full": ("block_diagonal", "full", True),
    "mice": ("block_diagonal", "query_to_doc", False),
    "mice-no-qq": ("block_diagonal", "query_to_doc_no_qq", False),
}
