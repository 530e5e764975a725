"""Named Keras 3 Functional architectures. All take raw 0..255 grayscale pixels (48x48x1).

Every conv is Conv2D(use_bias=False) -> BatchNormalization -> ReLU, so BatchNorm folds into the
conv at int8 conversion. Rescaling lives inside the model.
"""
from __future__ import annotations

import keras
from keras import layers

from fer_edge.common.labels import NUM_CLASSES
from fer_edge.common.preprocess import INPUT_SIZE


def _cbr(x, filters: int, kernel: int, bn_momentum: float, name: str):
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, kernel_initializer="he_normal",
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _dense_br(x, units: int, bn_momentum: float, name: str):
    x = layers.Dense(units, use_bias=False, kernel_initializer="he_normal", name=f"{name}_dense")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _inputs():
    inp = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="pixels")
    return inp, layers.Rescaling(1.0 / 255.0, name="rescale")(inp)


def build_default(dropout: float = 0.4, bn_momentum: float = 0.99, classes: int = NUM_CLASSES) -> keras.Model:
    """VGG-style: 4 stages of two 3x3 convs (32/64/128/256), max-pool between stages, then a 3x3
    spatial map flattened into a 256-unit layer. ~1.8M params, ~118M MACs per face: the spatial
    head keeps *where* features are (mouth vs. eyes), which global pooling would throw away."""
    inp, x = _inputs()
    for stage, filters in enumerate((32, 64, 128, 256), start=1):
        x = _cbr(x, filters, 3, bn_momentum, f"s{stage}a")
        x = _cbr(x, filters, 3, bn_momentum, f"s{stage}b")
        x = layers.MaxPooling2D(2, name=f"s{stage}_pool")(x)   # 48->24->12->6->3
        if stage >= 3:
            x = layers.SpatialDropout2D(0.1, name=f"s{stage}_sdrop")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(dropout, name="drop1")(x)
    x = _dense_br(x, 256, bn_momentum, "fc1")
    x = layers.Dropout(dropout, name="drop2")(x)
    out = layers.Dense(classes, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inp, out, name="default")


def build_seed(dropout: float = 0.25, bn_momentum: float = 0.99, classes: int = NUM_CLASSES) -> keras.Model:
    """The seeds' CNN: conv blocks of 64/128/512/512 filters (3x3, 5x5, 3x3, 3x3), each with
    BatchNorm, MaxPool and Dropout, then Dense 256 and Dense 512 (~4.5M params)."""
    inp, x = _inputs()
    for i, (filters, k) in enumerate(((64, 3), (128, 5), (512, 3), (512, 3)), start=1):
        x = _cbr(x, filters, k, bn_momentum, f"b{i}")
        x = layers.MaxPooling2D(2, name=f"b{i}_pool")(x)
        x = layers.Dropout(0.25, name=f"b{i}_drop")(x)
    x = layers.Flatten(name="flatten")(x)
    for units in (256, 512):
        x = _dense_br(x, units, bn_momentum, f"fc{units}")
        x = layers.Dropout(dropout, name=f"fc{units}_drop")(x)
    out = layers.Dense(classes, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inp, out, name="seed")


def build_tiny(dropout: float = 0.2, bn_momentum: float = 0.9, classes: int = NUM_CLASSES) -> keras.Model:
    """A ~25k-param net for smoke tests and CI; same layer kinds as `default`."""
    inp, x = _inputs()
    for stage, filters in enumerate((8, 16, 32), start=1):
        x = _cbr(x, filters, 3, bn_momentum, f"s{stage}")
        x = layers.MaxPooling2D(2, name=f"s{stage}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="drop")(x)
    out = layers.Dense(classes, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inp, out, name="tiny")


ARCHITECTURES = {"default": build_default, "seed": build_seed, "tiny": build_tiny}


def build_model(arch: str, dropout: float, bn_momentum: float, classes: int = NUM_CLASSES) -> keras.Model:
    try:
        builder = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}") from None
    return builder(dropout=dropout, bn_momentum=bn_momentum, classes=classes)


def to_float32(model):
    """Rebuild a (possibly mixed-precision) trained model as pure float32, same weights."""
    import keras
    if all(getattr(layer, "compute_dtype", "float32") == "float32" for layer in model.layers):
        return model
    old = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        clean = build_model(model.name, dropout=0.0, bn_momentum=0.99, classes=int(model.output_shape[-1]))
    finally:
        keras.mixed_precision.set_global_policy(old)
    clean.set_weights(model.get_weights())
    return clean
