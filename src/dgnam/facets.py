"""Multifaceted feature visualization (Nguyen, Yosinski & Clune 2016): one synthetic image per *facet* of a unit.

A unit rarely responds to one kind of image only (a "sandal" logit fires for flat sandals and for high-heeled ones),
and a single activation-maximization optimum mixes or hides the kinds. The paper's algorithm, as implemented here:

1. Take the real images that excite the unit most (``top_fraction`` of the data set; the paper used a class's
   training images, ~1,300 per ImageNet class).
2. Embed them in a late layer's features (the paper: fc7; here ``embed_layer``, by default the deepest
   one-dimensional layer before the output, ``fc6`` for ``fmnist-cnn``), reduce with PCA to 50 dimensions, then
   (``reduce="tsne"``, the paper's choice) t-SNE to 2-D, and cluster with k-means into ``k`` facets.
3. Synthesize one image per facet starting from the facet's centre: the mean of the ``center_images`` (paper: 15)
   real images nearest the cluster centroid.

   * pixel method (the paper's): start from their mean *image* and optimize pixels with the **centre-biased
     regularization**: the paper first produces a blurry object at the centre, then sharpens only the centre. Its
     exact schedule (sizes and blur radii at 227 px) is not reproduced here; what runs is :class:`CenterBias`: three
     equal stages, (1) the whole image with a Gaussian blur of sigma 1 px every 4 steps, (2) only the centre 75% of
     the side with sigma 0.5 px, (3) only the centre 50%, unblurred. "Only the centre" means the gradient outside
     that square is zero, so the periphery keeps what the earlier, blurrier stages made of it.
   * DGN-AM (our extension): start from the mean *code* of those images (the encoder's codes, the layer the
     generator inverts) and run DGN-AM from there with its usual prior; no extra regularization is needed because the
     generator already keeps one object centred.

Optionally (``facet_weight > 0``, off by default) the objective also gets the facet term of *faceted* feature
visualization (Goh et al. 2021; :class:`FacetDirection`), which pulls each image towards its facet's centre.

Fidelity is measured in the PCA features (the clustering's input space; t-SNE has no out-of-sample map): a facet's
synthetic image is faithful when its features lie closer to its own facet's centre (the mean PCA feature of the
facet's real images) than to any other facet's.

On the embedded models (``benchmarks/facets.py``) the facets are not kept: DGN-AM's published lr of 8 (and also 2
or 0.5) drives every facet of a class logit to the same few optima within the first steps, so about 1 facet in 10
ends nearest its own centre. The generator bounds what any code-space method can keep: each facet's mean code is
nearest its own centre every time, but its image G(mean code) only for about a third of the facets, and real images
passed through the generator, G(E(x)), only about a quarter of the time (the real images themselves: 0.85), because
the generator's fc6 reconstruction error is as large as the distance between the facets of one class. Even codes
fitted to the facet centres alone (no unit term) give images nearest their own centre about three times in four in
fc6, and one time in four in a held-out network's features.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from torch import nn

from .atomic import folder_lock, write_json_atomic
from .defaults import MAX_FACET_SEED
from .display import compact_repr
from .errors import DgnamError, noting_interrupt
from .generators import Generator, PixelGenerator
from .imagespace import ImageSpace, convert, to_uint8
from .modules import as_device, frozen, unwrapped
from .optimize import AMConfig
from .priors import Prior, StepState, gaussian_blur
from .units import (LayerReader, Unit, default_embed_layer, encode, parse_units, require_plain_units, resolve_units,
                    unit_responses)

if TYPE_CHECKING:
    from PIL import Image

#: The paper's settings: PCA to 50 dimensions before t-SNE to 2-D, k = 10 facets, the 15 images nearest each
#: centroid averaged into the starting point.
FACET_PCA_DIM = 50
FACET_K = 10
FACET_CENTER_IMAGES = 15
#: Weight of the facet term of *faceted* feature visualization (:class:`FacetDirection`, after Goh et al. 2021).
#: 0, the default, is the paper's algorithm above, whose only link to the facet is the starting point.
FACET_WEIGHT = 0.0
#: Top images clustered per facet, at the least (ours): with fewer, k-means makes facets of single images.
MIN_IMAGES_PER_FACET = 2
#: How the PCA features are reduced before k-means: ``tsne`` (the paper's), ``umap`` (the issue's alternative "where
#: installed": ``pip install 'dgnam[umap]'``) or ``pca`` (k-means on the PCA features themselves).
REDUCTIONS = ("tsne", "umap", "pca")
#: UMAP's neighbourhood size and minimum distance: umap-learn's defaults (McInnes et al. 2018).
UMAP_NEIGHBORS = 15
UMAP_MIN_DIST = 0.1


#: Fewest points t-SNE and UMAP embed: with fewer, the PCA features are clustered as they are (and embedding.png
#: says PCA).
MIN_POINTS_TO_EMBED = 4


@dataclass
class FacetConfig:
    """How facets are found. ``top_fraction`` of the given images (at least ``MIN_IMAGES_PER_FACET * k``, else an
    error) are clustered; ``reduce`` is ``"tsne"`` (PCA then t-SNE, the paper), ``"umap"`` (PCA then UMAP, with
    umap-learn installed) or ``"pca"`` (k-means on the PCA features directly); ``top_real`` real images per facet are shown beside its synthetic image."""

    k: int = FACET_K
    top_fraction: float = 0.02
    embed_layer: str | None = None
    pca_dim: int = FACET_PCA_DIM
    reduce: str = "tsne"
    perplexity: float = 30.0
    center_images: int = FACET_CENTER_IMAGES
    top_real: int = 5
    seed: int = 0

    def validate(self) -> None:
        if self.k < 1:
            raise DgnamError(f"--k {self.k}: ask for at least one facet")
        if not 0 <= self.seed <= MAX_FACET_SEED:
            raise DgnamError(f"--seed {self.seed}: give a seed in 0..{MAX_FACET_SEED} (t-SNE and k-means take no other)")
        if not 0 < self.top_fraction <= 1:
            raise DgnamError(f"--top-fraction {self.top_fraction}: give a fraction in (0, 1]")
        check_reduction(self.reduce)  # before the data are read and embedded
        if self.center_images < 1:
            raise DgnamError(f"--center-images {self.center_images}: average at least 1 real image into each start")
        if self.pca_dim < 1 or self.top_real < 0:
            raise DgnamError(f"pca_dim {self.pca_dim}, top_real {self.top_real}: give pca_dim >= 1 and top_real >= 0")


# --------------------------------------------------------------------------------------------------------------------
# Clustering


@dataclass(repr=False)
class Clustering:
    """``labels`` (N,) facet of each image; ``features`` (N, P) the PCA features clustered (t-SNE's input);
    ``embedding`` (N, 2 or P) what k-means saw; ``centers`` (k, P) each facet's mean PCA feature. ``project`` maps new
    raw features into the PCA space."""

    labels: np.ndarray
    features: np.ndarray
    embedding: np.ndarray
    centers: np.ndarray
    mean: np.ndarray
    components: np.ndarray

    __repr__ = compact_repr

    def project(self, raw: np.ndarray | torch.Tensor) -> np.ndarray:
        raw = raw.detach().cpu().numpy() if isinstance(raw, torch.Tensor) else np.asarray(raw)
        return (raw.reshape(len(raw), -1).astype(np.float64) - self.mean) @ self.components.T

    def nearest_center(self, raw: np.ndarray | torch.Tensor) -> np.ndarray:
        """Index of the nearest facet centre (in the PCA features) for each row of raw features."""
        p = self.project(raw)
        return np.linalg.norm(p[:, None, :] - self.centers[None], axis=2).argmin(1)


def check_reduction(reduce: str) -> None:
    """A one-line error for an unknown reduction, or for ``umap`` without umap-learn installed."""
    import importlib.util

    if reduce not in REDUCTIONS:
        raise DgnamError(f"unknown reduction {reduce!r}: use {', '.join(REDUCTIONS)}")
    if reduce == "umap" and importlib.util.find_spec("umap") is None:
        raise DgnamError("reduce umap needs umap-learn: pip install 'dgnam[umap]' (or use tsne, the paper's)")


def cluster_features(features: np.ndarray | torch.Tensor, k: int, reduce: str = "tsne", pca_dim: int = FACET_PCA_DIM,
                     perplexity: float = 30.0, seed: int = 0) -> Clustering:
    """PCA (to ``pca_dim``, at most the rank), then t-SNE (``reduce="tsne"``) or UMAP (``"umap"``) to 2-D, then
    k-means (10 inits)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    x = x.reshape(len(x), -1).astype(np.float64)
    if len(x) < k:
        raise DgnamError(f"{len(x)} images for {k} facets: raise --top-fraction or give more data, or lower --k")
    check_reduction(reduce)
    if not np.isfinite(x).all():
        n = int((~np.isfinite(x)).any(1).sum())
        raise DgnamError(f"the features of {n} of the {len(x)} images are NaN/inf: check the model on these images")
    distinct = len(np.unique(x, axis=0))
    if distinct < k:  # k-means would leave facets empty, and t-SNE of identical points crashes (a segfault)
        raise DgnamError(f"only {distinct} distinct images (by their features) among the {len(x)} top ones for {k} "
                         f"facets: lower --k, or give more varied data")
    dim = max(1, min(pca_dim, x.shape[1], len(x) - 1))
    pca = PCA(n_components=dim, random_state=seed).fit(x)
    feats = pca.transform(x)
    emb = feats
    if reduce == "tsne" and len(x) >= MIN_POINTS_TO_EMBED:
        perp = min(perplexity, max(1.0, (len(x) - 1) / 3))  # t-SNE needs perplexity < N
        emb = TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(feats)
    if reduce == "umap" and len(x) >= MIN_POINTS_TO_EMBED:
        import warnings

        import umap

        with warnings.catch_warnings():  # "n_jobs overridden to 1 by setting random_state": one job is asked for
            warnings.filterwarnings("ignore", message=".*n_jobs.*")
            emb = umap.UMAP(n_components=2, n_neighbors=min(UMAP_NEIGHBORS, len(x) - 1), min_dist=UMAP_MIN_DIST,
                            random_state=seed, n_jobs=1).fit_transform(feats)
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(emb)
    centers = np.stack([feats[labels == j].mean(0) for j in range(k)])
    return Clustering(labels=labels, features=feats, embedding=emb, centers=centers, mean=pca.mean_,
                      components=pca.components_)


# --------------------------------------------------------------------------------------------------------------------
# Data: the images that excite a unit most


# --------------------------------------------------------------------------------------------------------------------
# Centre-biased pixel optimization (the original method's regularization)


def centre_mask(size: tuple[int, int], fraction: float) -> torch.Tensor:
    """(1, 1, H, W) mask, 1 on the centred square region spanning ``fraction`` of each side."""
    H, W = size
    h, w = max(1, round(H * fraction)), max(1, round(W * fraction))
    m = torch.zeros(1, 1, H, W)
    m[..., (H - h) // 2 : (H - h) // 2 + h, (W - w) // 2 : (W - w) // 2 + w] = 1.0
    return m


@dataclass
class CenterBias:
    """Stages of the centre-biased regularization: ``(region, blur_sigma)`` per stage, run for equal shares of the
    steps; ``region`` is the fraction of each side (centred) that is optimized, ``blur_sigma`` the Gaussian blur
    (in pixels, applied inside the region every ``blur_every`` steps). Our reading of the paper's "blurry centred
    object first, then sharpen the centre"; the paper's own 227 px schedule is not reproduced."""

    stages: tuple[tuple[float, float], ...] = ((1.0, 1.0), (0.75, 0.5), (0.5, 0.0))
    blur_every: int = 4

    def stage(self, step: int, steps: int) -> int:
        return min(len(self.stages) - 1, step * len(self.stages) // max(1, steps))


class CenterBiasedPixels(PixelGenerator):
    """Pixels as the code, with updates confined to the current stage's centre region: outside it the image is
    detached, so the gradient there is zero (the forward value is unchanged)."""

    method = "pixel-facets"

    def __init__(self, space: ImageSpace, bias: CenterBias | None = None, init_std: float = 0.1) -> None:
        super().__init__(space, init_std)
        self.bias = bias or CenterBias()
        self.stage = 0
        self.name = "pixels-centre-bias"

    def mask(self, device: torch.device | None = None) -> torch.Tensor:
        return centre_mask(self.space.size, self.bias.stages[self.stage][0]).to(device)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        m = self.mask(code.device)
        return code * m + (code * (1 - m)).detach()


class CenterBiasSchedule(Prior):
    """Advances :class:`CenterBiasedPixels` through its stages and blurs inside the region (an ``after_step`` hook).
    After the last step the stage returns to 0, so the next batch starts at the beginning."""

    def __init__(self, generator: CenterBiasedPixels) -> None:
        self.generator = generator

    def after_step(self, code: torch.Tensor, state: StepState) -> None:
        g = self.generator
        sigma = g.bias.stages[g.stage][1]
        if sigma > 0 and (state.step + 1) % g.bias.blur_every == 0:
            m = g.mask(code.device)
            code.copy_(m * gaussian_blur(code, sigma) + (1 - m) * code)
        g.stage = g.bias.stage((state.step + 1) % state.steps, state.steps)

    def to_dict(self) -> dict:
        return {"prior": "CenterBias", **asdict(self.generator.bias)}


class FacetDirection(Prior):
    """The facet term of *faceted feature visualization* (Goh et al. 2021, "Multimodal Neurons in Artificial Neural
    Networks", Distill): besides the unit's activation, reward batch row j for features (``layer`` of ``model``,
    projected on the clustering's PCA, which is centred on the clustered images' mean) that point towards facet
    ``facets[j]``'s centre: ``weight * cos(P f(x_j), c_j)``, in the unit's own units.

    Why: the paper's algorithm ties an image to its facet only through the start, and activation maximization
    walks away from any start (``benchmarks/facets.py``). Goh et al. take the direction from a linear probe and
    use a dot product; the cosine to the facet's centre needs no probe and keeps one weight meaningful across
    layers. Because it optimizes towards the centres that the nearest-centre fidelity test uses, that test then
    says how well the term was followed, not how faithful the image looks: judge such images in a held-out
    network's features as well (``benchmarks/facets.py`` does)."""

    def __init__(self, model: nn.Module, layer: str, clustering: Clustering, facets: Sequence[int], weight: float,
                 image_space: ImageSpace, target_space: ImageSpace) -> None:
        self.reader = LayerReader(model, [layer])
        self.layer, self.weight = layer, float(weight)
        self.mean = torch.as_tensor(clustering.mean, dtype=torch.float32)
        self.components = torch.as_tensor(clustering.components, dtype=torch.float32)
        self.directions = torch.as_tensor(clustering.centers[list(facets)], dtype=torch.float32)
        self.image_space, self.target_space = image_space, target_space

    def penalty(self, code: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        if len(image) != len(self.directions):
            raise DgnamError(f"the facet term has {len(self.directions)} facet directions for a batch of {len(image)} "
                             f"images: run one batch with one image per facet")
        feats = self.reader(convert(image, self.image_space, self.target_space))[self.layer].flatten(1)
        proj = (feats - self.mean.to(feats)) @ self.components.to(feats).T
        return -self.weight * torch.nn.functional.cosine_similarity(proj, self.directions.to(feats), dim=1)

    def to_dict(self) -> dict:
        return {"prior": "FacetDirection", "layer": self.layer, "weight": self.weight, "facets": len(self.directions)}


# --------------------------------------------------------------------------------------------------------------------
# The algorithm


@dataclass(repr=False)
class FacetSet:
    """The facets of a unit among real images (what :func:`find_facets` returns). ``indices`` are the indices (in
    the given images) of the clustered top images, with their ``activations``; ``members[j]`` facet j's images by
    decreasing activation; ``init_indices[j]`` the ``center_images`` nearest its centroid, averaged into its start;
    ``space`` the model's input space the images were read in (``None``: the model's ``input_space``)."""

    unit: Unit
    embed_layer: str
    clustering: Clustering
    indices: torch.Tensor
    activations: torch.Tensor
    members: list[torch.Tensor]
    init_indices: list[torch.Tensor]
    config: FacetConfig
    space: ImageSpace | None = field(default=None, kw_only=True)

    __repr__ = compact_repr


@dataclass(repr=False)
class Facets(FacetSet):
    """What :func:`facets` returns: the :class:`FacetSet` plus the synthesis: ``run`` (records, images, codes, one
    per facet, as :func:`dgnam.visualize` returns them), the synthetic images' embedding features, ``nearest[j]``
    the facet whose centre facet j's image is nearest to, ``fidelity``, the fraction with ``nearest[j] == j``, and
    the ``facet_weight`` of the facet term (0: none); ``real_images[j]`` facet j's top real images ([0, 1], as
    ``facets.png`` shows them beside its synthetic image: :meth:`grid`). In a notebook it shows itself as its run
    does, under a line with the fidelity."""

    run: object
    synth_features: torch.Tensor
    nearest: list[int]
    fidelity: float
    method: str
    facet_weight: float = FACET_WEIGHT
    real_images: list[torch.Tensor] | None = None

    def grid(self) -> "Image.Image":
        """The figure ``facets.png`` is (`dgnam facets`, ``facets(..., out=)``): one row per facet, its synthetic
        image beside its ``config.top_real`` top real images (``real_images``), each captioned with its activation.
        The synthetic image's caption also says which facet's centre it lies nearest (``own facet``, else ``nearest
        facet J``): fidelity is that, per image, and the figure showed a facet image that had left its facet as if
        it were the facet's."""
        from .images import grid

        if self.real_images is None or self.space is None or getattr(self.run, "images", None) is None:
            raise DgnamError("these Facets hold no images to draw (made by hand, or their run without images): "
                             "facets() returns them with real_images, space and run.images set")
        synth = to_uint8(self.run.images, self.run.space)
        rows, labels, caps = [], [], []
        for j, rec in enumerate(self.run.records):
            shown = self.members[j][: self.config.top_real]
            real = to_uint8(self.space.encode(self.real_images[j]), self.space)
            rows.append([synth[j], *real])
            labels.append(f"facet {j} ({rec['facet_size']} imgs)")
            where = "own facet" if self.nearest[j] == j else f"nearest facet {self.nearest[j]}"
            caps.append([f"{rec['activation']:.2f}\n{where}"]
                        + [f"{float(self.activations[(self.indices == i).nonzero()[0, 0]]):.2f}" for i in shown])
        cols = ["synthetic"] + [f"top real {i + 1}" for i in range(self.config.top_real)]
        return grid(rows, row_labels=labels, col_labels=cols, cell_labels=caps)

    def _repr_html_(self) -> str:
        import html

        head = (f"{self.method}: {len(self.members)} facets of {self.unit.address} among {len(self.indices)} top "
                f"images, in {self.embed_layer}'s features; fidelity {self.fidelity:.2f} (the share of facets whose "
                f"image lies nearest their own centre)")
        return f"<p>{html.escape(head)}</p>" + self.run._repr_html_()


def _zoo_encoder(generator: Generator, model: nn.Module) -> tuple[nn.Module, str] | None:
    """The encoder of a zoo generator (the target itself when it is that encoder). A generator file is named by its
    stem, and `dgnam train generator` names it after its architecture by default (``fmnist-g-fc6``) whatever encoder
    it inverts: its encoder is not the zoo entry's to guess (``None``)."""
    if getattr(generator, "dgnam_source", None):
        return None
    try:
        from .zoo import create_model, get_entry
        from .zoo.registry import is_zoo_model

        entry = get_entry(getattr(generator, "name", ""))
    except DgnamError:
        return None
    if entry.encoder is None or entry.encoder_layer is None:
        return None
    if is_zoo_model(model, entry.encoder):  # (a user's file of the encoder's name has other weights)
        return model, entry.encoder_layer
    return create_model(entry.encoder), entry.encoder_layer


def _check_images(model: nn.Module, images01: torch.Tensor, input_space: ImageSpace | None = None) -> ImageSpace:
    """The model's input space (``input_space``, else the model's own, as :func:`dgnam.visualize` takes it), once the
    real images are checked to be of its size and in [0, 1]."""
    from .run import target_space

    space = target_space(model, input_space)
    if images01.dim() != 4 or tuple(images01.shape[1:]) != space.shape:
        raise DgnamError(f"images have shape {tuple(images01.shape)}, expected (N, {space.channels}, {space.size[0]}, "
                         f"{space.size[1]}) in [0, 1]; load them at the model's input size")
    lo, hi = float(images01.min()), float(images01.max())
    if images01.is_floating_point() and not bool(torch.isfinite(images01).all()):  # NaN passes both comparisons
        n = int((~torch.isfinite(images01.flatten(1))).any(1).sum())
        raise DgnamError(f"{n} of the {len(images01)} images hold NaN or inf: expected floats in [0, 1]; leave them "
                         f"out or fix how they are read")
    if not images01.is_floating_point() or lo < -RANGE_SLACK or hi > 1 + RANGE_SLACK:
        raise DgnamError(f"images range over [{lo:.6g}, {hi:.6g}] ({images01.dtype}), expected floats in [0, 1] (not "
                         f"yet in the model's input space): divide 0..255 images by 255")
    return space


#: How far outside [0, 1] images may stray by float rounding (an antialiased resize overshoots by ~1e-7); a 0..255
#: image or one already normalized is far outside it.
RANGE_SLACK = 1e-3


def _check_configs(config: object = None, am_config: object = None) -> None:
    """``config`` is the clustering's :class:`FacetConfig` and ``am_config`` the optimizer's :class:`AMConfig`
    (what :func:`dgnam.visualize` calls ``config``): an AMConfig given as ``config`` failed with "'AMConfig' object
    has no attribute 'validate'", a FacetConfig as ``am_config`` only after the clustering."""
    if config is not None and not isinstance(config, FacetConfig):
        fix = (": facets takes the optimizer's settings as am_config=AMConfig(...) (visualize's config=), and the "
               "clustering's as config=FacetConfig(...)" if isinstance(config, AMConfig) else "")
        raise DgnamError(f"config is of type {type(config).__name__}, not FacetConfig{fix}")
    if am_config is not None and not isinstance(am_config, AMConfig):
        fix = (": give the clustering's settings as config=, and the optimizer's as am_config=AMConfig(...)"
               if isinstance(am_config, FacetConfig) else ", e.g. AMConfig(steps=100)")
        raise DgnamError(f"am_config is of type {type(am_config).__name__}, not AMConfig{fix}")


def find_facets(model: nn.Module, unit: str | Unit, images01: torch.Tensor, config: FacetConfig | None = None,
                device: str | torch.device | None = None, input_space: ImageSpace | None = None) -> FacetSet:
    """Steps 1-2 of the algorithm: the top images of ``unit`` among ``images01`` (real images in [0, 1] at the
    model's input size), clustered into ``config.k`` facets in ``config.embed_layer``'s features. ``model`` runs in
    eval mode on ``device`` (None: where it is) and comes back as it was given (:func:`dgnam.modules.frozen`).
    ``input_space`` is the image space the model takes, for a model without an ``input_space`` attribute."""
    _check_configs(config)
    device = as_device(device, like=model)
    with frozen(model, device):
        return _find_facets(model, unit, images01, config, device, input_space)


def _find_facets(model: nn.Module, unit: str | Unit, images01: torch.Tensor, config: FacetConfig | None,
                 device: torch.device, input_space: ImageSpace | None = None) -> FacetSet:
    config = config or FacetConfig()
    config.validate()
    space = _check_images(model, images01, input_space)
    x = space.encode(images01)
    parsed = parse_units(unit) if not isinstance(unit, Unit) else [unit]
    if len(parsed) != 1:
        raise DgnamError(f"facets of one unit at a time: {len(parsed)} units given ({', '.join(map(str, parsed))})")
    resolved = resolve_units(model, parsed, x[:1].to(device))
    if len(resolved) != 1:  # LAYER:A-B or LAYER:all
        raise DgnamError(f"facets of one unit at a time: {parsed[0]} is {len(resolved)} units")
    (u,) = resolved
    require_plain_units(resolved, "facets")
    layer = config.embed_layer or default_embed_layer(model, x[:1].to(device))
    acts = unit_responses(model, u, x)
    n_top = int(round(config.top_fraction * len(x)))
    if n_top < MIN_IMAGES_PER_FACET * config.k:  # else the "facets" would be single images, or would not exist
        raise DgnamError(f"the top {config.top_fraction:g} of {len(x)} images is {n_top} images, fewer than the "
                         f"{MIN_IMAGES_PER_FACET * config.k} that {config.k} facets need ({MIN_IMAGES_PER_FACET} "
                         f"each): give more data, a larger --top-fraction or a smaller --k")
    top = acts.argsort(descending=True)[:n_top]
    feats = encode(model, layer, x[top])
    cl = cluster_features(feats, config.k, config.reduce, config.pca_dim, config.perplexity, config.seed)
    members, init_idx = [], []
    for j in range(config.k):
        where = np.flatnonzero(cl.labels == j)
        order = where[np.argsort(-acts[top[where]].numpy(), kind="stable")]
        members.append(top[torch.as_tensor(order)])
        dist = np.linalg.norm(cl.features[where] - cl.centers[j], axis=1)
        near = where[np.argsort(dist, kind="stable")[: config.center_images]]
        init_idx.append(top[torch.as_tensor(near)])
    return FacetSet(unit=u, embed_layer=layer, clustering=cl, indices=top, activations=acts[top], members=members,
                    init_indices=init_idx, config=config, space=space)


def synthesize_facets(
    model: nn.Module,
    found: FacetSet,
    images01: torch.Tensor,
    generator: Generator | None = None,
    *,
    encoder: tuple[nn.Module, str] | None = None,
    steps: int | None = None,
    am_config: AMConfig | None = None,
    priors: Sequence[Prior] | None = None,
    center_bias: CenterBias | None = None,
    facet_weight: float = FACET_WEIGHT,
    device: str | torch.device | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    input_space: ImageSpace | None = None,
) -> Facets:
    """Step 3: one image per facet of ``found`` (from the same ``images01``), starting from the facet's centre.
    See :func:`facets` for the arguments (``input_space`` defaults to the one ``found`` was found in). ``model`` and
    a given encoder come back as they were given."""
    from contextlib import ExitStack

    _check_configs(None, am_config)
    device = as_device(device, like=model)
    with ExitStack() as stack:
        stack.enter_context(folder_lock(out, "facets"))  # a second facets into OUT would delete this one's staging
        stack.enter_context(frozen(model, device))
        if encoder is not None and encoder[0] is not model:
            stack.enter_context(frozen(encoder[0], device))
        return _synthesize_facets(model, found, images01, generator, encoder=encoder, steps=steps,
                                  am_config=am_config, priors=priors, center_bias=center_bias,
                                  facet_weight=facet_weight, device=device, out=out, progress=progress,
                                  input_space=input_space or found.space)


def _synthesize_facets(model: nn.Module, found: FacetSet, images01: torch.Tensor, generator: Generator | None, *,
                       encoder: tuple[nn.Module, str] | None, steps: int | None, am_config: AMConfig | None,
                       priors: Sequence[Prior] | None, center_bias: CenterBias | None, facet_weight: float,
                       device: torch.device, out: str | Path | None, progress: bool,
                       input_space: ImageSpace | None = None) -> Facets:
    from .run import check_fresh_dir, move_in, staging_dir, visualize

    space = _check_images(model, images01, input_space)
    if steps is not None and steps < 0:
        raise DgnamError(f"--steps {steps}: give steps >= 0")
    x = space.encode(images01)
    k = found.config.k
    if generator is None:
        pixels = CenterBiasedPixels(space, center_bias)
        init = torch.stack([x[i].mean(0) for i in found.init_indices])
        gen, method = pixels, "pixel-facets"
        priors = [CenterBiasSchedule(pixels)] + list(priors or [])
        am_config = am_config or pixels.default_config()
    else:
        enc = encoder or _zoo_encoder(generator, model)
        if enc is None:
            raise DgnamError("cannot compute the facets' mean codes: pass encoder=(model, layer), the layer the "
                             "generator inverts")
        enc_model, enc_layer = enc
        enc_model = enc_model.eval().to(device)  # the given encoder is frozen by the caller; a zoo one is ours
        enc_space = getattr(enc_model, "input_space", None) or space  # the encoder reads its own encoding
        init = torch.stack([encode(enc_model, enc_layer, convert(x[i], space, enc_space).to(device)).mean(0)
                            for i in found.init_indices])
        gen, method = generator, "dgn-am-facets"
    if facet_weight < 0:
        raise DgnamError(f"--facet-weight {facet_weight}: give 0 (the paper's method) or a positive weight")
    if facet_weight > 0:
        base = list(gen.default_priors() if priors is None else priors)
        priors = base + [FacetDirection(model, found.embed_layer, found.clustering, range(k), facet_weight, gen.space,
                                        space)]

    staged = None
    if out is not None:  # staged and moved in complete: a killed run never passes for a finished one
        out = check_fresh_dir(Path(out))
        staged = staging_dir(out)
    written = (f"it writes {out} only when complete, and the next facets into it discards what it had" if staged
               is not None else "it keeps nothing of an interrupted call")
    # facets cannot resume: its note replaces visualize's (whose resume=True it does not take)
    with noting_interrupt(lambda: f"facets was interrupted: {written}; call it again to start over", replace=True):
        run = visualize(model, [found.unit] * k, gen, restarts=1, seed=found.config.seed, steps=steps,
                        config=am_config, priors=priors, init=init, input_space=space, device=device, out=staged,
                        progress=progress, method=method, batch_size=max(32, k))
    synth = convert(run.images.to(device), gen.space, space)
    synth_feats = encode(model, found.embed_layer, synth)
    nearest = [int(v) for v in found.clustering.nearest_center(synth_feats)]
    fidelity = float(np.mean([nearest[j] == j for j in range(k)]))
    shown = [images01[m[: found.config.top_real]] for m in found.members]  # what facets.png shows of each facet
    result = Facets(**{**{f: getattr(found, f) for f in FacetSet.__dataclass_fields__}, "space": space}, run=run,
                    synth_features=synth_feats, nearest=nearest, fidelity=fidelity, method=method,
                    facet_weight=facet_weight, real_images=shown)
    for j, rec in enumerate(run.records):
        rec.update({"facet": j, "facet_size": len(found.members[j]), "nearest_facet": nearest[j],
                    "top_images": [int(i) for i in found.members[j][: found.config.top_real]],
                    "init_images": [int(i) for i in found.init_indices[j]],
                    "top_activation": float(found.activations[(found.indices == found.members[j][0]).nonzero()[0, 0]])})
    if staged is not None:
        _write_outputs(staged, result)
        move_in(staged, out)
        run.out = out
    return result


def facets(
    model: nn.Module,
    unit: str | Unit,
    images01: torch.Tensor,
    generator: Generator | None = None,
    config: FacetConfig | None = None,
    *,
    encoder: tuple[nn.Module, str] | None = None,
    steps: int | None = None,
    am_config: AMConfig | None = None,
    priors: Sequence[Prior] | None = None,
    center_bias: CenterBias | None = None,
    facet_weight: float = FACET_WEIGHT,
    device: str | torch.device | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    input_space: ImageSpace | None = None,
) -> Facets:
    """Find the facets of ``unit`` among ``images01`` (real images in [0, 1] at the model's input size) and
    synthesize one image per facet (:func:`find_facets` then :func:`synthesize_facets`).

    ``generator=None`` is the paper's pixel method (mean-image start, :class:`CenterBias`); a learned generator runs
    DGN-AM from each facet's mean code, computed with ``encoder = (model, layer)`` (default: the zoo entry's encoder
    of a zoo generator). ``steps``, ``am_config`` and ``priors`` override the method's defaults as in
    :func:`dgnam.visualize` (DGN-AM's published lr of 8 moves far from the start in a few steps; a smaller
    ``am_config.lr_start`` keeps more of the facet, see ``benchmarks/facets.py``). ``facet_weight > 0`` adds the
    facet term of faceted feature visualization (:class:`FacetDirection`): each image is also pulled towards its
    facet's centre in the clustering features, at that weight against the unit's activation. With ``out``, the run directory
    of :func:`dgnam.visualize` is written (one unit per facet: the unit repeated k times, each once; records carry the
    facet's fields) plus
    ``facets.png``, each facet's synthetic image beside its top real images (:meth:`Facets.grid`), and
    ``embedding.png``, the 2-D embedding coloured by facet. ``input_space`` is the image space the model takes, for a
    model without an ``input_space`` attribute, as :func:`dgnam.visualize` takes it.
    """
    _check_configs(config, am_config)  # before the clustering
    model = unwrapped(model)
    if encoder is not None:
        encoder = (unwrapped(encoder[0], "encoder"), encoder[1])
    found = find_facets(model, unit, images01, config, device, input_space)
    return synthesize_facets(model, found, images01, generator, encoder=encoder, steps=steps, am_config=am_config,
                             priors=priors, center_bias=center_bias, facet_weight=facet_weight, device=device, out=out,
                             progress=progress, input_space=input_space)


def _write_outputs(out: Path, f: Facets) -> None:
    from .images import save_image

    path = out / "results.json"
    doc = json.loads(path.read_text())
    doc["records"] = f.run.records
    doc["facets"] = {"unit": f.unit.address, "embed_layer": f.embed_layer, "method": f.method,
                     "facet_weight": f.facet_weight, "fidelity": f.fidelity, "clustered_images": len(f.indices), "config": asdict(f.config)}
    write_json_atomic(path, doc)
    save_image(f.grid(), out / "facets.png")
    how = {"tsne": "t-SNE", "umap": "UMAP"}.get(f.config.reduce) if len(f.indices) >= MIN_POINTS_TO_EMBED else None
    embedding_png(f.clustering, out / "embedding.png",
                  title=f"{f.unit.address}: {len(f.indices)} top images, {how or 'PCA'} of {f.embed_layer}")


def embedding_png(cl: Clustering, path: str | Path, size: int = 400, title: str | None = None) -> None:
    """A scatter of the 2-D embedding (the first two PCA components when there is no t-SNE or UMAP), coloured by
    facet, each facet's number written at the middle of its points (the rows of ``facets.png``), under ``title``."""
    from PIL import Image, ImageDraw

    from .images import _fit, _font, save_image

    e = cl.embedding[:, :2] if cl.embedding.shape[1] >= 2 else np.c_[cl.embedding[:, 0], np.zeros(len(cl.embedding))]
    lo, hi = e.min(0), e.max(0)
    top = 18 if title else 0  # the title's line, above the points
    p = (e - lo) / np.where(hi > lo, hi - lo, 1.0) * np.array([size - 20, size - 20 - top]) + np.array([10, 10 + top])
    im = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(im)
    k = int(cl.labels.max()) + 1
    for (px, py), lab in zip(p, cl.labels):
        hue = int(lab) / max(k, 1)
        rgb = tuple(int(255 * c) for c in _hsv(hue))
        d.ellipse([px - 2, py - 2, px + 2, py + 2], fill=rgb)
    font = _font(12)
    for j in range(k):
        if not (cl.labels == j).any():
            continue
        cx, cy = np.median(p[cl.labels == j], axis=0)
        d.text((cx, cy), f"facet {j}", fill="black", font=font, anchor="mm", stroke_width=3, stroke_fill="white")
    if title:
        d.text((4, 2), _fit(d, title, size - 8, font), fill="black", font=font)
    save_image(im, path)


def _hsv(h: float) -> tuple[float, float, float]:
    import colorsys

    return colorsys.hsv_to_rgb(h, 0.85, 0.85)
