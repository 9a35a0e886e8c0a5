"""Layers. Each family in its own module; every layer class is registered by name."""

from fastdnn.layers.base import Layer, checked_weight, get, registry, serialize
from fastdnn.layers.core import Activation, Dense, Input, InputLayer

__all__ = ["Activation", "Dense", "Input", "InputLayer", "Layer", "checked_weight", "get", "registry", "serialize"]
