import keras
import numpy as np
import pytest

import agekeras
from agekeras import tables
from agekeras.experiments import al_resnet as X

K, AGE_MIN, SIZE = 20, 10, 64


def _images(n=4, seed=0, size=SIZE):
    return np.random.RandomState(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


@pytest.fixture(scope="module")
def al_ror():
    return agekeras.models.get("al_ror34", input_shape=(SIZE, SIZE, 3), num_classes=K, age_min=AGE_MIN)


def test_eq5_fusion_in_the_model(al_ror):
    out = X.predict_al_outputs(al_ror, _images(3, seed=1))
    p = (out["age_probs_global"] + 0.5 * out["age_probs_local"]) / 1.5
    np.testing.assert_allclose(out["probs_final"], p, atol=1e-6)
    np.testing.assert_allclose(X.final_probs(out), p, atol=1e-6)
    np.testing.assert_allclose(out["age"], p @ (np.arange(K) + AGE_MIN), rtol=1e-5)
    box = out["box"]
    assert box.shape == (3, 4) and np.all(box[:, :2] >= 0) and np.all(box[:, :2] + box[:, 2:] <= 1 + 1e-6)
    assert X.local_weight(al_ror) == 0.5 and X.is_al_model(al_ror)


def test_model_lstm_state_carries_across_images(al_ror):
    a, a2, b = _images(1, 5), _images(1, 6), _images(1, 7)
    assert al_ror.get_layer("locator").inference_mode == "independent"  # the default
    X.set_inference_mode(al_ror, "sequence")
    inspect = X.inspection_model(al_ror)
    box_b = inspect.predict(np.concatenate([a, b]), verbose=0)["box"][1]
    box_b2 = inspect.predict(np.concatenate([a2, b]), verbose=0)["box"][1]
    assert np.abs(box_b - box_b2).max() > 1e-5
    X.set_inference_mode(al_ror, "independent")
    inspect = X.inspection_model(al_ror)
    box_b = inspect.predict(np.concatenate([a, b]), verbose=0)["box"][1]
    box_b2 = inspect.predict(np.concatenate([a2, b]), verbose=0)["box"][1]
    np.testing.assert_allclose(box_b, box_b2, atol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        X.set_inference_mode(al_ror, "batch")


def test_helpers_refuse_a_plain_model():
    plain = agekeras.models.get("ror34_dex", input_shape=(32, 32, 3), num_classes=K, age_min=AGE_MIN)
    assert not X.is_al_model(plain)
    with pytest.raises(ValueError, match="an AL model"):
        X.inspection_model(plain)
    out = X.predict_al_outputs(plain, _images(2, size=32))  # a plain model: its own outputs
    assert set(out) == {"age", "age_probs"}


def test_ten_crops_and_ten_crop_predict(al_ror):
    images = np.arange(2 * 68 * 68 * 3, dtype="float32").reshape(2, 68, 68, 3) % 255
    crops = X.ten_crops(images, SIZE)
    assert len(crops) == 10 and all(c.shape == (2, SIZE, SIZE, 3) for c in crops)
    np.testing.assert_array_equal(crops[0], images[:, :SIZE, :SIZE])
    np.testing.assert_array_equal(crops[3], images[:, 4:, 4:])
    np.testing.assert_array_equal(crops[4], images[:, 2:66, 2:66])
    np.testing.assert_array_equal(crops[9], crops[4][:, :, ::-1])
    probs, ages = X.ten_crop_predict(al_ror, images, AGE_MIN)
    want = np.mean([X.final_probs(al_ror.predict(c, verbose=0)) for c in crops], axis=0)
    np.testing.assert_allclose(probs, want, atol=1e-6)
    np.testing.assert_allclose(ages, want @ (np.arange(K) + AGE_MIN), rtol=1e-6)
    with pytest.raises(ValueError, match="at least"):
        X.ten_crops(images[:, :40], SIZE)


def test_ablation_rows_and_group_metrics():
    pg = np.eye(3)[[0, 1, 2]]
    pl = np.eye(3)[[2, 2, 2]]
    rows = X.ablation_rows({"age_probs_global": pg, "age_probs_local": pl}, [20, 21, 22], 20,
                           setting={"dataset": "toy"})
    assert [r["method"] for r in rows] == ["global only", "local only", "global + local (Eq. 5)"]
    assert rows[0]["MAE"] == 0.0 and rows[1]["MAE"] == pytest.approx(1.0)
    fused = np.array([20 + 2 / 3 * 0 + 1 / 3 * 2, 21 * 2 / 3 + 22 / 3, 22])
    assert rows[2]["MAE"] == pytest.approx(np.mean(np.abs(fused - [20, 21, 22])))
    assert all(r["dataset"] == "toy" for r in rows)
    g = X.group_metrics([1, 5, 30, 70], [1, 10, 45, 65])  # groups 0,1,4,7 vs 0,2,5,7
    assert g == {"acc (%)": 50.0, "1-off (%)": 100.0}


def test_paper_numbers_carry_their_setting():
    for table, methods in X.PAPER_RESULTS.items():
        for method, entry in methods.items():
            for key in ("table", "dataset", "protocol", "pretraining"):
                assert entry.get(key), (table, method, key)
            assert entry["table"] == table
            assert any(isinstance(v, float) for v in entry.values()), (table, method)
    assert X.PAPER_RESULTS["VI"]["AL-RoR-34, FG-NET"]["MAE"] == 2.39
    assert X.PAPER_RESULTS["VI"]["AL-RoR-34, MORPH II"]["MAE"] == 2.36
    assert X.PAPER_RESULTS["II"]["AL-ResNets-34"]["acc (%)"] == 67.47
    paper = X.paper_numbers("I", rename={"AL-RoR-34 (global + local)": "global + local (Eq. 5)"})
    md = tables.results_table([{"method": "global + local (Eq. 5)", "acc (%)": 50.0}], paper=paper,
                              settings=X.SETTINGS).to_markdown()
    ours = md.splitlines()[2]  # our row, with the paper's Table I numbers and setting beside it
    assert ours.startswith("| global + local (Eq. 5)")
    for want in ("50.00", "65.77", "97.01", "Adience fold 4", "single crop", "ImageNet + IMDB-WIKI-101"):
        assert want in ours, want
    with pytest.raises(KeyError):
        X.paper_numbers("VII")


def test_dex_rows_carry_dex_own_pretraining():
    """DEX pre-trained on IMDB-WIKI; IMDB-WIKI-101 is the cleaned 101-class set of the AL paper's own models."""
    dex = {(t, m): e["pretraining"] for t, methods in X.PAPER_RESULTS.items() for m, e in methods.items()
           if m.startswith("DEX")}
    assert len(dex) == 4
    for key, pretraining in dex.items():
        assert "IMDB-WIKI-101" not in pretraining, key
    assert dex[("VI", "DEX (IMDB-WIKI), MORPH II")] == "ImageNet + IMDB-WIKI"
    assert X.PAPER_RESULTS["VI"]["AL-RoR-34, MORPH II"]["pretraining"] == "ImageNet + IMDB-WIKI-101"


def test_paper_config_uses_the_papers_optimiser():
    from agekeras.training import TrainConfig

    config, schedule = X.paper_config(TrainConfig(), "fgnet")
    assert (config.optimizer, config.weight_decay, config.epochs, config.lr) == ("sgd", 1e-4, 90, 1e-3)
    assert schedule["tables"] == ("VI",) and schedule["drop_after"] == 30
    config, schedule = X.paper_config(TrainConfig(), "adience")
    assert (config.epochs, config.lr) == (60, 1e-4) and schedule["tables"] == ("I", "II", "III")


@pytest.mark.parametrize("dataset", ["morph", "fgnet", "lap2015", "adience", "utkface"])
def test_paper_config_trains_with_the_papers_step_schedule(dataset):
    """Paper mode's learning rate, epoch by epoch, is the paper's: `lr` until `drop_after` epochs, then lr / 10
    (Sec. IV-A), with no warm-up; the reference is that rule written out, not the package's schedule."""
    from agekeras.callbacks import ProgressSchedule
    from agekeras.training import TrainConfig

    config, schedule = X.paper_config(TrainConfig(), dataset)
    epochs, steps = config.epochs, 7
    built = ProgressSchedule(config.lr, total_steps=epochs * steps, warmup=config.warmup, drops=config.lr_drops)
    for epoch in range(epochs):
        want = schedule["lr"] * (0.1 if epoch >= schedule["drop_after"] else 1.0)
        for step in (epoch * steps, epoch * steps + steps - 1):  # first and last step of the epoch
            assert built.lr_at(step / (epochs * steps)) == pytest.approx(want, rel=1e-9), (dataset, epoch, step)


def test_stage_histories_continue_the_epoch_axis(tmp_path):
    for stage, n in (("s1", 2), ("s2", 1)):
        (tmp_path / stage).mkdir()
        lines = ["epoch,loss,age_mae"] + [f"{i},{3 - i},{9 - i}" for i in range(n)]
        (tmp_path / stage / "history.csv").write_text("\n".join(lines) + "\n")
    h1, h2 = X.stage_histories(tmp_path / "s1", tmp_path / "s2")
    assert h1["epoch"] == [0, 1] and h2["epoch"] == [2]
    fig = agekeras.plots.plot_history([h1, h2], metrics=("loss",), labels=["stage 1", "stage 2"])
    xs = [line.get_xdata() for line in fig.axes[0].get_lines()]
    assert list(xs[0]) == [1, 2] and list(xs[1]) == [3]


@pytest.mark.slow
def test_two_stage_train_runs_both_stages(tmp_path):
    from agekeras.training import TrainConfig

    config = TrainConfig(dataset="synthetic", dataset_kwargs={"n": 48}, image_size=32, batch_size=16, epochs=1,
                         seed=0, verbose=0, out=str(tmp_path / "run"))
    m1, m2, d1, d2 = X.two_stage_train(config, "ror34_dex", "al_ror34", stage2={"lr": 1e-4})
    assert np.isfinite(m1["mae"]) and np.isfinite(m2["mae"])
    model = keras.saving.load_model(f"{d2}/best.keras", safe_mode=True)
    frozen = [layer.name for layer in model.layers if layer.weights and not layer.trainable]
    assert "ror34_backbone" in frozen and "dex_head" in frozen
    row = X.run_row(d2, "AL-RoR-34", {"dataset": "synthetic"})
    assert row["MAE"] == pytest.approx(m2["mae"]) and 0 <= row["acc (%)"] <= 100
