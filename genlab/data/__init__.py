"""Data that needs no download: 2-D toys, scikit-learn digits, scikit-image photo patches, paired versions.

Modules: :mod:`~genlab.data.toys` (samplers), :mod:`~genlab.data.images` (digits, patches),
:mod:`~genlab.data.corruptions` (masks, pool/upsample, Sobel edges), :mod:`~genlab.data.datasets`
(``Dataset`` classes, splits, the ``get_dataset`` registry).
"""

from genlab.data.corruptions import apply_mask, box_mask, pixel_mask, pool_upsample, sobel_edges
from genlab.data.datasets import (
    DATASET_NAMES,
    ArrayDataset,
    DigitsDataset,
    EdgeDigits,
    GMMDataset,
    LowResDigits,
    MaskedDigits,
    PatchDataset,
    Split,
    ToyDataset,
    get_dataset,
    get_split,
    train_test_split,
)
from genlab.data.images import (
    GRAY_PHOTOS,
    RGB_PHOTOS,
    LabeledImages,
    PhotoPatches,
    load_digits,
    photo_patches,
)
from genlab.data.multimarginal import MultimarginalDataset, marginal_names
from genlab.data.user import (
    TensorFileDataset,
    as_dataset,
    register_dataset,
    registered_datasets,
    save_tensor_file,
    unregister_dataset,
)
from genlab.data.toys import TOY_NAMES, checkerboard, eight_gaussians, moons, pinwheel, swiss_roll, toy

__all__ = [
    "DATASET_NAMES",
    "GRAY_PHOTOS",
    "RGB_PHOTOS",
    "TOY_NAMES",
    "ArrayDataset",
    "DigitsDataset",
    "EdgeDigits",
    "GMMDataset",
    "LabeledImages",
    "LowResDigits",
    "MaskedDigits",
    "MultimarginalDataset",
    "PatchDataset",
    "PhotoPatches",
    "Split",
    "TensorFileDataset",
    "ToyDataset",
    "apply_mask",
    "as_dataset",
    "box_mask",
    "checkerboard",
    "eight_gaussians",
    "get_dataset",
    "get_split",
    "load_digits",
    "marginal_names",
    "moons",
    "photo_patches",
    "pinwheel",
    "pixel_mask",
    "pool_upsample",
    "register_dataset",
    "registered_datasets",
    "save_tensor_file",
    "sobel_edges",
    "swiss_roll",
    "toy",
    "train_test_split",
    "unregister_dataset",
]
