"""Keras model -> TFLite flatbuffer bytes: full-integer int8 (int8 in and out) or plain float32.

Never a dynamic-range model: int8 mode allows only TFLITE_BUILTINS_INT8 ops, so conversion fails
rather than silently leaving float ops in.
"""
from __future__ import annotations

import numpy as np

from fer_edge.convert.calibration import representative_dataset


def to_tflite(model, precision: str, calibration_x: np.ndarray | None = None) -> bytes:
    """Convert ``model`` (float32 Keras) to TFLite. ``calibration_x``: (N,48,48) uint8 faces, int8 only."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "int8":
        if calibration_x is None or len(calibration_x) == 0:
            raise ValueError("int8 conversion needs calibration faces")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset(calibration_x)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    elif precision != "float32":
        raise ValueError(f"precision {precision!r}: use int8 or float32")
    return bytes(converter.convert())
