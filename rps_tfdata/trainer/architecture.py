"""The seed's CNN's shape: its conv/pool stages and the smallest image they take.

No TensorFlow here: the trainer's settings (`config`) refuse an image size the CNN cannot
take before TensorFlow starts; `model` builds the CNN from these stages.
"""

CONV_FILTERS = (64, 64, 128, 128)


def feature_map_size(image_size: int) -> int:
    """Side of the last pooled feature map: each stage is a valid 3x3 conv, then 2x2 pool."""
    for _ in CONV_FILTERS:
        image_size = (image_size - 2) // 2
    return image_size


def min_image_size() -> int:
    """Smallest square side whose last feature map is at least 1x1 (46 for four stages)."""
    size = 3
    while feature_map_size(size) < 1:
        size += 1
    return size
