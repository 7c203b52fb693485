"""Networks: a time-conditioned MLP, a float-time diffusers U-Net wrapper, autoencoders, and a registry."""

from genlab.models.autoencoder import AutoEncoder, LinearAutoEncoder
from genlab.models.bridge_precond import BridgeCoeffs, DDBMPrecond, bridge_coeffs, bridge_loss_weight
from genlab.models.field import Field, Precond, call_net
from genlab.models.hvae import HVAE, LinearGaussianHVAE
from genlab.models.layers import FourierTimeFeatures, make_activation
from genlab.models.light_sb import LIGHT_SB_LR, LightSB, LightSBDrift, LightSBPlan, light_sb_field
from genlab.models.mlp import TimeMLP
from genlab.models.multimarginal_field import MultimarginalField, PathConditionedNet
from genlab.models.precond import EDMPrecond, EDMPreconditioner, MaskedOutput, edm_coeffs, edm_loss_weight
from genlab.models.registry import available_networks, build_network, network_config, register_network
from genlab.models.simplex_nets import SimplexMLP, SimplexUNet
from genlab.models.unet import UNet

__all__ = [
    "HVAE",
    "LIGHT_SB_LR",
    "AutoEncoder",
    "BridgeCoeffs",
    "DDBMPrecond",
    "EDMPrecond",
    "EDMPreconditioner",
    "Field",
    "FourierTimeFeatures",
    "LightSB",
    "LightSBDrift",
    "LightSBPlan",
    "LinearAutoEncoder",
    "LinearGaussianHVAE",
    "MaskedOutput",
    "MultimarginalField",
    "PathConditionedNet",
    "Precond",
    "SimplexMLP",
    "SimplexUNet",
    "TimeMLP",
    "UNet",
    "available_networks",
    "bridge_coeffs",
    "bridge_loss_weight",
    "build_network",
    "call_net",
    "edm_coeffs",
    "edm_loss_weight",
    "light_sb_field",
    "make_activation",
    "network_config",
    "register_network",
]
