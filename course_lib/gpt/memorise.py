"""How much of a sample is copied from the training text: the longest common substring."""

from __future__ import annotations

__all__ = ["longest_copied_substring"]


def longest_copied_substring(sample: str, text: str) -> tuple[int, str]:
    """The longest substring of `sample` that occurs somewhere in `text` -> (length, the substring).

    A sliding window over the sample: it grows while sample[i:j] is found in
    text and slides its start otherwise, so it makes O(len(sample)) searches
    (Python's `in`, fast on a few hundred thousand characters).
    """
    if not isinstance(sample, str) or not isinstance(text, str):
        raise TypeError(f"sample and text must be str, got {type(sample).__name__} and {type(text).__name__}")
    best_i, best = 0, 0
    i, j = 0, 0
    n = len(sample)
    while j < n:
        # sample[i:j] is in text (the empty string always is); try one character more
        if sample[i:j + 1] in text:
            j += 1
            if j - i > best:
                best_i, best = i, j - i
        elif i < j:
            i += 1
        else:
            i, j = i + 1, j + 1
    return best, sample[best_i:best_i + best]
