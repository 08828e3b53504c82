"""Candidate search: the nearest neighbours of every picture under its two descriptors
(`describe`), from an exact, an HNSW or a compressed IVF-PQ faiss index chosen by the
number of pictures (`NearDuplicateSettings.exact_index_limit`, `compressed_index_limit`),
kept when the descriptors agree enough to be worth verifying on pixels
(`winnow.audit.neardup.verify.verify_pairs`)."""

from __future__ import annotations

import numpy as np

from winnow.audit.neardup.search import Items, NearDuplicateSettings

MIN_PER_CENTROID = 39  # training points faiss asks for per centroid
COMPRESSED_TRAINING = 40  # training descriptors per inverted list
COMPRESSED_PROBES = 16  # inverted lists searched per query
AGREEMENT_CHUNK = 65_536  # candidate pairs whose descriptors are compared at a time


def compressed_index(base: np.ndarray):
    """faiss's IVF-PQ over `base` (float32, contiguous), trained on a sample of it:
    sqrt-scaled inverted lists (4·√n, searched `COMPRESSED_PROBES` at a time) over
    product-quantised codes of about 4 numbers per byte (the divisor of the dimension
    nearest a quarter of it): 108 bytes for a 432-number descriptor instead of 1,728, the
    graph's links not needed. Lists and code bits shrink when there are too few
    descriptors to train them (faiss's 39 per centroid)."""
    import faiss

    items, dimensions = base.shape
    lists = max(1, min(int(4 * np.sqrt(items)), items // MIN_PER_CENTROID))
    divisors = [m for m in range(1, dimensions + 1) if dimensions % m == 0]
    codes = min(divisors, key=lambda m: abs(m - dimensions / 4))
    sample = np.random.default_rng(0).choice(
        items, min(items, COMPRESSED_TRAINING * lists), replace=False
    )
    bits = int(min(8, max(1, np.floor(np.log2(max(len(sample) / MIN_PER_CENTROID, 2))))))
    # the index keeps its quantiser referenced (faiss's Python wrapper does)
    quantiser = faiss.IndexFlatIP(dimensions)
    index = faiss.IndexIVFPQ(quantiser, dimensions, lists, codes, bits, faiss.METRIC_INNER_PRODUCT)
    index.nprobe = COMPRESSED_PROBES
    index.train(base[np.sort(sample)])
    return index


def _neighbours(
    base: np.ndarray, queries: np.ndarray, k: int, limit: int, compressed_limit: int
) -> np.ndarray:
    import faiss

    k = min(k, len(base))
    base = np.ascontiguousarray(base, dtype=np.float32)
    if len(base) <= limit:
        index = faiss.IndexFlatIP(base.shape[1])
    elif len(base) <= compressed_limit:
        index = faiss.IndexHNSWFlat(base.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = max(64, 2 * k)
    else:
        index = compressed_index(base)
    index.add(base)
    _, found = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return found


def candidate_pairs(
    base: Items, queries: Items | None, settings: NearDuplicateSettings
) -> np.ndarray:
    """(query, base) index pairs from nearest neighbours under both descriptors.

    With `queries` None, the search is within `base` and each pair appears once (i < j).
    """
    same = queries is None
    queries = base if queries is None else queries
    # one k for both searches and for the query ids: a folder smaller than the neighbour
    # count searches all of it
    k = min(settings.neighbours + (1 if same else 0), len(base.coarse))
    if k == 0 or not len(queries.coarse):
        return np.empty((0, 2), dtype=np.int64)
    found = [
        _neighbours(
            descriptor,
            query,
            k,
            settings.exact_index_limit,
            settings.compressed_index_limit,
        )
        for descriptor, query in ((base.coarse, queries.coarse), (base.detail, queries.detail))
    ]
    query_ids = np.repeat(np.arange(len(queries.coarse)), k)
    pairs = np.concatenate([np.stack([query_ids, f.ravel()], axis=1) for f in found])
    pairs = pairs[pairs[:, 1] >= 0]
    if same:
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        pairs = np.sort(pairs, axis=1)
    if not len(pairs):
        return pairs.reshape(0, 2)
    pairs = np.unique(pairs, axis=0)
    agreement = np.empty(len(pairs), dtype=np.float32)
    for start in range(0, len(pairs), AGREEMENT_CHUNK):  # bounded memory at any size
        chunk = pairs[start : start + AGREEMENT_CHUNK]
        agreement[start : start + len(chunk)] = np.maximum(
            np.einsum("ij,ij->i", queries.coarse[chunk[:, 0]], base.coarse[chunk[:, 1]]),
            np.einsum("ij,ij->i", queries.detail[chunk[:, 0]], base.detail[chunk[:, 1]]),
        )
    return pairs[agreement >= settings.min_descriptor_similarity]
