"""Streaming ColBERTv2 / PLAID index build: two passes, never all float token vectors at once.

Pass 1 (codec): encode a seeded sample of min(1 + 16 sqrt(120 N), N) documents; shuffle their
token vectors and hold out min(5%, 50k); K = 2^floor(log2(16 sqrt(N * mean sampled doclen)))
clamped to the training vectors; spherical k-means (`jaxir.ops.kmeans`, 4 iterations) -> fp16
unit centroids; bucket cutoffs/weights = quantiles of the held-out residuals v - C_code.
Pass 2 (compress): sampled documents reuse their pass-1 vectors; the others are encoded batch
by batch. Each batch is compressed with `jaxir.ops.residual.compress` on the JAX default device,
where the encoder ran (token rows padded to a power-of-two bucket, so few shapes compile), handed
to `PlaidIndexBuilder.add_compressed` (codes + packed residuals) and dropped;
`IndexOptions(device_compress=False)` compresses with the NumPy codec instead (same bytes). With
`keep_fp16`, an fp16 copy of the vectors (same token order) is spooled to a temporary file and
stored as `tokens_fp16`, the uncompressed reference. Documents enter the index in encoding
(length-sorted) order; `doc_ids` maps index rows back to corpus ids.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Iterable, Sequence

import jax
import numpy as np

from jaxir.index import codec as np_codec
from jaxir.index.plaid import METHOD, PlaidIndex, num_sample_docs
from jaxir.index.plaid_builder import PlaidIndexBuilder
from jaxir.index.plaid_update import FP16_ARRAY
from jaxir.index.store import save_index
from jaxir.ops import residual
from jaxir.ops.kmeans import kmeans, num_centroids

MIN_ROW_BUCKET = 256  # smallest padded token count of a device-compressed batch


@dataclasses.dataclass(frozen=True)
class IndexOptions:
    # Bits per residual dimension: 1, 2 or 4.
    nbits: int = 2
    # Lloyd iterations of the centroid k-means (ColBERTv2: 4).
    kmeans_iters: int = 4
    # Seeds the document sample, the held-out split and the k-means start.
    seed: int = 0
    # Held-out share of the sampled vectors for bucket fitting, and its cap.
    heldout_frac: float = 0.05
    max_heldout: int = 50_000
    # k-means trains on at most this many vectors per centroid (faiss's default, which ColBERTv2's
    # k-means inherits); below 16M token vectors the card's sample is smaller than that anyway.
    kmeans_max_points_per_centroid: int = 256
    # Also store the uncompressed vectors in fp16 (for exact reference search).
    keep_fp16: bool = False
    # Compress on the JAX default device (where the encoder ran) with `jaxir.ops.residual`;
    # False: with the NumPy codec on the host. Both write the same bytes.
    device_compress: bool = True
    # Documents tokenised at a time in pass 2 (bounds the token-id lists held in memory).
    chunk_docs: int = 65_536
    # Show progress bars.
    progress: bool = True


@dataclasses.dataclass(frozen=True)
class BuildReport:
    path: Path
    num_docs: int
    num_tokens: int
    num_centroids: int
    sample_docs: int
    # Stored bytes of the whole index (codes, residuals, IVF, centroids, doc ids) per token.
    bytes_per_token: float
    # Nominal code + residual bytes per vector: dim * nbits / 8 + 4.
    bytes_per_vector: int
    seconds: float


def sample_doc_indices(n_docs: int, seed: int) -> np.ndarray:
    """Sorted indices of the min(1 + 16 sqrt(120 N), N) documents that fit the codec."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_docs, size=num_sample_docs(n_docs), replace=False))


def fit_codec(sample: np.ndarray, *, n_embeddings_est: int, nbits: int, iters: int = 4,
              seed: int = 0, heldout_frac: float = 0.05, max_heldout: int = 50_000,
              max_points_per_centroid: int = 256, consume: bool = False) -> np_codec.ResidualCodec:
    """Centroids (k-means on the sample minus a held-out part) + buckets (held-out residuals).

    sample: [M, dim] unit token vectors, M >= 2. Returns a codec with fp16 centroids [K, dim].
    The k-means trains on at most max_points_per_centroid * K of the shuffled vectors, as
    ColBERTv2's faiss k-means does by default (it subsamples to 256 per centroid).
    consume: shuffle `sample` in place rather than a copy (the same rows come out), for callers
    that own it: at 16M token vectors the sample is 4.9 GB, and one copy fewer is what fits.
    """
    sample = np.asarray(sample, np.float32)
    if sample.ndim != 2 or len(sample) < 2:
        raise ValueError(f"fit_codec needs a [M >= 2, dim] sample of token vectors, got {sample.shape}")
    np_codec.check_nbits(nbits, sample.shape[1])
    rng = np.random.default_rng(seed)
    # permutation(M) shuffles arange(M) with the draws shuffle() makes on the rows: same order.
    shuffled = sample if consume else sample[rng.permutation(len(sample))]
    if consume:
        rng.shuffle(shuffled)
    n_held = max(1, min(int(heldout_frac * len(sample)), max_heldout))
    held = shuffled[:n_held]
    k = min(num_centroids(max(n_embeddings_est, 1)), len(sample) - n_held)
    train = shuffled[n_held:n_held + max(k, max_points_per_centroid * k)]
    centroids = np.asarray(kmeans(train, k, iters=iters, seed=seed, spherical=True))
    centroids = np_codec.normalize(centroids).astype(np.float16)  # stored (and used) as fp16
    c32 = centroids.astype(np.float32)
    residuals = held - c32[np_codec.assign_codes(held, c32)]
    cutoffs, weights = np_codec.fit_buckets(residuals, nbits=nbits)
    return np_codec.ResidualCodec(centroids, cutoffs, weights, nbits)


class Fp16Spool:
    """Appends [n, dim] vectors as fp16 to a temporary file; `array()` maps them back [T, dim]."""

    def __init__(self, dim: int, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".colbert-fp16-", dir=folder)
        self.file, self.path, self.dim, self.rows = os.fdopen(fd, "wb"), Path(name), dim, 0

    def append(self, vectors: Sequence[np.ndarray]) -> None:
        for v in vectors:
            self.file.write(np.ascontiguousarray(v, np.float16).tobytes())
            self.rows += len(v)

    def array(self) -> np.ndarray:
        self.file.close()
        if self.rows == 0:
            return np.zeros((0, self.dim), np.float16)
        return np.memmap(self.path, np.float16, mode="r", shape=(self.rows, self.dim))

    def remove(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


class DeviceCompressor:
    """`jaxir.ops.residual.compress` with one codec's centroids and cutoffs on the JAX device.

    A batch's T token rows are padded to max(256, 2^ceil(log2 T)) rows and the result is cut back
    to T on the host, so batches of any size reuse a few compiled shapes.
    """

    def __init__(self, codec: np_codec.ResidualCodec):
        self.codec = codec
        self._centroids, self._cutoffs = jax.device_put((codec.centroids, codec.cutoffs))

    def __call__(self, docs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """[n_tok_i, dim] arrays -> (codes [T] int32, packed [T, P] uint8, doclens [n] int32)."""
        dim, nbits = self.codec.dim, self.codec.nbits
        for i, d in enumerate(docs):
            if np.ndim(d) != 2 or np.shape(d)[1] != dim:
                raise ValueError(f"doc {i} of the batch: embeddings must be [n_tok, {dim}], "
                                 f"got {np.shape(d)}")
        lens = np.array([len(d) for d in docs], np.int32)
        n = int(lens.sum())
        if n == 0:
            return np.zeros(0, np.int32), np.zeros((0, dim * nbits // 8), np.uint8), lens
        padded = np.zeros((max(MIN_ROW_BUCKET, 1 << (n - 1).bit_length()), dim), np.float32)
        np.concatenate(docs, out=padded[:n])
        codes, packed = residual.compress(padded, self._centroids, self._cutoffs, nbits=nbits)
        return np.asarray(codes)[:n], np.asarray(packed)[:n], lens


def compress_stream(codec: np_codec.ResidualCodec, batches: Iterable[tuple[Sequence[str], list]],
                    *, spool: Fp16Spool | None = None, on_device: bool = False) -> PlaidIndex:
    """Pass 2 core: (doc ids, [n_tok_i, dim] float arrays) batches -> PlaidIndex.

    Each batch is compressed (and spooled) before the next is requested; no float batch is kept.
    on_device: compress with `DeviceCompressor` (JAX) instead of the NumPy codec (same bytes).
    """
    builder = PlaidIndexBuilder(codec)
    device = DeviceCompressor(codec) if on_device else None
    for ids, docs in batches:
        if device is None:
            builder.add(docs, ids)
        else:
            builder.add_compressed(*device(docs), ids)
        if spool is not None:
            spool.append(docs)
        del ids, docs  # drop our references before the generator makes the next batch
    return builder.finish()


def _encoded_batches(model, params, doc_ids, texts, chunk_docs: int, progress: bool):
    """Yield (ids, embeddings) per encoder batch, tokenising `chunk_docs` documents at a time."""
    for start in range(0, len(texts), chunk_docs):
        chunk = list(texts[start:start + chunk_docs])
        desc = f"encode documents {start}-{start + len(chunk)} of {len(texts)}"
        for idx, embs in model.iter_doc_embeddings(params, chunk, progress=progress, desc=desc):
            yield [str(doc_ids[start + i]) for i in idx], embs


def _pass2_batches(model, params, doc_ids, texts, picks, sample: list, options: IndexOptions):
    """Sampled docs reuse their pass-1 vectors (freed as they go); only the rest is encoded.

    On small corpora the sample is the whole corpus, so this halves the build's encoder work.
    """
    step = model.config.batch_size
    for start in range(0, len(picks), step):
        ids = [str(doc_ids[i]) for i in picks[start:start + step]]
        embs = sample[start:start + step]
        sample[start:start + step] = [None] * len(embs)  # release as soon as it is compressed
        yield ids, embs
    rest = np.setdiff1d(np.arange(len(texts)), picks)
    if len(rest):
        yield from _encoded_batches(model, params, [doc_ids[i] for i in rest],
                                    [texts[i] for i in rest], options.chunk_docs, options.progress)


def build_colbert_index(model, params, doc_ids: Sequence[str], texts: Sequence[str],
                        out: str | Path, options: IndexOptions = IndexOptions(), *,
                        meta: dict | None = None) -> BuildReport:
    """Encode `texts` with a `ColBERTModel` and write a PLAID index folder at `out`."""
    if len(doc_ids) != len(texts):
        raise ValueError(f"{len(doc_ids)} doc ids for {len(texts)} texts")
    if len(texts) == 0:
        raise ValueError("cannot index an empty corpus")
    t0, out = time.perf_counter(), Path(out)
    picks = sample_doc_indices(len(texts), options.seed)
    sample = model.encode_doc_texts(params, [texts[i] for i in picks], progress=options.progress)
    n_sample_tokens = sum(len(s) for s in sample)
    codec = fit_codec(np.concatenate(sample), nbits=options.nbits, iters=options.kmeans_iters,
                      n_embeddings_est=int(len(texts) * n_sample_tokens / len(picks)),
                      seed=options.seed, heldout_frac=options.heldout_frac,
                      max_heldout=options.max_heldout, consume=True,
                      max_points_per_centroid=options.kmeans_max_points_per_centroid)
    spool = Fp16Spool(codec.dim, out.parent) if options.keep_fp16 else None
    try:
        index = compress_stream(codec, _pass2_batches(model, params, doc_ids, texts, picks, sample,
                                                      options), spool=spool,
                                on_device=options.device_compress)
        info = {"colbert": dataclasses.asdict(model.config), "sample_docs": len(picks),
                "bytes_per_token": index.nbytes / max(index.num_tokens, 1), **(meta or {})}
        _save(index, out, model.fingerprint(params), info, spool)
    finally:
        if spool is not None:
            spool.remove()
    return BuildReport(out, index.num_docs, index.num_tokens, len(codec.centroids), len(picks),
                       info["bytes_per_token"], codec.bytes_per_vector, time.perf_counter() - t0)


def _save(index: PlaidIndex, out: Path, fingerprint: str, meta: dict, spool) -> None:
    if spool is None:
        index.save(out, model_fingerprint=fingerprint, meta=meta)
        return
    # Same manifest as PlaidIndex.save, plus the fp16 reference array.
    save_index(out, {**index.to_arrays(), FP16_ARRAY: spool.array()}, method=METHOD,
               model_fingerprint=fingerprint, meta={**meta, **index.info()})


def recompress_index(src: str | Path, out: str | Path, options: IndexOptions) -> BuildReport:
    """Re-fit the codec at `options.nbits` from an index's fp16 copy and write a new index.

    No encoder runs: the source must have been built with `keep_fp16`. The codec sample follows
    the same rule as a fresh build, and documents stream through the builder one batch at a time.
    """
    from jaxir.index.store import load_index

    t0, out = time.perf_counter(), Path(out)
    stored = load_index(src, method=METHOD, verify=False)
    if FP16_ARRAY not in stored.arrays:
        raise ValueError(f"{src} has no {FP16_ARRAY} copy; build it with keep_fp16 (--uncompressed)")
    tokens, doclens = stored.arrays[FP16_ARRAY], np.asarray(stored.arrays["doclens"], np.int64)
    doc_ids, starts = stored.arrays["doc_ids"], np.concatenate([[0], np.cumsum(doclens)])
    doc = lambda i: np.asarray(tokens[starts[i]:starts[i + 1]], np.float32)  # noqa: E731
    picks = sample_doc_indices(len(doclens), options.seed)
    sample = np.concatenate([doc(i) for i in picks])
    codec = fit_codec(sample, nbits=options.nbits, iters=options.kmeans_iters,
                      n_embeddings_est=int(starts[-1]), seed=options.seed,
                      heldout_frac=options.heldout_frac, max_heldout=options.max_heldout,
                      consume=True, max_points_per_centroid=options.kmeans_max_points_per_centroid)
    del sample
    batches = ((doc_ids[s:s + 256].tolist(), [doc(i) for i in range(s, min(s + 256, len(doclens)))])
               for s in range(0, len(doclens), 256))
    index = compress_stream(codec, batches, on_device=options.device_compress)
    index.deleted = stored.arrays.get("deleted")  # the same rows, so the same hidden ones
    info = {**{k: v for k, v in stored.meta.items() if k != "num_live"}, "nbits": options.nbits,
            "recompressed_from": str(src),
            "bytes_per_token": index.nbytes / max(index.num_tokens, 1)}
    index.save(out, model_fingerprint=stored.manifest["model_fingerprint"], meta=info)
    return BuildReport(out, index.num_docs, index.num_tokens, len(codec.centroids), len(picks),
                       info["bytes_per_token"], codec.bytes_per_vector, time.perf_counter() - t0)
