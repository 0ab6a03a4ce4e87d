"""Your own images: one folder per domain, one sub-folder per class.

::

    root/
      <domain>/<class>/<image>     labelled images
      <domain>/<image>             images of a domain without labels (label -1)

Images are read with Pillow, converted to RGB, resized to ``image_size`` and returned as float32
arrays ``(n, 3, H, W)`` in [0, 1]: 8-bit images are divided by 255, 16-bit greyscale ones (Pillow's
modes ``I;16`` and ``I``) by 65535, and float images (``F``) are taken as they are, clipped to [0, 1].
Hidden files and folders (names starting with a dot, such as macOS's ``._photo.png``) are skipped.
Class names are the sorted union of the class folders of all domains, so the same name has the same
label everywhere. Images deeper down (``<domain>/<class>/<folder>/<image>``) are not read: a warning
names the folders that hold them, and another one says when no domain has class folders at all
(every image unlabelled: often the folder of one domain passed as ``root``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from transferkit.domains import UNLABELLED, DomainDataset
from transferkit.errors import TransferkitError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )  # fmt: skip


def _as_rgb(im, size) -> np.ndarray:
    """``(3, H, W)`` float32 in [0, 1]; Pillow's own RGB conversion would turn every 16-bit value above
    255 white. Transparent pixels are shown over white, as a viewer shows them (converting to RGB
    would drop the alpha channel, and an icon or sketch drawn in it would become one flat colour)."""
    from PIL import Image

    if im.mode in ("RGBA", "LA", "PA", "La") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    if im.mode.startswith("I") or im.mode == "F":
        scale = 1.0 if im.mode == "F" else 65535.0
        grey = np.asarray(im.convert("F").resize(size, Image.BILINEAR), dtype=np.float32) / scale
        return np.repeat(np.clip(grey, 0.0, 1.0)[None], 3, axis=0)
    rgb = np.asarray(im.convert("RGB").resize(size, Image.BILINEAR), dtype=np.float32)
    return rgb.transpose(2, 0, 1) / 255.0


def load_image_folder(root, image_size: int | tuple[int, int] = 32, name: str | None = None) -> DomainDataset:
    """Load ``root/<domain>/<class>/<image>`` into a :class:`DomainDataset`."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise TransferkitError(f"image folder {root} does not exist or is not a folder.")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    domain_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not domain_dirs:
        raise TransferkitError(f"{root} has no domain folders; expected root/<domain>/<class>/<image>.")
    classes = sorted(
        {c.name for d in domain_dirs for c in d.iterdir() if c.is_dir() and not c.name.startswith(".")}
    )
    if not classes:
        warnings.warn(
            f"no domain folder of {root} has class folders, so every image is unlabelled; a labelled "
            "domain is root/<domain>/<class>/<image> (if the sub-folders of "
            f"{root} are the classes of one domain, pass the folder above it).",
            stacklevel=2,
        )
    deeper = sorted(
        str(sub.relative_to(root)) for d in domain_dirs for c in d.iterdir()
        if c.is_dir() and not c.name.startswith(".") for sub in c.iterdir()
        if sub.is_dir() and not sub.name.startswith(".") and _images_in(sub)
    )  # fmt: skip
    if deeper:
        warnings.warn(
            f"{len(deeper)} folder(s) under a class folder hold images that are not read "
            f"({', '.join(deeper[:3])}{', ...' if len(deeper) > 3 else ''}): transferkit reads "
            "root/<domain>/<class>/<image>; move them into their class folder.",
            stacklevel=2,
        )
    X, y, files = {}, {}, {}
    for d in domain_dirs:
        items = [(p, classes.index(c.name)) for c in sorted(d.iterdir()) if c.is_dir()
                 and not c.name.startswith(".") for p in _images_in(c)]  # fmt: skip
        items += [(p, UNLABELLED) for p in _images_in(d)]
        if not items:
            raise TransferkitError(
                f"domain folder {d} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})."
            )
        arr = np.empty((len(items), 3, size[1], size[0]), dtype=np.float32)
        for k, (p, _) in enumerate(items):
            try:
                with Image.open(p) as im:
                    arr[k] = _as_rgb(im, size)
            except (UnidentifiedImageError, OSError) as exc:
                raise TransferkitError(f"cannot read image {p}: {exc}") from None
            except Image.DecompressionBombError as exc:  # Pillow's guard against huge images
                raise TransferkitError(
                    f"cannot read image {p}: {exc} Make it smaller, or raise PIL.Image.MAX_IMAGE_PIXELS "
                    "if you trust the file."
                ) from None
        X[d.name] = arr
        y[d.name] = np.asarray([lbl for _, lbl in items], dtype=np.int64)
        files[d.name] = [str(p.relative_to(root)) for p, _ in items]  # each row's image, for predictions
    return DomainDataset(name or root.name, X, y, tuple(classes), modality="image",
                         description=f"image folder {root}", extras={"files": files})  # fmt: skip
