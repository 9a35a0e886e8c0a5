"""Layers. Each family in its own module; every layer class is registered by name."""

from fastdnn.layers.base import Layer, checked_weight, get, registry, serialize
from fastdnn.layers.conv import Conv1D, Conv2D
from fastdnn.layers.core import Activation, Dense, Input, InputLayer
from fastdnn.layers.embedding import Embedding
from fastdnn.layers.merging import Add, Average, Concatenate, Dot, Maximum, Merge, Minimum, Multiply, Subtract
from fastdnn.layers.normalization import BatchNormalization
from fastdnn.layers.pooling import (
    AveragePooling1D,
    AveragePooling2D,
    AvgPool1D,
    AvgPool2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPool1D,
    MaxPool2D,
    MaxPooling1D,
    MaxPooling2D,
)
from fastdnn.layers.recurrent import GRU, LSTM, SimpleRNN
from fastdnn.layers.regularization import Dropout
from fastdnn.layers.reshaping import Flatten, Reshape

__all__ = [
    "Activation",
    "Add",
    "Average",
    "Concatenate",
    "Dot",
    "Maximum",
    "Merge",
    "Minimum",
    "Multiply",
    "Subtract",
    "AveragePooling1D",
    "AveragePooling2D",
    "AvgPool1D",
    "AvgPool2D",
    "BatchNormalization",
    "Conv1D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GRU",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "Input",
    "InputLayer",
    "LSTM",
    "Layer",
    "MaxPool1D",
    "MaxPool2D",
    "MaxPooling1D",
    "MaxPooling2D",
    "Reshape",
    "SimpleRNN",
    "checked_weight",
    "get",
    "registry",
    "serialize",
]
