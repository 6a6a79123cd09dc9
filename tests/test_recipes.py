"""minidl.recipes: per-data-set defaults, building a run, restoring it from its checkpoint."""
import numpy
import pytest
from cifar_files import make_cifar

import minidl
from minidl import recipes
from minidl.checkpoint import CheckpointError, save_checkpoint
from minidl.data.datasets import DIGITS_DIR
from minidl.data.transforms import (GlobalContrastNormalization, Normalize, RandomCrop,
                                    RandomHorizontalFlip, ZCAWhitening)
from minidl.nn import Dropout
from minidl.optim import SGD, Adam, LinearWarmup
from minidl.train import CHECKPOINT_NAME, Trainer, TrainingError

TINY = dict(limit=64, batch_size=32, epochs=2)


def test_every_data_set_has_defaults_and_given_values_replace_them():
    assert set(recipes.DEFAULTS) == set(minidl.data.DATASETS)
    digits = recipes.run_config("min-small", "digits")
    assert digits == {"model": "min-small", "dataset": "digits", "epochs": 6, "batch_size": 64,
                      "lr": recipes.CHOSEN_LR["min-small"], "momentum": 0.9,
                      "weight_decay": 5e-4, "optimizer": "sgd", "schedule": "cosine",
                      "warmup": 0, "seed": 0, "limit": None, "val_split": None,
                      "preprocess": "per-channel", "augment": "none", "precise_bn": None,
                      "overrides": {"dropout": 0.0, "init": "orthogonal"},
                      "minidl_version": minidl.__version__}
    cifar = recipes.run_config("min", "cifar10", epochs=3, warmup=None, pieces=2)
    assert (cifar["epochs"], cifar["warmup"], cifar["overrides"]) == \
        (3, 2, {"pieces": 2, "init": "orthogonal"})
    assert (cifar["preprocess"], cifar["augment"]) == ("gcn-zca", "crop-flip")
    assert recipes.run_config("nin", "svhn")["lr"] == 0.05
    assert recipes.run_config("nin", "digits", dropout=0.5, init="default")["overrides"] == \
        {"dropout": 0.5, "init": "default"}


def test_digits_runs_default_to_the_learning_rate_chosen_per_model():
    comparison = ("nin-small", "nin-bn-small", "maxout-nin-small", "mim-small", "min-small")
    assert set(recipes.CHOSEN_LR) == set(comparison)
    for name in comparison:
        assert recipes.run_config(name, "digits")["lr"] == recipes.CHOSEN_LR[name]
    assert recipes.run_config("mim-small", "digits", lr=0.2)["lr"] == 0.2
    assert recipes.run_config("mim-small", "digits", optimizer="adam")["lr"] == recipes.ADAM_LR
    assert recipes.run_config("mim-small", "mnist")["lr"] == recipes.DEFAULTS["mnist"]["lr"]
    assert recipes.run_config("mim", "digits")["lr"] == recipes.DEFAULTS["digits"]["lr"]


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
    ({"preprocess": "zca"}, ValueError,
     r"preprocess must be one of gcn-zca, per-image, per-channel, got 'zca'"),
    ({"augment": "flip"}, ValueError, r"augment must be one of none, crop, crop-flip"),
    ({"augment": "crop-flip"}, ValueError,
     r"augment crop-flip mirrors images, .* for digits use crop or none"),
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
                            "dropout": 0.0, "init": "orthogonal"}
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
    assert recipes.build_augmentation("svhn", "none") is None
    crop_flip = recipes.build_augmentation("cifar10")
    assert [type(t) for t in crop_flip.transforms] == [RandomCrop, RandomHorizontalFlip]
    (crop,) = recipes.build_augmentation("mnist", "crop").transforms
    assert (crop.size, crop.padding) == ((28, 28), 4)
    assert [type(t) for t in recipes.build_preprocessing("cifar100").transforms] == [
        GlobalContrastNormalization, ZCAWhitening]
    assert [type(t) for t in recipes.build_preprocessing("svhn").transforms] == [Normalize]
    for build, name in ((recipes.build_preprocessing, "zca"), (recipes.build_augmentation, "x")):
        with pytest.raises(ValueError, match=f"must be one of .*, got '{name}'"):
            build("cifar10", name)
    preprocessing, (train_x, train_y), val, (test_x, test_y) = recipes.load_splits("digits",
                                                                                   limit=50)
    assert val is None
    assert train_x.shape == (50, 1, 28, 28) and test_x.shape == (50, 1, 28, 28)
    assert abs(float(train_x.mean())) < 1e-5 and float(train_x.std()) == pytest.approx(1, 1e-4)
    raw, labels = recipes.load_data("digits", "test", limit=50)
    numpy.testing.assert_array_equal(preprocessing(raw), test_x)
    numpy.testing.assert_array_equal(labels, test_y)


def correlated_images(n=400, shape=(3, 4, 4), seed=0):
    """Images whose pixels are correlated (a random mixing of independent noise), in [0, 1]."""
    rng = numpy.random.default_rng(seed)
    d = int(numpy.prod(shape))
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / d + rng.uniform(0, 1, (n, 1))
    return ((x - x.min()) / (x.max() - x.min())).astype(numpy.float32).reshape(n, *shape)


def test_gcn_zca_normalizes_every_image_then_whitens_the_training_set():
    x = correlated_images()
    pipeline = recipes.build_preprocessing("cifar10", "gcn-zca").fit(x)
    gcn, zca = pipeline.transforms
    flat = gcn(x).reshape(len(x), -1).astype(numpy.float64)
    numpy.testing.assert_allclose(flat.mean(axis=1), 0, atol=1e-4)     # values of about 8
    numpy.testing.assert_allclose(numpy.linalg.norm(flat, axis=1), 55, rtol=1e-5)
    # whitened: covariance C (C + eps I)^-1 for the covariance C of the normalized images,
    # the identity but in the directions of variance below eps
    white = pipeline(x).reshape(len(x), -1).astype(numpy.float64)
    cov = numpy.cov(flat, rowvar=False, bias=True)
    expected = cov @ numpy.linalg.inv(cov + zca.eps * numpy.eye(len(cov)))
    numpy.testing.assert_allclose(numpy.cov(white, rowvar=False, bias=True), expected,
                                  atol=2e-4)
    strong = numpy.linalg.eigvalsh(cov) > 100 * zca.eps
    assert strong.sum() > len(cov) // 2
    spectrum = numpy.linalg.eigvalsh(numpy.cov(white, rowvar=False, bias=True))
    numpy.testing.assert_allclose(spectrum[-strong.sum():], 1, atol=0.011)
    numpy.testing.assert_allclose(white.mean(axis=0), 0, atol=1e-4)


def test_per_image_standardization_needs_no_fit_and_standardizes_each_image():
    x = correlated_images(20)
    pipeline = recipes.build_preprocessing("cifar10", "per-image").fit(x[:5])
    out = pipeline(x).reshape(20, -1).astype(numpy.float64)
    flat = x.reshape(20, -1).astype(numpy.float64)
    numpy.testing.assert_allclose(out, (flat - flat.mean(axis=1, keepdims=True))
                                  / flat.std(axis=1, ddof=1, keepdims=True), rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(out.std(axis=1, ddof=1), 1, rtol=1e-5)
    assert pipeline.state_dict() == {}


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    """A CIFAR-10 archive in the canonical format: 5 x 20 training images, 20 test images."""
    root = tmp_path_factory.mktemp("data")
    make_cifar(root / "cifar10", "cifar10", n=20)
    return root


@pytest.mark.parametrize("preprocess", recipes.PREPROCESSING)
def test_preprocessing_is_fitted_on_the_training_images_only(cifar_root, preprocess):
    preprocessing, train, val, test = recipes.load_splits("cifar10", cifar_root, limit=60,
                                                          val_split=0.25, preprocess=preprocess)
    (raw_train, labels), _ = recipes.split_validation(
        *recipes.load_data("cifar10", "train", cifar_root, limit=60), 0.25)
    by_hand = recipes.build_preprocessing("cifar10", preprocess).fit(raw_train)
    assert preprocessing.state_dict().keys() == by_hand.state_dict().keys()
    for key, state in by_hand.state_dict().items():
        for name, value in state.items():
            numpy.testing.assert_array_equal(preprocessing.state_dict()[key][name], value)
    numpy.testing.assert_array_equal(train[0], by_hand(raw_train))
    numpy.testing.assert_array_equal(train[1], labels)
    raw_test, _ = recipes.load_data("cifar10", "test", cifar_root, limit=60)
    numpy.testing.assert_array_equal(test[0], by_hand(raw_test))
    assert len(train[1]) == 45 and len(val[1]) == 15 and len(test[1]) == 20


@pytest.mark.parametrize("preprocess, augment", [("gcn-zca", "none"), ("per-image", "crop")])
def test_preprocess_and_augment_are_kept_in_the_checkpoint_and_restored(cifar_root, tmp_path,
                                                                        preprocess, augment):
    config = recipes.run_config("nin-small", "cifar10", limit=32, batch_size=16, epochs=2,
                                warmup=0, preprocess=preprocess, augment=augment)
    first = recipes.build_trainer(config, tmp_path, root=cifar_root, verbose=False)
    assert (first.train_loader.transform is None) == (augment == "none")
    first.epochs = 1
    first.fit()
    _, state, saved = recipes.read_run(tmp_path)
    assert (saved["preprocess"], saved["augment"]) == (preprocess, augment)
    model = recipes.load_run(tmp_path)
    raw, _ = recipes.load_data("cifar10", "test", cifar_root, limit=32)
    numpy.testing.assert_array_equal(model.prepare(raw), first.test_loader.dataset.tensors[0])
    resumed = recipes.build_trainer(saved, tmp_path, root=cifar_root, state=state, verbose=False)
    assert type(resumed.train_loader.transform) is type(first.train_loader.transform)
    numpy.testing.assert_array_equal(resumed.test_loader.dataset.tensors[0],
                                     first.test_loader.dataset.tensors[0])


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
    assert trainer.config == dict(config, device="cpu",
                                  data_dir=str(minidl.data.cache_dir().absolute()))
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


def test_a_checkpoint_from_before_preprocess_and_augment_gets_the_defaults(trained, tmp_path):
    out, config, _ = trained
    _, state, _ = recipes.read_run(out)
    for key in ("preprocess", "augment"):
        del state["config"][key]
    save_checkpoint(tmp_path / CHECKPOINT_NAME, state)
    _, old_state, old = recipes.read_run(tmp_path)
    assert (old["preprocess"], old["augment"]) == ("per-channel", "none")
    assert old_state["config"] is old
    raw, _ = recipes.load_data("digits", "test", limit=8)
    numpy.testing.assert_array_equal(recipes.load_run(tmp_path).prepare(raw),
                                     recipes.load_run(out).prepare(raw))


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


class FakeTrainer:
    """Stands in for build_trainer's Trainer: a validation accuracy per learning rate."""

    def __init__(self, config, accuracies, calls):
        self.config, self.accuracies = config, accuracies
        calls.append(config)

    def fit(self):
        accuracy = self.accuracies[self.config["lr"]]
        if accuracy is None:
            raise TrainingError("the loss became nan")
        return [{"val_accuracy": accuracy / 2, "val_loss": 2.0},
                {"val_accuracy": accuracy, "val_loss": 1.0 - accuracy}]


def fake_trainers(monkeypatch, accuracies):
    calls = []

    def build(config, out_dir=None, **options):
        assert out_dir is None and options["test"] is False
        return FakeTrainer(config, accuracies, calls)

    monkeypatch.setattr(recipes, "build_trainer", build)
    return calls


def test_sweep_picks_the_best_last_validation_accuracy_and_records_every_rate(monkeypatch):
    calls = fake_trainers(monkeypatch, {0.3: None, 0.1: 0.9, 0.03: 0.95, 0.01: 0.95})
    config = recipes.run_config("mim-small", "digits", epochs=6)
    chosen = recipes.sweep_lr(config, [0.3, 0.1, 0.03, 0.01], epochs=2, verbose=False)
    assert [c["lr"] for c in calls] == [0.3, 0.1, 0.03, 0.01]
    assert all(c["epochs"] == 2 and c["val_split"] == recipes.SWEEP_VAL_SPLIT for c in calls)
    assert chosen["lr"] == 0.03 and chosen["epochs"] == 6 and chosen["val_split"] is None
    assert chosen["lr_sweep"] == {
        "lrs": [0.3, 0.1, 0.03, 0.01], "epochs": 2, "val_split": recipes.SWEEP_VAL_SPLIT,
        "chosen": 0.03,
        "results": [{"lr": 0.3, "val_accuracy": None, "val_loss": None},
                    {"lr": 0.1, "val_accuracy": 0.9, "val_loss": pytest.approx(0.1)},
                    {"lr": 0.03, "val_accuracy": 0.95, "val_loss": pytest.approx(0.05)},
                    {"lr": 0.01, "val_accuracy": 0.95, "val_loss": pytest.approx(0.05)}]}
    own = recipes.sweep_lr(dict(config, val_split=0.1), [0.1], verbose=False)
    assert calls[-1]["val_split"] == 0.1 and own["lr_sweep"]["val_split"] == 0.1
    assert calls[-1]["epochs"] == recipes.SWEEP_EPOCHS


def test_sweep_errors(monkeypatch):
    fake_trainers(monkeypatch, {0.3: None, 0.1: None})
    config = recipes.run_config("mim-small", "digits")
    with pytest.raises(TrainingError, match="the loss diverged at every learning rate of "
                                            "0.3, 0.1; try smaller ones"):
        recipes.sweep_lr(config, [0.3, 0.1], verbose=False)
    with pytest.raises(ValueError, match="sweep_lr: lrs must hold at least one"):
        recipes.sweep_lr(config, [], verbose=False)
    with pytest.raises(ValueError, match=r"sweep_lr: lrs must be in \(0, inf\), got -0.1"):
        recipes.sweep_lr(config, [-0.1], verbose=False)


def test_a_real_sweep_trains_without_ever_reading_the_test_split(loaded_splits):
    config = recipes.run_config("nin-bn-small", "digits", **TINY)
    chosen = recipes.sweep_lr(config, [0.1, 0.01], epochs=1, verbose=False)
    assert loaded_splits == ["train", "train"]
    scores = [r["val_accuracy"] for r in chosen["lr_sweep"]["results"]]
    assert all(0 <= s <= 1 for s in scores)
    assert chosen["lr"] == [0.1, 0.01][scores.index(max(scores))]
