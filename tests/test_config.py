import pytest

from cvae.core.config import Config, ConfigError, make_config, parse_overrides


def test_defaults_are_the_papers_values():
    config = Config()
    assert (config.lr, config.weight_decay, config.epochs, config.batch_size) == (5e-4, 1e-5, 150, 256)
    assert (config.plateau_patience, config.plateau_factor, config.grad_clip) == (8, 0.5, 1.0)
    assert (config.latent_dim, config.class_embed_dim, config.modality_embed_dim) == (128, 128, 64)
    assert (config.beta_warmup_epochs, config.beta_ramp_epochs) == (20, 100)


def test_profiles():
    assert make_config("smoke").data_source == "synthetic"
    assert make_config("quick").data_source == "medmnist" and make_config("quick").train_per_class == 1000
    assert make_config("full") == Config()


def test_unknown_profile_is_named():
    with pytest.raises(ConfigError, match="unknown profile 'fast'; choose one of smoke, quick, full"):
        make_config("fast")


def test_unknown_override_key_is_named():
    with pytest.raises(ConfigError, match="unknown config key 'latent'"):
        make_config("quick", ["latent=64"])


@pytest.mark.parametrize("item, message", [
    ("epochs=ten", "epochs must be an integer, got 'ten'"),
    ("lr=fast", "lr must be a number, got 'fast'"),
    ("encoder_conditioned=maybe", "encoder_conditioned must be true or false"),
    ("data_source=kaggle", "data_source must be one of medmnist, synthetic"),
    ("batch_size=0", "batch_size must be positive"),
    ("lr=2", r"lr must be in \(0, 1\)"),
    ("latent_dim", "not of the form key=value"),
    ("checkpoint_metric=lowest", "checkpoint_metric must be one of total, total_at_beta_max, got 'lowest'"),
])
def test_bad_values_are_named(item, message):
    with pytest.raises(ConfigError, match=message):
        make_config("quick", [item])


def test_overrides_are_typed():
    values = parse_overrides(["latent_dim=64", "gamma=2", "encoder_channels=8,16,32", "encoder_conditioned=false"])
    assert values == {"latent_dim": 64, "gamma": 2.0, "encoder_channels": (8, 16, 32), "encoder_conditioned": False}


def test_hash_is_stable_and_ignores_where_it_runs():
    a = make_config("quick")
    assert a.config_hash() == make_config("quick").config_hash()
    assert len(a.config_hash()) == 10
    assert a.replace(device="cpu", data_dir="/elsewhere").config_hash() == a.config_hash()
    assert a.replace(latent_dim=64).config_hash() != a.config_hash()
    assert a.replace(channels_last=False, threads=1, fused_adam=True).config_hash() == a.config_hash()
    # precision changes the numbers a run computes, so an fp32 run does not reuse a bf16 one
    assert a.replace(autocast="none").config_hash() != a.config_hash()


def test_dict_round_trip():
    config = make_config("smoke", {"encoder_channels": (8, 16, 32)})
    assert Config.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown config key"):
        Config.from_dict({**config.to_dict(), "bogus": 1})
