"""How much of a sample is copied from the training text: the longest common substring."""

from __future__ import annotations

import bisect
import functools

import numpy as np

__all__ = ["longest_copied_substring"]


def longest_copied_substring(sample: str, text: str) -> tuple[int, str]:
    """The longest substring of `sample` that occurs somewhere in `text` -> (length, the substring);
    the leftmost one in `sample` when several are as long.

    For each start position of the sample, the longest piece starting there that occurs in the text
    is found by a binary search in the text's suffix array (every suffix of the text, sorted): the
    suffix that shares the longest beginning with the piece sits next to where the piece would be
    inserted. The suffix array is built once per text (numpy, prefix doubling; about a second for
    notebook 07's 420k training characters) and kept for the next calls with the same text, so each
    sample then costs len(sample) binary searches instead of the 2 len(sample) scans of the whole text
    that Python's `in` would make.
    """
    if not isinstance(sample, str) or not isinstance(text, str):
        raise TypeError(f"sample and text must be str, got {type(sample).__name__} and {type(text).__name__}")
    if not sample or not text:
        return 0, ""
    suffixes = _suffix_array(text)
    best_i, best = 0, 0
    for i in range(len(sample)):
        if len(sample) - i <= best:  # nothing longer can start here or later
            break
        piece = sample[i:]
        n = len(piece)
        at = bisect.bisect_left(suffixes, piece, key=lambda p: text[p:p + n])
        for neighbour in (at - 1, at):
            if 0 <= neighbour < len(suffixes):
                length = _common_prefix(piece, text, suffixes[neighbour])
                if length > best:
                    best_i, best = i, length
    return best, sample[best_i:best_i + best]


def _common_prefix(piece: str, text: str, start: int) -> int:
    """How many first characters of `piece` text[start:] shares (a binary search over slice equality)."""
    low, high = 0, min(len(piece), len(text) - start)
    while low < high:
        mid = (low + high + 1) // 2
        if text[start:start + mid] == piece[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


@functools.lru_cache(maxsize=2)
def _suffix_array(text: str) -> list[int]:
    """Start positions of text's suffixes in sorted order (by code point), by prefix doubling: after the
    round with step k, suffixes are ranked by their first 2k characters."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    n = len(codes)
    _, rank = np.unique(codes, return_inverse=True)
    rank = rank.astype(np.int64).reshape(-1)
    order = np.argsort(rank, kind="stable")
    k = 1
    while rank.max() < n - 1:
        second = np.full(n, -1, dtype=np.int64)  # past the end sorts first, as a shorter string does
        second[: n - k] = rank[k:]
        key = rank * (n + 1) + (second + 1)
        order = np.argsort(key, kind="stable")
        ordered = key[order]
        new = np.empty(n, dtype=np.int64)
        new[order] = np.concatenate([[0], np.cumsum(ordered[1:] != ordered[:-1])])
        rank = new
        k *= 2
    return order.tolist()
