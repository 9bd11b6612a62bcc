"""Defaults that depend on the data and the architecture."""

from trainer.config import TrainConfig, config_differences


def test_sample_data_gets_the_quick_configuration():
    cfg = TrainConfig().resolved()
    assert (cfg.img_size, cfg.width, cfg.batch_size, cfg.lr) == (96, 16, 4, 1e-3)
    data = TrainConfig(data="d").resolved()
    assert (data.img_size, data.batch_size, data.lr) == (256, 8, 1e-3)
    pretrained = TrainConfig(arch="pretrained_attention_r2unet").resolved()
    assert pretrained.lr == 1e-4


def test_pretrained_encoder_learning_rates():
    cfg = TrainConfig(data="d", arch="pretrained_attention_r2unet").resolved()
    assert (cfg.encoder_weights, cfg.lr, cfg.encoder_lr) == ("imagenet", 1e-4, 1e-5)
    own = TrainConfig(data="d", arch="pretrained_attention_r2unet", lr=2e-4).resolved()
    assert own.encoder_lr == 2e-5


def test_random_encoder_trains_like_a_scratch_model():
    cfg = TrainConfig(data="d", arch="pretrained_attention_r2unet", encoder_weights="none")
    resolved = cfg.resolved()
    assert (resolved.lr, resolved.encoder_lr) == (1e-3, 1e-3)


def test_multiclass_names_and_map():
    cfg = TrainConfig(classes=["cat", "dog"])
    assert cfg.num_classes == 3
    assert cfg.class_names == ["background", "cat", "dog"]
    assert cfg.class_map == {"cat": 1, "dog": 2}


def test_config_differences_ignore_resumable_options():
    saved = TrainConfig(data="d", lr=1e-3, epochs=5)
    diffs = config_differences(saved, {"epochs": 9, "lr": 0.1, "out": "x", "data": "d"})
    assert diffs == ["--lr: run has 0.001, given 0.1"]
