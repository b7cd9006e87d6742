"""Numbers as the pages write them: three significant digits, accuracies in percent."""

from __future__ import annotations

from cvae.core.formatting import significant
from cvae.report.result_tables import distance_table, latent_table, reconstruction_table, tstr_table


def test_three_significant_digits_without_exponents():
    assert [significant(v) for v in (373.6248, 21.6869, 0.012345, 1.2502, 1234.5, 0.0, -0.0415)] == [
        "374", "21.7", "0.0123", "1.25", "1,234", "0.00", "-0.0415"]
    assert significant(float("nan")) == significant(None) == "n/a"


def test_a_rate_that_rounds_to_100_percent_prints_no_fourth_digit():
    from cvae.core.formatting import percent

    assert [percent(v) for v in (0.341, 0.0476, 0.9994, 0.99951, 1.0, 0.0)] == [
        "34.1%", "4.8%", "99.9%", "100%", "100%", "0.0%"]
    assert percent(1.0, 2) == "100%" and percent(0.99994, 2) == "99.99%" and percent(None) == "n/a"


def test_a_relative_change_in_percent_never_prints_a_minus_zero():
    from cvae.core.formatting import signed_percent

    assert [signed_percent(v) for v in (-0.0004, -0.023, 0.1, 0.0)] == ["+0.0%", "-2.3%", "+10.0%", "+0.0%"]


def test_items_are_listed_as_a_reader_lists_them():
    from cvae.core.formatting import listed

    assert [listed(items) for items in (["A"], ["A", "B"], ["A", "B", "C"])] == ["A", "A and B", "A, B and C"]


def test_a_signed_change_never_prints_a_minus_zero():
    from cvae.core.formatting import signed

    assert [signed(v) for v in (-0.04, 0.0, -0.0, 1.25, -3.26)] == ["+0.0", "+0.0", "+0.0", "+1.2", "-3.3"]
    assert signed(-0.0004, 3) == "+0.000" and signed(0.0125, 3) == "+0.013"


def test_result_tables_print_what_a_reader_can_use():
    per_modality = {"pathmnist": 373.6248, "tissuemnist": 48.6702, "octmnist": 1.2502, "overall": 223.4086}
    result = {"domain_fid": per_modality, "recon_psnr": {"overall": 21.6869}, "recon_mse": {"overall": 0.0123456},
              "recon_ssim": {"overall": 0.35212},
              "tstr_accuracy_by_modality": {"pathmnist": 0.4106}, "trtr_accuracy_by_modality": {"pathmnist": 0.5},
              "tstr_accuracy": 0.4106, "trtr_accuracy": 0.5}
    assert list(distance_table(result)["domain FID"]) == ["374", "48.7", "1.25", "223"]
    recon = reconstruction_table(result)
    assert recon.loc["overall"].tolist() == ["0.0123", "21.7", "0.352"]
    tstr = tstr_table(result)
    assert tstr.loc["PathMNIST", "train on synthetic, TSTR (%)"] == "41.1"
    assert tstr.loc["overall"].tolist() == ["41.1", "50.0"]
    heads = {"aux_class_accuracy": 0.3412, "aux_modality_accuracy": 1.0, "probe_class_accuracy": 0.875,
             "probe_modality_accuracy": 0.99, "baselines": {"class_chance": 1 / 21, "class_majority": 1 / 21,
                                                            "modality_chance": 1 / 3, "modality_majority": 3 / 7}}
    latent = latent_table(heads)  # accuracies in % like every other table, the original's quoted beside them
    assert latent.loc["class"].tolist() == ["34.1", "87.5", "4.8", "4.8", "about 34%"]
    assert latent.loc["modality"].tolist() == ["100.0", "99.0", "33.3", "42.9", "about 39%"]


def test_durations_read_in_the_largest_unit_that_keeps_them_at_one_or_more():
    from cvae.core.formatting import duration

    assert [duration(s) for s in (4.26, 12.0, 59.4, 60.0, 210.0, 3599.0, 7560.0)] == [
        "4 s", "12 s", "59 s", "1.0 minutes", "3.5 minutes", "60 minutes", "2.1 hours"]


def test_a_device_reads_as_a_sentence_names_it():
    from cvae.core.formatting import device_words

    assert [device_words(d) for d in ("cpu", "cuda", "mps")] == ["the CPU", "a GPU", "mps"]
