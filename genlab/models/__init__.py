"""Networks: a time-conditioned MLP, a float-time diffusers U-Net wrapper, autoencoders, and a registry."""

from genlab.models.autoencoder import AutoEncoder, LinearAutoEncoder
from genlab.models.field import Field, Precond
from genlab.models.layers import FourierTimeFeatures, make_activation
from genlab.models.mlp import TimeMLP
from genlab.models.multimarginal_field import MultimarginalField
from genlab.models.registry import available_networks, build_network, network_config, register_network
from genlab.models.unet import UNet

__all__ = [
    "AutoEncoder",
    "Field",
    "FourierTimeFeatures",
    "LinearAutoEncoder",
    "MultimarginalField",
    "Precond",
    "TimeMLP",
    "UNet",
    "available_networks",
    "build_network",
    "make_activation",
    "network_config",
    "register_network",
]
