"""The DAA experiments module (notebook 03): templates, interval sweeps, learned styles, paper tables."""

import pathlib

import numpy as np
import pytest

import agekeras
from agekeras import tables
from agekeras.experiments import daa as X
from agekeras.models import daa as daa_models

PAPERS = pathlib.Path(__file__).resolve().parents[3] / "shared" / "papers"


def test_select_templates_draws_one_face_per_age_present():
    ages = np.array([10, 10, 11, 13, 13, 13, 20, 39], "float32")
    idx = X.select_templates(ages, seed=0)
    assert sorted(ages[idx].astype(int).tolist()) == [10, 11, 13, 20, 39]
    assert np.array_equal(idx, X.select_templates(ages, seed=0))  # seeded
    assert ages[X.select_templates(ages, age_min=12, num_ages=5)].tolist() == [13.0]
    with pytest.raises(ValueError, match="no face has an age"):
        X.select_templates(ages, age_min=50, num_ages=3)
    with pytest.raises(ValueError, match="finite"):
        X.select_templates([np.nan, 3.0])


def test_save_templates_round_trips_into_a_builder(tmp_path):
    images = np.random.RandomState(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    path = X.save_templates(tmp_path / "sub" / "t.npz", images, [20, 30, 40])
    model = agekeras.models.get("daa_resnet18_single", input_shape=(32, 32, 3), templates=path)
    bank = [layer for layer in model.layers if isinstance(layer, agekeras.layers.TemplateBank)][0]
    np.testing.assert_array_equal(bank.ages.numpy(), [20, 30, 40])
    with pytest.raises(ValueError, match=r"images \(n, H, W, 3\)"):
        X.save_templates(tmp_path / "bad.npz", np.zeros((3, 8, 8)), np.zeros(3))
    read = X.read_templates(path)  # the dict form the notebook's builders take
    np.testing.assert_array_equal(read["images"], images)
    np.testing.assert_array_equal(read["ages"], [20, 30, 40])
    assert read["images"].dtype == read["ages"].dtype == np.float32


def test_interval_sweep_and_per_age_deltas_follow_eq9():
    model = agekeras.models.get("daa_c3ae", input_shape=(48, 48, 3), num_classes=40, age_min=5)
    x = np.random.RandomState(2).uniform(0, 255, (3, 48, 48, 3)).astype("float32")
    deltas, ages = X.per_age_deltas(model, x)
    assert deltas.shape == (3, 40)
    np.testing.assert_array_equal(ages, np.arange(5, 45))
    sweep = X.interval_sweep(model, x, intervals=(1, 4), batch_size=3)
    assert [r["comparisons"] for r in sweep] == [40, 10]
    for r, k in zip(sweep, (1, 4)):  # Eq. 9 over every k-th age, written out
        np.testing.assert_allclose(r["pred"], (ages[None, ::k] - deltas[:, ::k]).mean(1), rtol=1e-4, atol=1e-3)
    assert all(r["seconds"] > 0 and r["ms_per_image"] > 0 for r in sweep)
    with pytest.raises(ValueError, match="at least one image"):
        X.interval_sweep(model, x[:0])


def test_learned_styles_embeddings_and_errors():
    model = agekeras.models.get("daa_c3ae", input_shape=(48, 48, 3), num_classes=40, age_min=5)
    stats = X.learned_style_statistics(model)
    assert stats["s"].shape == stats["t"].shape == (40,)
    np.testing.assert_array_equal(stats["ages"], np.arange(5, 45))
    x = np.random.RandomState(3).uniform(0, 255, (4, 48, 48, 3)).astype("float32")
    emb = X.encoder_embeddings(model, x)
    assert emb.shape == (4, 32) and np.all(np.isfinite(emb))
    # The embedding is the mean of the encoder's map on the [-1, 1]-scaled image.
    encoder = daa_models.c3ae_encoder((48, 48, 3))
    encoder.set_weights([l for l in model.layers if l.name == "c3ae_encoder"][0].get_weights())
    want = np.asarray(encoder(x / 127.5 - 1.0, training=False)).mean(axis=(1, 2))
    np.testing.assert_allclose(emb, want, rtol=1e-4, atol=1e-5)
    plain = agekeras.models.get("daa_c3ae_plain", input_shape=(48, 48, 3))
    with pytest.raises(ValueError, match="no BinaryCodeMapping"):
        X.learned_style_statistics(plain)
    with pytest.raises(ValueError, match="no DAA comparison-age layer"):
        X.interval_sweep(plain, x)


def test_training_settings_and_paper_tables():
    text = X.train_config("paper_text", out="x")
    assert (text.epochs, text.batch_size, text.lr, text.optimizer, text.weight_decay, text.image_size) == (
        200, 128, 1e-3, "adam", 5e-4, 128)
    released = X.train_config("released_config", epochs=2)
    assert (released.epochs, released.batch_size) == (2, 64)
    with pytest.raises(ValueError, match="setting must be one of"):
        X.train_config("mine")
    t5 = X.PAPER_TABLES["table5_ablation"]
    assert [t5[k]["MAE"] for k in X.ablation_variants("resnet18", "t.npz")] == [2.72, 2.65, 2.47, 2.25]
    assert [t5[f"{k} (MegaAge-Asian)"]["CA(5) %"] for k in X.ablation_variants("resnet18", "t.npz")] == [
        80.15, 84.06, 84.84, 84.89]
    assert X.PAPER_TABLES["table1_morph"]["ResNet18+DAA (IMDB-Wiki pre-trained)"]["MAE"] == 2.06
    assert X.PAPER_TABLES["table2_fgnet"]["ResNet18+DAA"]["MAE"] == 2.19
    for table in X.PAPER_TABLES.values():
        for numbers in table.values():
            assert {"table", "dataset", "protocol", "pretraining"} <= set(numbers)
    row = X.result_row("binary code mapping (Eq. 7)", {"mae": 6.9, "ca3": 0.4, "ca5": 0.5, "ca7": 0.6},
                       dataset="utkface", protocol="random 80/20", size=64, table="5")
    assert row["CA(3) %"] == pytest.approx(40.0)
    md = tables.results_table([row], paper=t5, settings=X.TABLE_SETTINGS).to_markdown()
    assert "2.25" in md and "6.90" in md and "MORPH II" in md


def test_table5_numbers_carry_the_dataset_each_was_measured_on():
    """Table 5 of the paper: MAE on MORPH II, CA(3/5/7) on MegaAge-Asian. Each paper entry holds the numbers of one
    dataset and says which; the reference is Table 5 as `002-results.md` (or, without it, the paper) prints it."""
    table5 = {  # variant: (MORPH II MAE, MegaAge-Asian CA(3), CA(5), CA(7))
        "without DAA": (2.72, 63.12, 80.15, 90.39),
        "single-channel template (Eq. 3)": (2.65, 67.97, 84.06, 92.40),
        "multi-channel template (Eq. 5)": (2.47, 68.29, 84.84, 92.47),
        "binary code mapping (Eq. 7)": (2.25, 68.82, 84.89, 92.70),
    }
    if PAPERS.is_dir():
        text = (PAPERS / "002-results.md").read_text().replace("**", "")
        section = text[text.index("## Table 5"):text.index("## Table 6")]
        assert "MORPH MAE" in section and "MegaAge-Asian CA" in section
        for variant, numbers in table5.items():
            assert f"| {variant} | " + " | ".join(f"{n:.2f}" for n in numbers) + " |" in section, variant
    t5 = X.PAPER_TABLES["table5_ablation"]
    seen = []
    for method, entry in t5.items():
        if entry["dataset"].startswith("MORPH II"):
            assert "random 80/20" in entry["protocol"] and not any(k.startswith("CA(") for k in entry), method
            seen.append((method, "MAE", entry["MAE"]))
        else:
            assert entry["dataset"] == "MegaAge-Asian" and "3,945 test faces" in entry["protocol"], method
            assert "MAE" not in entry, method
            seen += [(method, k, entry[k]) for k in ("CA(3) %", "CA(5) %", "CA(7) %")]
    want = [(v, "MAE", n[0]) for v, n in table5.items()]
    want += [(f"{v} (MegaAge-Asian)", k, x) for v, n in table5.items()
             for k, x in zip(("CA(3) %", "CA(5) %", "CA(7) %"), n[1:])]
    assert sorted(seen) == sorted(want)


def test_table1_parameter_counts():
    rows = X.table1_parameter_counts(sizes=(("daa_c3ae", 96),))
    assert rows == [{"method": "C3AE(plain)+DAA", "size": 96, "params": 55_075, "trainable": 54_691}]


def test_paper_setting_adam_decays_weights_decoupled():
    """The paper's "Adam, weight decay 0.0005" is honoured (decoupled: w <- w - lr * wd * w per step);
    plain adam (the package default, weight_decay None) does not decay."""
    import keras

    from agekeras.runtime import make_optimizer

    config = X.train_config("paper_text")
    for wd, want in ((config.weight_decay, 1.0 - 0.1 * 5e-4), (None, 1.0)):
        w = keras.Variable(np.ones(3, "float32"))
        opt = make_optimizer(config.optimizer, 0.1, wd)
        opt.apply_gradients([(np.zeros(3, "float32"), w)])  # zero gradient: only the decay moves w
        np.testing.assert_allclose(np.asarray(w), want, rtol=1e-6)
    with pytest.raises(ValueError, match="weight_decay must be"):
        make_optimizer("adam", 0.1, -1.0)


def test_training_label_names_data_size_and_budget():
    """The figures' titles: data, image size and the budget (minutes when there is one, else epochs)."""
    label = X.training_label
    assert label(X.train_config(dataset="utkface", image_size=64, time_budget=15)) == "UTKFace, 64 px, 15 min"
    assert label(X.train_config(dataset="synthetic", image_size=48, epochs=1)) == "synthetic faces, 48 px, 1 epoch"
    assert label(X.train_config("paper_text", dataset="morph2")) == "MORPH II, 128 px, 200 epochs"
    assert label(X.train_config(dataset="afad", image_size=64, epochs=3, time_budget=2.5)) == "afad, 64 px, 2.5 min"
    with pytest.raises(ValueError, match="neither"):
        label(X.train_config(dataset="utkface", epochs=None))
