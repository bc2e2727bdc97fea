"""The pure parts of scripts/benchmark.py: mean ± std over seeds, which (row, seed) still has
to run, and the markdown table (rows not run are listed, with why)."""

import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("benchmark", Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py")
benchmark = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark)

BUDGET = {"steps": 10, "fid_samples": 5000, "iw_samples": 1000, "nll_images": 1000, "inception_mode": "tf", "smoke": False}


def seed_record(fid: float, steps: int = 10) -> dict:
    return {"metrics": {"fid": fid, "n_generated": 5000, "n_reference": 5000}, "protocol": {}, "steps": steps, "batch_size": 128,
            "train_wall_s": 100.0, "eval_wall_s": 50.0, "images_per_s": 200.0, "budget": BUDGET, "commit": "abcdef0123456789"}


def test_mean_std_is_the_sample_standard_deviation():
    assert benchmark.mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert benchmark.mean_std([4.0]) == (4.0, None)
    assert benchmark.fmt_mean_std([10.0, 12.0, 14.0]) == "12 ± 2"
    assert benchmark.fmt_mean_std([7.5]) == "7.5"


def test_pending_skips_a_seed_done_with_the_same_budget_only():
    results = {"dcgan_nonsat": {"seeds": {"0": seed_record(30.0), "1": {"error": "boom", "budget": BUDGET}}}}
    assert not benchmark.pending(results, "dcgan_nonsat", 0, BUDGET)
    assert benchmark.pending(results, "dcgan_nonsat", 1, BUDGET)  # failed: runs again
    assert benchmark.pending(results, "dcgan_nonsat", 2, BUDGET)  # absent
    assert benchmark.pending(results, "dcgan_nonsat", 0, BUDGET | {"fid_samples": 10000})  # another protocol
    assert benchmark.pending(results, "vae", 0, BUDGET)


def test_markdown_shows_mean_and_std_and_lists_rows_not_run():
    results = {"dcgan_nonsat": {"seeds": {str(s): seed_record(f) for s, f in enumerate([30.0, 32.0, 34.0])}}}
    md = benchmark.markdown(results, ["dcgan_nonsat", "vae", "ref_dcgan"], [0, 1, 2], {"ref_dcgan": "give --reference-dir"})
    lines = md.splitlines()
    assert lines[2].startswith("| dcgan_nonsat (DCGAN nonsat) | fid 32 ± 2 | 10 | 100 ± 0 | 50 ± 0 | 200 ± 0 | 0,1,2 | abcdef0123 |")
    assert lines[3] == "| vae (VAE (conv)) | not run yet | | | | | | |"
    assert lines[4] == "| ref_dcgan (reference: pytorch/examples dcgan) | not run: give --reference-dir | | | | | | |"
    assert "n_generated 5000" in md


def test_shown_keys_expand_a_prefix():
    assert benchmark.shown_keys(["elbo", "log_likelihood_iw"], {"elbo": 1, "log_likelihood_iw1000": 2, "kl": 3}) == ["elbo", "log_likelihood_iw1000"]


@pytest.mark.parametrize("name", list(benchmark.ROWS))
def test_every_row_names_what_it_shows(name):
    row = benchmark.ROWS[name]
    assert row["show"] and row["metrics"] and row["steps"] > 0


def test_markdown_shows_the_domain_metrics_and_their_classifier():
    record = seed_record(30.0)
    record["metrics"] |= {"fmnist/fid": 12.5, "fmnist/is_mean": 7.0, "fmnist/is_std": 0.1, "fmnist/n_generated": 5000, "fmnist/n_reference": 5000}
    record["protocol_domain"] = {"classifier": "fashion_mnist SmallCNN at 32px", "classifier_test_accuracy": 0.92,
                                 "classifier_weights": "/c/fashion_mnist-32px-6496109b25f7.pt", "classifier_sha256": "6496109b25f7e6b1e5da"}
    md = benchmark.markdown({"dcgan_nonsat": {"seeds": {"0": record}}}, ["dcgan_nonsat"], [0], {})
    assert "| fid 30, fmnist/fid 12.5, fmnist/is_mean 7, fmnist/is_std 0.1 |" in md
    assert "fmnist/: fashion_mnist SmallCNN at 32px (test accuracy 0.92), fashion_mnist-32px-6496109b25f7.pt sha256 6496109b25f7e6b1, 5000 generated vs 5000 reference" in md
