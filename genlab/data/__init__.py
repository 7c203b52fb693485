"""Data that needs no download: 2-D toys, scikit-learn digits, scikit-image photo patches, paired versions.

Modules: :mod:`~genlab.data.toys` (samplers), :mod:`~genlab.data.images` (digits, patches),
:mod:`~genlab.data.mnist` (MNIST-5k from the ``data`` extra, paired variants), :mod:`~genlab.data.folders`
(your own images through Pillow),
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
from genlab.data.folders import IMAGE_EXTENSIONS, ImageFolder, PairedImageFolder, list_images, read_image
from genlab.data.images import (
    GRAY_PHOTOS,
    RGB_PHOTOS,
    LabeledImages,
    PhotoPatches,
    load_digits,
    photo_patches,
)
from genlab.data.mnist import MNIST5K_SIZE, MNIST5kDataset, MNIST5kPairs, load_mnist5k, mnist5k_path
from genlab.data.multimarginal import MultimarginalDataset, marginal_names
from genlab.data.toys import TOY_NAMES, checkerboard, eight_gaussians, moons, pinwheel, swiss_roll, toy
from genlab.data.user import (
    TensorFileDataset,
    as_dataset,
    register_dataset,
    registered_datasets,
    save_tensor_file,
    unregister_dataset,
)

__all__ = [
    "DATASET_NAMES",
    "GRAY_PHOTOS",
    "IMAGE_EXTENSIONS",
    "MNIST5K_SIZE",
    "RGB_PHOTOS",
    "TOY_NAMES",
    "ArrayDataset",
    "DigitsDataset",
    "EdgeDigits",
    "GMMDataset",
    "ImageFolder",
    "LabeledImages",
    "LowResDigits",
    "MNIST5kDataset",
    "MNIST5kPairs",
    "MaskedDigits",
    "MultimarginalDataset",
    "PairedImageFolder",
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
    "list_images",
    "load_digits",
    "load_mnist5k",
    "marginal_names",
    "mnist5k_path",
    "moons",
    "photo_patches",
    "pinwheel",
    "pixel_mask",
    "pool_upsample",
    "read_image",
    "register_dataset",
    "registered_datasets",
    "save_tensor_file",
    "sobel_edges",
    "swiss_roll",
    "toy",
    "train_test_split",
    "unregister_dataset",
]
