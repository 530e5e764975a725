"""Weight averaging (fer_edge/train/average.py): which epoch files are kept, the mean of the weights, and the
BatchNorm re-estimate on real FER faces."""
from __future__ import annotations

import numpy as np
import pytest

from fer_edge.common.labels import LABELS

keras = pytest.importorskip("keras")
from fer_edge.train.average import average_weights, epoch_file, kept_epochs, prune, recalibrate_batchnorm  # noqa: E402
from fer_edge.train.model import build_model  # noqa: E402


def _faces(fer_root, per_class: int = 20) -> np.ndarray:
    import cv2
    return np.stack([cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for label in LABELS
                     for f in sorted((fer_root / "train" / label).iterdir())[:per_class]])


def test_prune_keeps_the_last_epochs_and_drops_replayed_ones(tmp_path):
    for e in range(1, 8):
        f = epoch_file(tmp_path, e)
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(b"w")
    prune(tmp_path, keep=3, done=6)           # epoch 7 was saved, then a resume went back to epoch 6
    assert [e for e, _ in kept_epochs(tmp_path)] == [4, 5, 6]
    assert epoch_file(tmp_path, 12).name == "epoch-012.weights.h5"


def test_average_is_the_element_wise_mean_of_the_files(tmp_path):
    keras.utils.set_random_seed(1)
    models = [build_model("tiny", 0.0, 0.9) for _ in range(3)]
    files = []
    for i, m in enumerate(models):
        files.append(epoch_file(tmp_path, i + 1))
        files[-1].parent.mkdir(exist_ok=True)
        m.save_weights(files[-1])
    avg = average_weights(build_model("tiny", 0.0, 0.9), files)
    for got, *each in zip(avg, *(m.get_weights() for m in models)):
        np.testing.assert_allclose(got, np.mean(each, axis=0), rtol=1e-6, atol=1e-7)


def test_batchnorm_recalibration_normalises_each_layer_on_real_faces(fer_root):
    keras.utils.set_random_seed(2)
    model = build_model("tiny", 0.0, 0.9)      # untrained: its moving statistics are the initial 0 / 1
    x = _faces(fer_root)
    recalibrate_batchnorm(model, x)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns
    for layer in bns:
        out = np.asarray(keras.Model(model.inputs, layer.output).predict(x[..., None].astype(np.float32), verbose=0))
        out = out.reshape(-1, out.shape[-1])
        gamma, beta, var = (v.numpy() for v in (layer.gamma, layer.beta, layer.moving_variance))
        assert not np.allclose(var, 1.0)        # re-estimated, not the initial value
        # in inference mode each channel now comes out with mean beta and std |gamma| (less BatchNorm's epsilon)
        np.testing.assert_allclose(out.mean(0), beta, atol=1e-2)
        np.testing.assert_allclose(out.std(0), np.abs(gamma) * np.sqrt(var / (var + layer.epsilon)), rtol=1e-2, atol=1e-3)
