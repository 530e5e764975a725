"""The sections of training and conversion: ``data``, ``train`` (with ``augment``), ``teacher``, ``convert``."""
from __future__ import annotations

from dataclasses import dataclass

from fer_edge.common.config.fields import ConfigError, Section, section, setting
from fer_edge.common.yamlsafe import short

NUM = (int, float)


@dataclass(frozen=True)
class DataConfig(Section):
    root: str = setting(str, "../shared/data/fer2013")
    cache_dir: str = setting(str, ".cache/fer2013")
    val_fraction: float = setting(float, 0.1, min=0.0, max=0.5)
    test_subset: str = setting(str, "all", choices=("all", "PublicTest", "PrivateTest"))
    max_per_class: int = setting(int, 0, min=0)
    seed: int = setting(int, 1337, min=0)
    labels: str = setting(str, "fer2013", choices=("fer2013", "ferplus"))
    ferplus_csv: str = setting(str, "")
    label_blend: float = setting(NUM, 0.0, min=0.0, max=1.0)


@dataclass(frozen=True)
class AugmentConfig(Section):
    hflip: bool = setting(bool, True)
    rotation_deg: float = setting(NUM, 12.0, min=0, max=90)
    shear_deg: float = setting(NUM, 8.0, min=0, max=45)
    zoom: float = setting(NUM, 0.12, min=0, max=0.9)
    shift: float = setting(NUM, 0.1, min=0, max=0.5)
    brightness: float = setting(NUM, 0.2, min=0, max=1.0)
    contrast: float = setting(NUM, 0.2, min=0, max=1.0)
    erasing_prob: float = setting(NUM, 0.5, min=0, max=1.0)
    mixup_alpha: float = setting(NUM, 0.0, min=0, max=10.0)
    cutmix_alpha: float = setting(NUM, 0.0, min=0, max=10.0)
    mix_prob: float = setting(NUM, 0.5, min=0, max=1.0)


@dataclass(frozen=True)
class TrainConfig(Section):
    arch: str = setting(str, "default", choices=("default", "seed", "tiny"))
    runs_dir: str = setting(str, "runs")
    epochs: int = setting(int, 50, min=1, max=10000)
    batch_size: int = setting(int, 128, min=1, max=4096)
    optimizer: str = setting(str, "adamw", choices=("adam", "adamw"))
    learning_rate: float = setting(float, 0.002, min=1e-7, max=1.0)
    weight_decay: float = setting(float, 0.0005, min=0.0, max=1.0)
    lr_schedule: str = setting(str, "cosine", choices=("cosine", "plateau"))
    warmup_epochs: int = setting(int, 2, min=0)
    min_lr: float = setting(float, 1e-6, min=0.0, max=1.0)
    plateau_factor: float = setting(float, 0.5, min=0.01, max=0.99)
    plateau_patience: int = setting(int, 4, min=1)
    early_stopping_patience: int = setting(int, 15, min=1)
    average_last: int = setting(int, 0, min=0, max=1000)
    label_smoothing: float = setting(float, 0.1, min=0.0, max=0.5)
    class_weight: str = setting(str, "sqrt", choices=("none", "sqrt", "balanced"))
    dropout: float = setting(float, 0.4, min=0.0, max=0.9)
    bn_momentum: float = setting(float, 0.99, min=0.0, max=0.9999)
    precision: str = setting(str, "auto", choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"))
    seed: int = setting(int, 1337, min=0)
    verbose: int = setting(int, 1, choices=(0, 1, 2))
    export_seed_format: bool = setting(bool, False)
    tensorboard: bool = setting(bool, True)
    augment: AugmentConfig = section(AugmentConfig)


@dataclass(frozen=True)
class TeacherConfig(Section):
    models: tuple[str, ...] = setting(list, [])
    temperature: float = setting(NUM, 2.0, min=0.1, max=20)
    hard_weight: float = setting(NUM, 0.5, min=0.0, max=1.0)
    mirror: bool = setting(bool, True)
    cache_dir: str = setting(str, ".cache/teachers")

    def check(self) -> None:
        t = list(self.models)
        if not all(isinstance(x, str) and x for x in t):
            raise ConfigError(f"config key 'teacher.models': {short(t)}: give a list of .keras or .tflite paths")
        if any(not x.endswith((".keras", ".tflite")) for x in t):
            raise ConfigError(f"config key 'teacher.models': {short(t)}: each teacher is a .keras or a .tflite file")


@dataclass(frozen=True)
class ConvertConfig(Section):
    model: str = setting(str, "auto")
    output_dir: str = setting(str, "models")
    name: str = setting(str, "emotion")
    precision: str = setting(str, "int8", choices=("int8", "float32"))
    calibration_size: int = setting(int, 500, min=7, max=100000)
    max_top1_drop: float = setting(NUM, 1.0, min=0, max=100)
    min_agreement: float = setting(NUM, 0.97, min=0, max=1)
    eval_max_images: int = setting(int, 0, min=0)
    mirror: bool | str = setting((bool, str), "auto")          # true, false, auto or a converted model's .tflite
    temperature: float | str = setting((int, float, str), 1.0)  # a number or auto
    logit_adjust: float = setting(NUM, 0.0, min=-2.0, max=2.0)

    def check(self) -> None:
        mirror, temp = self.mirror, self.temperature
        if isinstance(mirror, str) and mirror != "auto" and not mirror.endswith(".tflite"):
            raise ConfigError(f"config key 'convert.mirror': {short(mirror)}: give true, false, auto (decide on the "
                              "validation hold-out) or a converted model's .tflite path (take the choice recorded in "
                              "its contract)")
        if isinstance(temp, str) and temp != "auto" or not isinstance(temp, str) and not 0.1 <= temp <= 10:
            raise ConfigError(f"config key 'convert.temperature': {temp!r}: give auto (fit on the validation hold-out) "
                              "or a number from 0.1 to 10 (1 = the model's own confidence)")
