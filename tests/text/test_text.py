"""Tokenisation, assembly into length buckets, truncation flags."""
import numpy as np
import pytest

from jaxir.errors import EmptyInputError
from jaxir.text import assemble, assemble_windows, bucket_length, length_sorted_batches, load_tokenizer, tokenize


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def test_bucket_length_picks_smallest_fitting_bucket():
    assert bucket_length(1, 256) == 32
    assert bucket_length(33, 256) == 64
    assert bucket_length(181, 256) == 256
    assert bucket_length(100, 100) == 100  # max_length itself is a bucket
    assert bucket_length(999, 300) == 300


def test_assemble_single_segment_layout_and_truncation(tok):
    ids = tokenize(tok, ["hello world", "a " * 300])
    b = assemble(tok, ids, max_length=64, prefix=[1], pad_rows_to=4)
    assert b.input_ids.shape == (4, 64) and b.input_ids.dtype == np.int32
    row = b.input_ids[0, : b.lengths[0]].tolist()
    assert row == [tok.cls_token_id, 1, *ids[0], tok.sep_token_id]
    assert b.truncated.tolist() == [False, True, False, False]
    assert b.lengths[1] == 64 and b.input_ids[1, 63] == tok.sep_token_id
    assert b.attention_mask[2:].sum() == 0  # padded rows
    assert b.attention_mask[0].sum() == len(row)


def test_assemble_pairs_sets_segments_and_truncates_second_segment_first(tok):
    q, d = tokenize(tok, ["short query"]), tokenize(tok, ["word " * 100])
    b = assemble(tok, q, pairs=d, max_length=32)
    n = b.lengths[0]
    assert n == 32 and b.truncated[0]
    assert b.input_ids[0, : len(q[0]) + 2].tolist() == [tok.cls_token_id, *q[0], tok.sep_token_id]
    assert b.token_type_ids[0, : len(q[0]) + 2].sum() == 0
    assert b.token_type_ids[0, len(q[0]) + 2 : n].min() == 1


def test_mask_padding_and_fixed_length(tok):
    ids = tokenize(tok, ["a query"])
    b = assemble(tok, ids, max_length=32, pad_id=tok.mask_token_id, fixed_length=True)
    assert b.input_ids.shape == (1, 32)
    assert (b.input_ids[0, b.lengths[0]:] == tok.mask_token_id).all()


def test_empty_text_is_an_error_naming_position(tok):
    with pytest.raises(EmptyInputError, match="position 1"):
        tokenize(tok, ["fine", "   "])


def test_length_sorted_batches_cover_all_rows_longest_first():
    lengths = [3, 10, 1, 7, 7]
    groups = length_sorted_batches(lengths, 2)
    flat = np.concatenate(groups)
    assert sorted(flat.tolist()) == list(range(5))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)


def test_assemble_windows_cuts_long_texts_and_masks_unused_windows(tok):
    long_ids = list(range(1000, 1025))  # 25 tokens: windows of 8 -> 4 windows, 3 kept
    b = assemble_windows(tok, [long_ids, [2000, 2001]], max_length=10, max_windows=3, pad_rows_to=3)
    assert b.input_ids.shape == (3, 3, 10) and b.input_ids.dtype == np.int32
    cls, sep = tok.cls_token_id, tok.sep_token_id
    for j in range(3):  # each window is [CLS] next 8 tokens [SEP]
        assert b.input_ids[0, j].tolist() == [cls, *long_ids[8 * j: 8 * j + 8], sep]
    assert b.truncated.tolist() == [True, False, False]  # token 1024 did not fit
    assert b.input_ids[1, 0, :4].tolist() == [cls, 2000, 2001, sep]
    assert b.attention_mask[1, 1:].sum() == 0 and b.attention_mask[2].sum() == 0  # unused windows
    assert b.lengths.tolist() == [30, 4, 0]
    one = assemble_windows(tok, [[5, 6]], max_length=256, max_windows=4)
    assert one.input_ids.shape == (1, 1, 32)  # a single window is length-bucketed
