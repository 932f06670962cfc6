"""The five-point face every part of agekeras shares: point order, mirror, canonical positions.

A face has five landmarks, as pixel (x, y) with pixel centres at integers,
in the order of `LANDMARK_NAMES`: left eye, right eye, nose tip, left mouth
corner, right mouth corner, where "left" means image left (MTCNN's order).

`CANONICAL` is where those points sit on an average face that fills its
crop, in the normalised frame [-1, 1] x [-1, 1] of the crop ((-1, -1) is the
top-left corner of the top-left pixel, (1, 1) the bottom-right corner of the
bottom-right one). It is a symmetric, rounded version of the mean MTCNN
landmarks of UTKFace's aligned 200 x 200 crops: eyes 39 % of the width apart
and 40 % of the half-height above the centre, mouth corners 36 % below it.
`agekeras.layers.aligned_region_pooling` builds its region templates on it,
and `agekeras.datasets.align`'s "dhaa" template frames photos with it.

This module is a leaf: it imports numpy only, so that both the layers and the
datasets may import it.

Example:

>>> CANONICAL.shape, LANDMARK_NAMES[MIRROR_ORDER[0]]
((5, 2), 'right_eye')
>>> canonical_relative()[2].tolist()  # the nose tip, relative to the crop
[0.5, 0.52]
"""

import numpy as np

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")

#: Point order of the mirror image: after a horizontal flip, point k of the
#: flipped face is point `MIRROR_ORDER[k]` of the original (eyes and mouth
#: corners swap, so that "left" stays image left; the nose stays).
MIRROR_ORDER = (1, 0, 2, 4, 3)

#: The canonical face, float64 (5, 2), in the normalised frame [-1, 1].
CANONICAL = np.array([[-0.39, -0.40], [0.39, -0.40], [0.0, 0.04], [-0.34, 0.36], [0.34, 0.36]], dtype="float64")


def canonical_relative():
    """`CANONICAL` as relative (x, y) positions in [0, 1] of the crop.

    Returns:
        float64 (5, 2): `(CANONICAL + 1) / 2` (0 and 1 are the crop's outer edges).

    Example:

    >>> canonical_relative()[0].tolist()  # the left eye
    [0.305, 0.3]
    """
    return (CANONICAL + 1.0) / 2.0
