"""Images: real photographs, preprocessed as ImageNet models expect.

Sources (``--images``):

- ``samples`` (default): the photographs scikit-image ships in its wheel (no download):
  eight colour photographs, then eight greyscale ones replicated to three channels.  When
  more images are asked for than exist, seeded random crops and flips of them fill the
  gap; every report says which images are such derived copies.
- a directory: every JPEG/PNG/BMP/TIFF below it, recursively, in sorted order (an ImageNet
  validation folder works as is).  Unreadable files are skipped with a warning.
- a ``.npy``/``.npz`` array: ``uint8`` images ``(N, H, W, 3)`` are preprocessed like photos;
  ``float`` arrays ``(N, C, H, W)`` of the workload's input shape are taken as already
  preprocessed (a feature map of another network, the input of one layer or block).
- ``synthetic`` or ``synthetic:DIST``: seeded synthetic activations of the workload's input
  shape, from a stated distribution (:data:`SYNTHETIC`), for workloads that are not image
  networks; learning and testing sets come from different seeds.

Preprocessing is the standard ImageNet one: resize the shorter side to ``256/224`` of the
crop size (256 for 224) with antialiasing, center-crop, scale to [0, 1] and normalise with
the workload's mean and std.

Learning (SL) and testing (ST) sets are disjoint: :func:`learn_test_split` takes SL from
the first source images and ST from the following ones; derived copies are made only from
images of their own set.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .cores import map_ordered

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

#: synthetic input distributions (``--images synthetic:NAME``) and what each is
SYNTHETIC: dict[str, str] = {
    "normal": "standard normal N(0, 1), as normalised images or pre-activation maps",
    "relu": "rectified standard normal max(0, N(0, 1)), as post-ReLU feature maps "
            "(half the values zero)",
    "uniform": "uniform U(0, 1)",
}

#: scikit-image's bundled photographs, in the order ``samples`` uses them
SAMPLE_PHOTOS: tuple[str, ...] = (
    "astronaut", "chelsea", "coffee", "rocket", "motorcycle", "retina", "hubble_deep_field",
    "immunohistochemistry",
    "camera", "coins", "moon", "clock", "brick", "grass", "gravel", "cell",
)


@dataclass(frozen=True)
class ImageSet:
    """Preprocessed images and where each came from.

    Attributes
    ----------
    pixels
        ``(N, 3, H, W)`` float32, normalised.
    names
        One name per image: a file path, a sample name, or ``"<base>~crop<k>"`` for a
        derived copy.
    derived
        True for images made by cropping/flipping another image of the set.
    source
        What ``--images`` said.
    warnings
        Files skipped and why.
    inputs
        What the inputs are and how they were normalised (every report shows it).
    nonnegative
        Non-negative by construction (post-ReLU feature maps: a preprocessed array with no
        negative value, ``synthetic:relu``/``uniform``): quantized unsigned at the first
        layers, as an accelerator would store them.
    """

    pixels: np.ndarray
    names: tuple[str, ...]
    derived: tuple[bool, ...]
    source: str
    warnings: tuple[str, ...] = field(default=())
    inputs: str = ""
    nonnegative: bool = False

    def __len__(self) -> int:
        return len(self.names)

    @property
    def n_derived(self) -> int:
        return sum(self.derived)

    def describe(self) -> str:
        """One line for reports: how many images, from where, how many derived."""
        text = f"{len(self)} images from {self.source}"
        if self.n_derived:
            text += (f" ({self.n_derived} are seeded random crops/flips of the others, as the "
                     f"source has too few)")
        if self.inputs:
            text += f"; {self.inputs}"
        return text


@dataclass(frozen=True)
class Preprocess:
    """How raw RGB images become network inputs.

    ``shape`` is the workload's input ``(C, H, W)`` (preprocessed arrays and synthetic
    activations must have it; photos need ``(3, size, size)``); ``origin`` says where
    ``mean`` and ``std`` come from, for reports.
    """

    size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    shape: tuple[int, int, int] | None = None
    origin: str = "ImageNet's"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.shape or (3, self.size, self.size)

    def describe(self) -> str:
        mean = ", ".join(f"{v:g}" for v in self.mean)
        std = ", ".join(f"{v:g}" for v in self.std)
        return f"photographs normalised with mean ({mean}), std ({std}) ({self.origin})"

    @property
    def resize_to(self) -> int:
        return round(self.size * 256 / 224)


# ---------------------------------------------------------------------------- raw images
#: each sample photograph's file in scikit-image's data directory (the files its
#: ``skimage.data`` functions read; ``motorcycle`` is the left view of the stereo pair)
_SAMPLE_FILES: dict[str, str] = {
    "astronaut": "astronaut.png", "chelsea": "chelsea.png", "coffee": "coffee.png",
    "rocket": "rocket.jpg", "motorcycle": "motorcycle_left.png", "retina": "retina.jpg",
    "hubble_deep_field": "hubble_deep_field.jpg", "immunohistochemistry": "ihc.png",
    "camera": "camera.png", "coins": "coins.png", "moon": "moon.png",
    "clock": "clock_motion.png", "brick": "brick.png", "grass": "grass.png",
    "gravel": "gravel.png", "cell": "cell.png",
}


def _sample_loaders() -> dict[str, Callable[[], np.ndarray]]:
    """Decoders of the sample photographs: Pillow reads the files scikit-image ships, giving
    the arrays ``skimage.data`` returns without importing ``skimage.io`` and its plugins
    (most of a second) or reading the motorcycle's right view and disparity map."""
    import importlib.resources

    from PIL import Image

    root = importlib.resources.files("skimage") / "data"

    def load(file: str) -> np.ndarray:
        with Image.open(str(root / file)) as image:
            return np.array(image)

    return {name: (lambda file=file: load(file)) for name, file in _SAMPLE_FILES.items()}


def _to_rgb(image: np.ndarray, name: str) -> np.ndarray:
    """uint8 (H, W, 3) from greyscale, RGBA or float images."""
    if image.dtype != np.uint8:
        image = np.asarray(image, dtype=np.float64)
        if image.max() <= 1.0:
            image = image * 255.0
        image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise DataError(f"{name}: expected an RGB image, got an array of shape {image.shape}")
    return image[:, :, :3]


#: largest image decoded, in pixels (width x height): 40 megapixels take about 1 GiB while
#: being resized; a larger file is skipped with a warning like any unreadable one
MAX_IMAGE_PIXELS = 40_000_000


def _read_file(path: Path) -> np.ndarray:
    """uint8 RGB pixels of an image file, decoded as torchvision's loader does.

    Pillow reads the header first, so an image above :data:`MAX_IMAGE_PIXELS` is refused
    before any pixel is decoded.  Then: 16-bit greyscale is scaled to 8 bits
    (``v * 255 / 65535``, not clipped), palette images go through their palette, CMYK is
    converted by Pillow (Adobe's inverted CMYK JPEGs included), and an alpha channel is
    dropped (``convert("RGB")``, as torchvision's ``pil_loader`` does).
    """
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            opened = Image.open(path)
        except Image.DecompressionBombError:  # Pillow's own, higher limit
            raise DataError(f"above the limit of {MAX_IMAGE_PIXELS:,} pixels") from None
        with opened as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DataError(f"{width}x{height} pixels is above the limit of "
                                f"{MAX_IMAGE_PIXELS:,}")
            if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
                wide = np.asarray(image, dtype=np.float64)
                peak = 65535.0 if image.mode.startswith("I;16") or wide.max() > 255 else 255.0
                grey = np.clip(np.round(wide * (255.0 / peak)), 0, 255).astype(np.uint8)
                return np.repeat(grey[:, :, None], 3, axis=2)
            if image.mode == "F":
                return _to_rgb(np.asarray(image), str(path))
            return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _directory_files(root: Path) -> tuple[list[Path], list[str]]:
    files, skipped = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            files.append(path)
        else:
            skipped.append(f"{path}: skipped, not an image file ({path.suffix or 'no suffix'})")
    return files, skipped


# ---------------------------------------------------------------------------- preprocessing
def preprocess(image: np.ndarray, prep: Preprocess) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (3, size, size): resize, center crop, normalise."""
    h, w = image.shape[:2]
    scale = prep.resize_to / min(h, w)
    new_h, new_w = max(prep.size, round(h * scale)), max(prep.size, round(w * scale))
    resized = _resize(image, (new_h, new_w), anti_aliasing=scale < 1)
    top, left = (new_h - prep.size) // 2, (new_w - prep.size) // 2
    crop = resized[top:top + prep.size, left:left + prep.size] / 255.0
    mean = np.asarray(prep.mean, dtype=np.float64)
    std = np.asarray(prep.std, dtype=np.float64)
    return ((crop - mean) / std).transpose(2, 0, 1).astype(np.float32)


def _resize(image: np.ndarray, shape: tuple[int, int], *, anti_aliasing: bool) -> np.ndarray:
    """``skimage.transform.resize(image, shape, order=1, anti_aliasing=anti_aliasing,
    preserve_range=True)`` of an ``(H, W, C)`` image, by the same scipy.ndimage calls.

    scikit-image's resize is a Gaussian pre-filter (sigma ``(factor - 1) / 2`` per axis,
    ndimage's ``mirror`` boundary) then a linear ``zoom`` on the pixel grid, clipped to the
    input's range; calling them directly spares importing ``skimage.transform`` (a third of
    a second) and gives identical pixels (tested against scikit-image).
    """
    from scipy import ndimage

    if image.dtype == np.float16:
        image = image.astype(np.float32)
    elif image.dtype.char not in "df":
        image = image.astype(float)
    factors = np.divide(image.shape, (*shape, *image.shape[2:]))
    filtered = (ndimage.gaussian_filter(image, np.maximum(0, (factors - 1) / 2), cval=0,
                                        mode="mirror") if anti_aliasing else image)
    out = ndimage.zoom(filtered, [1 / f for f in factors], order=1, mode="mirror", cval=0,
                       grid_mode=True)
    np.clip(out, np.asarray(image.min()), np.asarray(image.max()), out=out)
    return out


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random crop of 60-100% of the shorter side, flipped horizontally half the time."""
    h, w = image.shape[:2]
    side = int(min(h, w) * rng.uniform(0.6, 1.0))
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    crop = image[top:top + side, left:left + side]
    return crop[:, ::-1] if rng.random() < 0.5 else crop


# ---------------------------------------------------------------------------- sources
@dataclass
class _Raw:
    """Un-preprocessed images of a source, loaded lazily."""

    names: list[str]
    load: Callable[[int], np.ndarray | None]
    warnings: list[str]
    preprocessed: np.ndarray | None = None
    # every value of the whole array is >= 0 (decided once per file, so SL and ST agree)
    nonnegative: bool = False


def _open_source(source: str | Path) -> _Raw:
    text = str(source)
    if text == "samples":
        loaders = _sample_loaders()
        names = list(SAMPLE_PHOTOS)
        return _Raw(names, lambda i: _to_rgb(loaders[names[i]](), names[i]), [])
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path}: no such image directory or array file (or use 'samples')")
    if path.is_dir():
        files, skipped = _directory_files(path)
        raw = _Raw([str(p) for p in files], lambda i: None, skipped)

        def load(i: int) -> np.ndarray | None:
            try:
                return _read_file(files[i])
            except Exception as exc:  # any decoder failure means "not a usable image"
                raw.warnings.append(f"{files[i]}: skipped, cannot be read as an image "
                                    f"({type(exc).__name__}: {exc})")
                return None

        raw.load = load
        return raw
    if path.suffix.lower() in (".npy", ".npz"):
        if not path.is_file():
            raise DataError(f"{path}: not a regular file")
        return _open_array(path)
    raise DataError(f"{path}: expected 'samples', a directory of images, or a .npy/.npz array")


def _open_array(path: Path) -> _Raw:
    import zipfile

    from .budget import check_file_bytes

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                check_file_bytes(path, sum(i.file_size for i in archive.infolist()),
                                 "its arrays")
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot be read as a numpy array ({exc})") from None
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            if not loaded.files:
                raise DataError(f"{path}: the .npz holds no array")
            key = "images" if "images" in loaded.files else loaded.files[0]
            array = loaded[key]
        else:
            array = loaded
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: cannot be read as a numpy array ({exc})") from None
    if array.ndim == 0:
        raise DataError(f"{path}: expected an array of images, got a scalar")
    names = [f"{path}[{i}]" for i in range(len(array))]
    if array.dtype == np.uint8:
        if array.ndim != 4 or array.shape[-1] not in (1, 3, 4):
            raise DataError(f"{path}: uint8 images must be (N, H, W, 3), got {array.shape}")
        return _Raw(names, lambda i: _to_rgb(array[i].squeeze(), names[i]), [])
    if array.ndim != 4 or array.dtype.kind != "f":
        raise DataError(f"{path}: preprocessed inputs must be a float array (N, C, H, W), "
                        f"got {array.dtype} {array.shape}")
    with np.errstate(over="ignore"):
        pixels = array.astype(np.float32)
    finite = np.isfinite(pixels)
    if not finite.all():
        bad = int(np.argmin(finite.reshape(len(pixels), -1).all(axis=1)))
        raise DataError(f"{path}: input {bad} holds NaN or infinity (as float32); preprocessed "
                        f"inputs must be finite")
    return _Raw(names, lambda i: None, [], preprocessed=pixels,
                nonnegative=bool((pixels >= 0).all()))


def _take(raw: _Raw, indices: Sequence[int], n: int, prep: Preprocess, rng: np.random.Generator,
          source: str) -> tuple[ImageSet, int]:
    """``n`` images from the source images ``indices``, deriving copies if they run out.

    Returns the set and the index after the last source image it read.
    """
    if raw.preprocessed is not None:
        array = raw.preprocessed
        if array.shape[1:] != prep.input_shape:
            raise DataError(f"{source}: preprocessed inputs are (N, C, H, W) = "
                            f"{list(array.shape)}, the workload needs (N, "
                            f"{', '.join(map(str, prep.input_shape))})")
        chosen = list(indices)[:n]
        if len(chosen) < n:
            raise DataError(f"{source}: holds {len(raw.names)} preprocessed images, {n} needed "
                            f"here (derived copies are made only from raw images)")
        return (ImageSet(array[chosen], tuple(raw.names[i] for i in chosen), (False,) * n, source,
                         tuple(raw.warnings),
                         inputs="preprocessed array, used as it is (no normalisation applied)"
                         + ("; non-negative everywhere, so quantized unsigned"
                            if raw.nonnegative else ""),
                         nonnegative=raw.nonnegative),
                chosen[-1] + 1)
    if prep.input_shape != (3, prep.size, prep.size):
        c, h, w = prep.input_shape
        raise DataError(f"{source}: the workload takes {c}x{h}x{w} inputs; image sources "
                        f"produce square RGB images (use a preprocessed .npy/.npz array of "
                        f"(N, {c}, {h}, {w}) or --images synthetic[:DIST] instead)")
    images, names, derived, bases = [], [], [], []
    next_index = indices[0] if len(indices) else 0
    for i in indices:
        if len(images) == n:
            break
        next_index = i + 1
        image = raw.load(i)
        if image is None:
            continue
        bases.append((raw.names[i], image))
        images.append(image)
        names.append(raw.names[i])
        derived.append(False)
    if not bases:
        raise DataError(f"{source}: no usable image" + (
            f" ({len(raw.warnings)} files skipped; first: {raw.warnings[0]})"
            if raw.warnings else ""))
    copies = 0
    while len(images) < n:
        name, image = bases[copies % len(bases)]
        copies += 1
        images.append(augment(image, rng))
        names.append(f"{name}~crop{copies}")
        derived.append(True)
    # each image once, on every core (the crops above drew from ``rng`` in order)
    pixels = list(map_ordered(lambda image: preprocess(image, prep), images))
    return (ImageSet(np.stack(pixels), tuple(names), tuple(derived), source, tuple(raw.warnings),
                     inputs=prep.describe()),
            next_index)


def load_images(source: str | Path = "samples", n: int = 8, *, prep: Preprocess | None = None,
                seed: int = 0) -> ImageSet:
    """Load ``n`` preprocessed images from ``source`` (see the module docstring)."""
    if n < 1:
        raise DataError(f"need at least one image, got n={n}")
    if _is_synthetic(source):
        return synthetic_inputs(str(source), n, (prep or Preprocess()).input_shape, seed)
    raw = _open_source(source)
    rng = np.random.default_rng(seed)
    return _take(raw, range(len(raw.names)), n, prep or Preprocess(), rng, str(source))[0]


def learn_test_split(source: str | Path = "samples", n_learn: int = 4, n_test: int = 4, *,
                     prep: Preprocess | None = None, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Disjoint learning (SL) and testing (ST) sets.

    SL takes the source's first images and ST the following ones.  When the source holds
    fewer than ``n_learn + n_test`` images, its images are divided between the two sets in
    proportion and each set is filled with derived copies of its own images only.
    """
    if n_learn < 1 or n_test < 1:
        raise DataError(f"need at least one learning and one testing image, got SL={n_learn}, "
                        f"ST={n_test}")
    prep = prep or Preprocess()
    if _is_synthetic(source):
        # disjoint by construction: the testing set draws from another seed
        return (synthetic_inputs(str(source), n_learn, prep.input_shape, seed),
                synthetic_inputs(str(source), n_test, prep.input_shape, seed + 1))
    raw = _open_source(source)
    total = len(raw.names)
    if total < 2:
        raise DataError(f"{source}: holds {total} image(s); SL and ST need one each at least")
    if total >= n_learn + n_test:
        learn, cut = _take(raw, range(total), n_learn, prep, np.random.default_rng(seed),
                           str(source))
    else:
        cut = min(total - 1, max(1, round(total * n_learn / (n_learn + n_test))))
        learn, _ = _take(raw, range(cut), n_learn, prep, np.random.default_rng(seed), str(source))
    if cut >= total:
        raise DataError(f"{source}: no images left for the testing set after the learning set")
    test, _ = _take(raw, range(cut, total), n_test, prep, np.random.default_rng(seed + 1),
                    str(source))
    return dataclasses.replace(learn, warnings=()), test


# ---------------------------------------------------------------------------- synthetic
def _is_synthetic(source: str | Path) -> bool:
    return isinstance(source, str) and (source == "synthetic" or source.startswith("synthetic:"))


def synthetic_inputs(source: str, n: int, shape: tuple[int, int, int], seed: int) -> ImageSet:
    """``n`` seeded synthetic activations of ``shape`` from ``synthetic[:DIST]``."""
    dist = source.partition(":")[2] or "normal"
    if dist not in SYNTHETIC:
        raise DataError(f"--images {source}: unknown distribution {dist!r}; choose one of "
                        f"{', '.join(f'synthetic:{d}' for d in SYNTHETIC)}")
    rng = np.random.default_rng(seed)
    size = (n, *shape)
    if dist == "uniform":
        pixels = rng.random(size, dtype=np.float32)
    else:
        pixels = rng.standard_normal(size, dtype=np.float32)
        if dist == "relu":
            np.maximum(pixels, 0, out=pixels)
    names = tuple(f"synthetic:{dist}[{i}]" for i in range(n))
    unsigned = dist != "normal"
    return ImageSet(pixels, names, (False,) * n, source,
                    inputs=f"synthetic activations (not images): {SYNTHETIC[dist]}, seed {seed}"
                    + ("; non-negative, so quantized unsigned" if unsigned else ""),
                    nonnegative=unsigned)
