"""Real images for calibrating and evaluating the face detector, from scikit-image's bundled data.

`face_scenes(n, size)` composes ``n`` images of ``size x size`` pixels, BGR in 0..255 (as CenterFace
takes them, (N, H, W, C)): a crop of one of scikit-image's bundled photographs as the background,
with a few faces of the bundled LFW subset pasted onto it at random sizes and places. The same
``seed`` gives the same images. `text_scenes(n, size)` does the same with crops of the bundled
pages of text pasted onto the backgrounds (for the text detector). Raises `Unavailable` when
scikit-image is not installed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Unavailable", "face_scenes", "text_scenes", "BACKGROUNDS"]

BACKGROUNDS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
               "colorwheel", "camera", "coins", "moon", "horse", "grass", "gravel", "brick", "page")


class Unavailable(RuntimeError):
    """scikit-image (its bundled images) is not installed."""


def _skimage():
    try:
        import skimage.data
        import skimage.transform
    except ImportError:
        raise Unavailable("scikit-image is not installed (`pip install scikit-image`): its bundled images "
                          "are the calibration and test data of the face detector") from None
    return skimage


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, np.float64)
    if image.max() <= 1.0:
        image = image * 255.0
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return image[:, :, :3]


def face_scenes(n: int, size: int = 320, seed: int = 0) -> np.ndarray:
    """``n`` scenes with faces, (n, size, size, 3) float32 BGR in 0..255."""
    sk = _skimage()
    rng = np.random.default_rng(seed)
    backgrounds = [_rgb(getattr(sk.data, name)()) for name in BACKGROUNDS]
    faces = sk.data.lfw_subset()  # (200, 25, 25) grey faces in 0..1
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        bg = backgrounds[i % len(backgrounds)]
        crop = int(rng.integers(min(bg.shape[:2]) // 2, min(bg.shape[:2]) + 1))
        top = int(rng.integers(0, bg.shape[0] - crop + 1))
        left = int(rng.integers(0, bg.shape[1] - crop + 1))
        scene = sk.transform.resize(bg[top:top + crop, left:left + crop], (size, size), anti_aliasing=True,
                                    preserve_range=True)
        for _ in range(int(rng.integers(1, 4))):
            face = faces[int(rng.integers(len(faces)))]
            side = int(rng.integers(size // 8, size // 2))
            patch = sk.transform.resize(face, (side, side), preserve_range=True) * 255.0
            tint = rng.uniform(0.7, 1.1, 3)
            y, x = (int(rng.integers(0, size - side + 1)) for _ in range(2))
            scene[y:y + side, x:x + side] = patch[:, :, None] * tint
        out[i] = scene[:, :, ::-1]  # RGB to BGR
    return np.clip(out, 0, 255)


def text_scenes(n: int, size: int = 320, seed: int = 0) -> np.ndarray:
    """``n`` scenes with lines of text, (n, size, size, 3) float32 RGB in 0..255."""
    sk = _skimage()
    rng = np.random.default_rng(seed)
    backgrounds = [_rgb(getattr(sk.data, name)()) for name in BACKGROUNDS]
    pages = [_rgb(sk.data.text()), _rgb(sk.data.page())]
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        bg = backgrounds[i % len(backgrounds)]
        crop = int(rng.integers(min(bg.shape[:2]) // 2, min(bg.shape[:2]) + 1))
        top, left = (int(rng.integers(0, bg.shape[k] - crop + 1)) for k in (0, 1))
        scene = sk.transform.resize(bg[top:top + crop, left:left + crop], (size, size), anti_aliasing=True,
                                    preserve_range=True)
        for _ in range(int(rng.integers(1, 4))):
            page = pages[int(rng.integers(len(pages)))]
            zoom = rng.uniform(1.0, 2.5)  # letters 10 to 50 pixels high, whatever the scene's size
            h = min(int(rng.integers(page.shape[0] // 4, page.shape[0] + 1)), int(size / zoom))
            w = min(int(rng.integers(page.shape[1] // 3, page.shape[1] + 1)), int(size / zoom))
            y0, x0 = int(rng.integers(0, page.shape[0] - h + 1)), int(rng.integers(0, page.shape[1] - w + 1))
            ph, pw = max(8, min(size, int(h * zoom))), max(8, min(size, int(w * zoom)))
            patch = sk.transform.resize(page[y0:y0 + h, x0:x0 + w], (ph, pw), anti_aliasing=True, preserve_range=True)
            y, x = int(rng.integers(0, size - ph + 1)), int(rng.integers(0, size - pw + 1))
            scene[y:y + ph, x:x + pw] = patch * rng.uniform(0.7, 1.1, 3)
        out[i] = scene
    return np.clip(out, 0, 255)
