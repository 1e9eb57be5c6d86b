"""Image data sets: Fashion-MNIST from Debian's IDX files, and a plain folder of images.

Both yield ``(image, label)`` with images as float tensors ``(C, H, W)`` in ``[0, 1]`` (the canonical ``x01`` form of
:mod:`dgnam.imagespace`); models' own normalization is applied by their :class:`~dgnam.imagespace.ImageSpace`.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DgnamError

#: Where Debian's ``dataset-fashion-mnist`` package installs the files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_ENV = "DGNAM_FASHION_MNIST"
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}

#: Pillow modes of more than 8 bits a channel, and the value that is white in each (16-bit PNGs and TIFFs; Pillow's
#: ``convert("L")`` clips such values at 255 instead, so a 16-bit image read as mostly white).
HIGH_BIT_WHITE = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0, "I": 65535.0, "F": 1.0}


def open_image(path: str | os.PathLike, channels: int | None = None, size: tuple[int, int] | None = None):
    """An image file as a Pillow image of mode ``L`` (``channels`` 1) or ``RGB`` (3; ``None``: gray files stay gray,
    the others are RGB), as image viewers show it: turned upright by its EXIF orientation, and a 16-bit or float
    file scaled by its range (16-bit: 0..65535; float: 0..1, else refused). With ``size`` (H, W) a large JPEG is
    decoded at a reduced scale still at least that large (Pillow's draft mode), which is much faster. Transparent
    pixels keep the colour stored under them, as in torchvision. A file Pillow cannot read, or one beyond its
    decompression-bomb limit, is a one-line error."""
    from PIL import Image, ImageOps

    if os.path.exists(path) and not os.path.isfile(path):  # a FIFO or a device named x.png: the read never returned
        raise DgnamError(f"cannot read image {path}: it is not a plain file (a FIFO, a device or a folder); replace "
                         f"or delete it")
    try:
        with Image.open(path) as im:
            if size is not None and im.format == "JPEG":
                side = max(size)
                im.draft("RGB" if channels != 1 else "L", (side, side))
            im = ImageOps.exif_transpose(im)  # a copy, loaded: the file can close
            if im.mode in HIGH_BIT_WHITE:
                a = np.asarray(im, dtype=np.float64)
                if im.mode == "F" and (not np.isfinite(a).all() or a.min() < 0 or a.max() > 1):
                    raise DgnamError(f"{path} is a float image with values over [{a.min():.4g}, {a.max():.4g}]: "
                                     f"give values in [0, 1], or save it as an 8- or 16-bit image")
                if a.min() < 0 or a.max() > HIGH_BIT_WHITE[im.mode]:
                    raise DgnamError(f"{path} is a 32-bit integer image with values over [{a.min():.0f}, "
                                     f"{a.max():.0f}], beyond 16 bits: save it as an 8- or 16-bit image")
                im = Image.fromarray((a / HIGH_BIT_WHITE[im.mode] * 255.0 + 0.5).astype(np.uint8), "L")
            gray = im.mode in ("1", "L", "LA")
            mode = "RGB" if channels == 3 or (channels is None and not gray) else "L"
            return im.convert(mode)
    except Image.DecompressionBombError as e:
        raise DgnamError(f"cannot read image {path}: {e}; downscale it first") from None
    except FileNotFoundError:  # (a typo, mostly: "replace or delete the file" was no help)
        raise DgnamError(f"cannot read image {path}: no such file; check the path") from None
    except OSError as e:
        raise DgnamError(f"cannot read image {path}: {e}; replace or delete the file") from None


def image_files(folder: Path) -> list[Path]:
    """The image files under ``folder`` (sub-folders too, following links to folders as torchvision does, each
    folder once), sorted; hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints``) left out."""
    found, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a link back up the tree
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath) / f for f in filenames
                  if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found)


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed), the format of MNIST and Fashion-MNIST."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DgnamError(f"cannot read IDX file {path}: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DgnamError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=_IDX_DTYPES[data[2]], offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise DgnamError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {arr.size}")
    return arr.reshape(dims)


def fashion_mnist_dir(root: str | os.PathLike | None = None) -> Path:
    """The Fashion-MNIST directory: ``root``, else ``$DGNAM_FASHION_MNIST``, else Debian's location. ``root`` may be
    written as a ``--data`` spec too (``fashion-mnist:DIR``, or ``fashion-mnist`` for the default), as every command
    but ``demo`` takes it."""
    if isinstance(root, str) and (root == "fashion-mnist" or root.startswith("fashion-mnist:")):
        root = root.partition(":")[2] or None
    d = Path(root or os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR)
    if not (d / "train-images-idx3-ubyte.gz").exists() and not (d / "train-images-idx3-ubyte").exists():
        raise DgnamError(
            f"Fashion-MNIST not found in {d}: install it with `apt-get install dataset-fashion-mnist` "
            f"or pass --data fashion-mnist:DIR (or set ${FASHION_MNIST_ENV}) to a folder with the IDX files"
        )
    return d


def _idx_path(d: Path, stem: str) -> Path:
    return d / f"{stem}.gz" if (d / f"{stem}.gz").exists() else d / stem


class FashionMNIST(Dataset):
    """Fashion-MNIST, 28x28 gray, 10 classes. ``split`` is ``"train"`` (60k) or ``"test"`` (10k)."""

    classes = FASHION_MNIST_CLASSES

    def __init__(self, split: str = "train", root: str | os.PathLike | None = None) -> None:
        if split not in ("train", "test"):
            raise DgnamError(f"unknown split {split!r}: use train or test")
        d = fashion_mnist_dir(root)
        prefix = "train" if split == "train" else "t10k"
        images = read_idx(_idx_path(d, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_idx_path(d, f"{prefix}-labels-idx1-ubyte"))
        if len(images) != len(labels):
            raise DgnamError(f"Fashion-MNIST {split}: {len(images)} images but {len(labels)} labels")
        self.images = torch.from_numpy(images.copy())  # uint8 (N, 28, 28)
        self.labels = torch.from_numpy(labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i].float().div(255.0)[None], int(self.labels[i])

    def tensors(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """All (or the first ``n``) images as one ``(N, 1, 28, 28)`` float tensor in [0, 1], with labels."""
        n = _count(n, len(self))
        return self.images[:n].float().div(255.0)[:, None], self.labels[:n]


def class_folders(d: Path) -> list[str]:
    """The class sub-folders of ``d``, sorted (their order numbers the labels); none if ``d`` is no folder. Hidden
    entries (.ipynb_checkpoints, .DS_Store, ...) are no classes."""
    return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")) if d.is_dir() else []


def data_spec(spec: str | os.PathLike | None) -> str | None:
    """A ``--data`` spec (Python: ``data=``) as a string: a path object is its path, read as the same string would be
    (a ``Path`` failed deep inside with "'PosixPath' object has no attribute 'startswith'"). Anything else is a
    one-line error."""
    if spec is None or isinstance(spec, str):
        return spec
    if isinstance(spec, os.PathLike):
        return os.fspath(spec)
    raise DgnamError(f"data is a {type(spec).__name__}: give fashion-mnist or an image folder (a str or a Path)")


def is_fashion_mnist(spec: str | os.PathLike | None) -> bool:
    """Whether a ``--data`` spec names Fashion-MNIST (``None``, ``fashion-mnist``, ``fashion-mnist:DIR``) rather than
    an image folder (see :func:`load_dataset`)."""
    spec = data_spec(spec)
    return spec is None or spec == "fashion-mnist" or spec.startswith("fashion-mnist:")


class ImageFolder(Dataset):
    """One sub-folder per class (sorted names are the classes), images of any size resized whole to ``size``
    (bilinear; the aspect ratio is not kept, as in Caffe's ImageNet data, which ``convert_imageset`` squashed to
    256 x 256: crop photos of other shapes first where a model was trained on centre crops). A folder
    of images without sub-folders is one class, named after the folder (facets, activation references and
    nearest images need no labels).

    ``channels`` is 1 (gray) or 3 (RGB).
    """

    #: ``"train"`` or ``"test"`` for a folder of a split layout (``ROOT/train/<class>``, ``ROOT/test/<class>``);
    #: None for a plain folder, which has no test images of its own.
    split: str | None = None

    def __init__(self, root: str | os.PathLike, size: tuple[int, int], channels: int = 3) -> None:
        from PIL import Image  # noqa: F401  (checked early so the error is clear)

        root = Path(root)
        if root.is_file():
            raise DgnamError(f"{root} is a file: give a folder of images (one sub-folder per class, or the images "
                             f"directly in it)")
        if not root.is_dir():
            raise DgnamError(f"image folder {root} does not exist: give a folder with one sub-folder per class")
        self.classes = class_folders(root)
        self.samples = [(p, ci) for ci, c in enumerate(self.classes) for p in image_files(root / c)]
        empty = sorted(set(self.classes) - {self.classes[ci] for _, ci in self.samples})
        if self.samples and empty:  # it would be a class of the model and of every figure, with no image
            raise DgnamError(f"class folder(s) {', '.join(empty)} of {root} hold no images (suffixes: "
                             f"{', '.join(sorted(IMAGE_SUFFIXES))}): add images or move the folder(s) out")
        if not self.samples:  # a flat folder: one class
            flat = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                          and not p.name.startswith("."))
            self.classes, self.samples = ([root.name], [(p, 0) for p in flat]) if flat else (self.classes, [])
        if not self.samples:
            if any((root / f"{stem}-images-idx3-ubyte{gz}").is_file() for stem in ("train", "t10k") for gz in ("", ".gz")):
                raise DgnamError(f"{root} holds Fashion-MNIST's IDX files, not an image folder: give --data "
                                 f"fashion-mnist:{root} (or set ${FASHION_MNIST_ENV}={root})")
            raise DgnamError(f"no images found in {root} or in {root}/<class>/ (suffixes: "
                             f"{', '.join(sorted(IMAGE_SUFFIXES))})")
        self.root = root
        self.size = tuple(size)
        self.channels = channels

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        from PIL import Image

        path, label = self.samples[i]
        im = open_image(path, self.channels, self.size).resize((self.size[1], self.size[0]), Image.BILINEAR)
        arr = np.asarray(im, dtype=np.float32) / 255.0
        t = torch.from_numpy(arr)
        t = t[None] if t.dim() == 2 else t.permute(2, 0, 1)
        return t.contiguous(), label

    def tensors(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The images and labels; ``n`` (``--limit``) takes the classes in turn (the first image of each class,
        then the second, ...), so that a limit never leaves a class out: the samples are sorted by class."""
        xs, ys = zip(*(self[i] for i in self.order(n)))
        return torch.stack(xs), torch.tensor(ys)

    def order(self, n: int | None = None) -> list[int]:
        """Which samples :meth:`tensors` takes, in its order (row i of its tensors is ``samples[order(n)[i]]``)."""
        n = _count(n, len(self))
        return list(range(n)) if n == len(self) else self._by_turns()[:n]

    def files(self, n: int | None = None) -> list[str]:
        """The file of each row of :meth:`tensors`, relative to the folder: records name real images by them."""
        return [str(self.samples[i][0].relative_to(self.root)) for i in self.order(n)]

    def _by_turns(self) -> list[int]:
        per_class: dict[int, list[int]] = {}
        for i, (_, label) in enumerate(self.samples):
            per_class.setdefault(label, []).append(i)
        longest = max(len(v) for v in per_class.values())
        return [v[k] for k in range(longest) for v in per_class.values() if k < len(v)]


#: The sub-folders of an image folder that has its own test split.
FOLDER_SPLITS = ("train", "test")


def _count(n: int | None, total: int) -> int:
    """How many images ``--limit n`` takes: all for None, at most ``total``; 0 or a negative number is a mistake
    (Python's slicing would take none, or all but the last few)."""
    if n is None:
        return total
    if n < 1:
        raise DgnamError(f"--limit {n}: use at least 1 image (or leave --limit out for all {total})")
    return min(n, total)


def load_dataset(spec: str | os.PathLike | None, split: str = "train", size: tuple[int, int] = (28, 28),
                 channels: int = 1):
    """``spec`` is ``"fashion-mnist"`` (optionally ``fashion-mnist:DIR``), ``None`` (Fashion-MNIST), or a folder
    (a str or a Path): one sub-folder per class, or ``train/`` and ``test/`` each with the same class sub-folders
    (then ``split`` picks one; a plain folder gives the same images for every split). A folder's images are read at
    ``size`` with ``channels``; Fashion-MNIST's are 1 x 28 x 28 and no other shape is asked of them."""
    spec = data_spec(spec)
    if is_fashion_mnist(spec):
        if (tuple(size), channels) != ((28, 28), 1):
            raise DgnamError(f"Fashion-MNIST images are 1x28x28 gray, but the model takes {channels}x{size[0]}x"
                             f"{size[1]}: give --data an image folder (read at the model's size)")
        return FashionMNIST(split, root=spec.split(":", 1)[1]) if spec and ":" in spec else FashionMNIST(split)
    root = Path(spec)
    halves = [sp for sp in FOLDER_SPLITS if class_folders(root / sp)]
    if len(halves) == 1 and set(class_folders(root)) <= set(FOLDER_SPLITS):
        other = FOLDER_SPLITS[halves[0] == "train"]  # one split of the split layout, not a class named "train"
        raise DgnamError(f"{root} has {halves[0]}/ but no {other}/: add {other}/ with the same class sub-folders, or "
                         f"give {root / halves[0]} itself (10 % of each class is then held out for testing)")
    if all((root / sp).is_dir() for sp in FOLDER_SPLITS):  # train/ and test/, each with one sub-folder per class
        if split not in FOLDER_SPLITS:
            raise DgnamError(f"split {split!r}: {root} has the splits {', '.join(FOLDER_SPLITS)}")
        ds = ImageFolder(root / split, size=size, channels=channels)
        other = ImageFolder(root / FOLDER_SPLITS[split == "train"], size=size, channels=channels)
        if ds.classes != other.classes:  # labels number the sorted sub-folders: they must be the same in both
            raise DgnamError(f"{root}/train and {root}/test have different class sub-folders ({len(other.classes)} "
                             f"vs {len(ds.classes)}): give both the same classes")
        ds.split = split
        return ds
    return ImageFolder(spec, size=size, channels=channels)
