"""minidl.recipes: per-data-set defaults, building a run, restoring it from its checkpoint."""
import numpy
import pytest

import minidl
from minidl import recipes
from minidl.checkpoint import CheckpointError, save_checkpoint
from minidl.data.datasets import DIGITS_DIR
from minidl.data.transforms import ZCAWhitening
from minidl.nn import Dropout
from minidl.optim import SGD, Adam, LinearWarmup
from minidl.train import CHECKPOINT_NAME, Trainer

TINY = dict(limit=64, batch_size=32, epochs=2)


def test_every_data_set_has_defaults_and_given_values_replace_them():
    assert set(recipes.DEFAULTS) == set(minidl.data.DATASETS)
    digits = recipes.run_config("min-small", "digits")
    assert digits == {"model": "min-small", "dataset": "digits", "epochs": 6, "batch_size": 64,
                      "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "optimizer": "sgd",
                      "schedule": "cosine", "warmup": 0, "seed": 0, "limit": None,
                      "val_split": None, "precise_bn": None, "overrides": {"dropout": 0.0}, "minidl_version": minidl.__version__}
    cifar = recipes.run_config("min", "cifar10", epochs=3, warmup=None, pieces=2)
    assert (cifar["epochs"], cifar["warmup"], cifar["overrides"]) == (3, 2, {"pieces": 2})
    assert recipes.run_config("nin", "svhn")["lr"] == 0.05
    assert recipes.run_config("nin", "digits", dropout=0.5)["overrides"] == {"dropout": 0.5}


def test_adam_takes_its_own_default_rate_unless_one_is_given():
    assert recipes.hyperparameters("mnist", optimizer="adam")["lr"] == recipes.ADAM_LR
    assert recipes.hyperparameters("mnist", optimizer="adam", lr=0.01)["lr"] == 0.01
    assert recipes.hyperparameters("mnist")["lr"] == 0.1


@pytest.mark.parametrize("given, error, message", [
    ({"warmup": 6}, ValueError, r"hyperparameters: warmup must be in \[0, 6\), got 6"),
    ({"epochs": 0}, ValueError, r"hyperparameters: epochs must be >= 1, got 0"),
    ({"batch_size": 2.5}, TypeError, r"batch_size must be an integer, got 2.5"),
    ({"lr": 0.0}, ValueError, r"lr must be in \(0, inf\), got 0.0"),
    ({"seed": True}, TypeError, r"seed must be an integer, got True"),
    ({"limit": 0}, ValueError, r"limit must be >= 1, got 0"),
    ({"schedule": "linear"}, ValueError, r"schedule must be one of cosine, step, none"),
    ({"momentun": 0.5}, ValueError, r"unknown setting\(s\) 'momentun'"),
])
def test_hyperparameters_are_checked(given, error, message):
    with pytest.raises(error, match=message):
        recipes.hyperparameters("digits", **given)


def test_unknown_names_and_bad_overrides_are_refused_before_any_model_is_built():
    with pytest.raises(ValueError, match="unknown data set 'imagenet'"):
        recipes.run_config("min", "imagenet")
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        recipes.run_config("resnet", "digits")
    with pytest.raises(ValueError, match=r"unknown override\(s\) 'pieces' for model 'nin'"):
        recipes.run_config("nin", "digits", pieces=3)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.5"):
        recipes.run_config("min", "digits", dropout=1.5)


def test_build_model_applies_the_overrides():
    model = recipes.build_model(recipes.run_config("min-small", "digits", pieces=3))
    assert model.config == {"name": "min-small", "dataset": "digits", "pieces": 3,
                            "dropout": 0.0}
    assert not any(isinstance(m, Dropout) for m in model.modules())
    assert model.training


def test_build_optimizer_decays_weights_only():
    model = recipes.build_model(recipes.run_config("nin-bn-small", "digits"))
    sgd = recipes.build_optimizer(model, recipes.run_config("nin-bn-small", "digits"))
    assert isinstance(sgd, SGD)
    decays = sorted(g["weight_decay"] for g in sgd.param_groups)
    assert decays == [0.0, 5e-4]
    assert all(g["lr"] == 0.1 and g["momentum"] == 0.9 for g in sgd.param_groups)
    for group in sgd.param_groups:      # decay on conv weights, not biases or BN parameters
        assert all((p.ndim == 4) == (group["weight_decay"] > 0) for p in group["params"])
    adam = recipes.build_optimizer(model, recipes.run_config("nin-bn-small", "digits",
                                                             optimizer="adam"))
    assert isinstance(adam, Adam) and adam.param_groups[0]["lr"] == recipes.ADAM_LR


def rates(schedule, optimizer, steps):
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        schedule.step()
    return out


def test_build_schedule_warms_up_then_follows_the_schedule_in_iterations():
    config = recipes.run_config("nin-small", "digits", epochs=3, warmup=1, schedule="step",
                                lr=1.0)
    model = recipes.build_model(config)
    optimizer = recipes.build_optimizer(model, config)
    lrs = rates(recipes.build_schedule(optimizer, config, steps_per_epoch=4), optimizer, 12)
    # 4 warm-up steps from 0.1, then 8 steps divided by 10 at steps 4 and 6 of them
    assert lrs[:5] == pytest.approx([0.1, 0.325, 0.55, 0.775, 1.0])
    assert lrs[4:] == pytest.approx([1.0] * 4 + [0.1] * 2 + [0.01] * 2)

    cosine = recipes.run_config("nin-small", "digits", epochs=2, lr=1.0)
    optimizer = recipes.build_optimizer(model, cosine)
    lrs = rates(recipes.build_schedule(optimizer, cosine, steps_per_epoch=2), optimizer, 5)
    assert lrs == pytest.approx([1.0, 0.5 + 0.5 ** 0.5 / 2, 0.5, 0.5 - 0.5 ** 0.5 / 2, 0.0])

    constant = recipes.run_config("nin-small", "digits", schedule="none")
    assert recipes.build_schedule(optimizer, constant, 10) is None
    ramp = recipes.run_config("nin-small", "digits", schedule="none", warmup=1)
    assert isinstance(recipes.build_schedule(optimizer, ramp, 10), LinearWarmup)


def test_preprocessing_and_augmentation_per_data_set():
    assert recipes.build_augmentation("digits") is None
    assert recipes.build_augmentation("cifar10") is not None
    assert any(isinstance(t, ZCAWhitening)
               for t in recipes.build_preprocessing("cifar100").transforms)
    preprocessing, (train_x, train_y), val, (test_x, test_y) = recipes.load_splits("digits",
                                                                                   limit=50)
    assert val is None
    assert train_x.shape == (50, 1, 28, 28) and test_x.shape == (50, 1, 28, 28)
    assert abs(float(train_x.mean())) < 1e-5 and float(train_x.std()) == pytest.approx(1, 1e-4)
    raw, labels = recipes.load_data("digits", "test", limit=50)
    numpy.testing.assert_array_equal(preprocessing(raw), test_x)
    numpy.testing.assert_array_equal(labels, test_y)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A short run of nin-small on 64 digits, written to a run folder."""
    out = tmp_path_factory.mktemp("run")
    config = recipes.run_config("nin-small", "digits", **TINY)
    trainer = recipes.build_trainer(config, out, verbose=False)
    trainer.fit()
    return out, config, trainer


def test_build_trainer_sets_up_the_run_of_its_config(trained):
    _, config, trainer = trained
    assert isinstance(trainer, Trainer)
    assert trainer.config == dict(config, device="cpu")
    assert trainer.train_loader.num_samples() == 64 and len(trainer.train_loader) == 2
    assert trainer.epochs == 2 and trainer.global_step == 4
    assert trainer.model.config["name"] == "nin-small"
    assert trainer.model.config["dropout"] == 0.0


def test_a_restored_run_predicts_exactly_what_the_trained_model_did(trained):
    out, config, trainer = trained
    path, state, saved = recipes.read_run(out)
    assert path == out / CHECKPOINT_NAME and saved == trainer.config
    assert recipes.read_run(path)[2] == saved
    model = recipes.restore_model(state)
    assert not model.training
    x, _ = recipes.load_data("digits", "test", limit=64,
                             preprocessing=recipes.restore_preprocessing(state))
    numpy.testing.assert_array_equal(x, trainer.test_loader.dataset.tensors[0])
    trainer.model.eval()
    with minidl.no_grad():
        numpy.testing.assert_array_equal(model(minidl.tensor(x)).data,
                                         trainer.model(minidl.tensor(x)).data)


def test_a_run_resumed_from_its_checkpoint_ends_where_one_straight_run_ends(trained, tmp_path):
    out, config, straight = trained
    first = recipes.build_trainer(config, tmp_path, verbose=False)
    first.epochs = 1                    # stop after epoch 1 of the 2 the schedule is built for
    first.fit()
    _, state, saved = recipes.read_run(tmp_path)
    resumed = recipes.build_trainer(config, tmp_path, state=state, verbose=False)
    assert resumed.epoch == 1 and resumed.config == saved
    resumed.fit()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and all(numpy.array_equal(a[k], b[k]) for k in a)


def test_load_run_refuses_a_checkpoint_without_a_run_config(tmp_path):
    save_checkpoint(tmp_path / "bare.npz", {"model": {}})
    with pytest.raises(CheckpointError, match="bare.npz has no run config"):
        recipes.read_run(tmp_path / "bare.npz")
    with pytest.raises(CheckpointError, match="does not exist"):
        recipes.read_run(tmp_path)


def test_load_run_predicts_on_raw_images_what_the_trainer_scored(trained):
    out, config, trainer = trained
    model = minidl.load_run(out)
    assert isinstance(model, recipes.TrainedModel) and not model.training
    raw, labels = recipes.load_data("digits", "test", limit=64)          # floats in [0, 1]
    classes, probabilities = model.predict(raw)
    trainer.model.eval()
    with minidl.no_grad():
        logits = trainer.model(minidl.tensor(trainer.test_loader.dataset.tensors[0])).data
    numpy.testing.assert_array_equal(classes, logits.argmax(axis=1))
    assert classes.dtype == numpy.int64 and probabilities.dtype == numpy.float32
    numpy.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    assert (probabilities.argmax(axis=1) == classes).all()
    pixels = minidl.data.read_array(DIGITS_DIR / "test-images-idx3-ubyte.gz")[:64]  # uint8
    numpy.testing.assert_array_equal(model.predict(pixels, batch_size=7)[0], classes)
    one, p = model.predict(pixels[5])                                  # H x W: one image
    assert one.tolist() == [classes[5]] and p.shape == (1, 10)
    numpy.testing.assert_array_equal(model.predict(pixels[:, None])[0], classes)  # N x C x H x W


def test_predict_refuses_images_it_cannot_take(trained):
    model = minidl.load_run(trained[0])
    with pytest.raises(ValueError, match=r"predict: images must be 28x28 or Nx28x28 \(or "
                                         r"Nx1x28x28\) for a model trained on digits, got "
                                         r"shape \(1, 3, 28, 28\)"):
        model.predict(numpy.zeros((3, 28, 28), numpy.uint8)[None])
    with pytest.raises(TypeError, match="images must be uint8 pixels or floats in"):
        model.predict(numpy.zeros((28, 28), bool))
    with pytest.raises(ValueError, match="predict: batch_size must be"):
        model.predict(numpy.zeros((28, 28), numpy.uint8), batch_size=0)


def test_split_validation_is_stratified_seeded_and_disjoint():
    images = numpy.arange(100.0)
    labels = numpy.repeat(numpy.arange(4), [40, 30, 20, 10])
    (train_x, train_y), (val_x, val_y) = recipes.split_validation(images, labels, 0.2, seed=3)
    assert numpy.bincount(val_y).tolist() == [8, 6, 4, 2]                 # 20% of each class
    assert sorted(numpy.concatenate([train_x, val_x]).tolist()) == images.tolist()
    assert (numpy.diff(train_x) > 0).all() and (numpy.diff(val_x) > 0).all()   # order kept
    again = recipes.split_validation(images, labels, 0.2, seed=3)[1][0]
    other = recipes.split_validation(images, labels, 0.2, seed=4)[1][0]
    assert numpy.array_equal(again, val_x) and not numpy.array_equal(other, val_x)
    with pytest.raises(ValueError, match="val_split 0.01 of 100 training images leaves no "
                                         "validation images"):
        recipes.split_validation(images, labels, 0.01)
    with pytest.raises(ValueError, match=r"hyperparameters: val_split must be in \(0, 1\)"):
        recipes.hyperparameters("digits", val_split=1.0)


def test_val_split_fits_the_preprocessing_on_the_training_part_only():
    preprocessing, train, val, test = recipes.load_splits("digits", limit=200, val_split=0.5)
    assert len(train[1]) + len(val[1]) == 200 and len(test[1]) == 200
    assert abs(float(train[0].mean())) < 1e-5 and abs(float(val[0].mean())) > 1e-4
