"""The batchnorm experiment (notes 001 BN/GN, 004 Q6/Q9) on a quick run."""

from .conftest import check_files


def test_bn_trains_at_a_rate_where_the_plain_net_fails(quick):
    sweep = quick("batchnorm").results["sweep"]
    assert sweep["bn"]["1.0"]["final_loss"] < 0.5
    plain = sweep["none"]["1.0"]["final_loss"]
    assert plain != plain or plain > 2.0              # nan (diverged) or stuck near ln 10


def test_train_mode_depends_on_the_batch_eval_mode_does_not(quick):
    r = quick("batchnorm").results
    assert r["train_mode_diff"] > 1e-3
    assert r["eval_mode_diff"] < 1e-5
    assert r["running_mean_moved_by_train_forward"] > 0


def test_bn_vs_gn_is_measured_and_judged_from_its_numbers(quick):
    run = quick("batchnorm")
    acc = run.results["bn_vs_gn"]
    assert set(acc) == {"bn/2", "bn/32", "gn/2", "gn/32"}
    assert all(0 <= v <= 1 for v in acc.values())
    holds = acc["gn/2"] > acc["bn/2"] and acc["bn/2"] - acc["bn/32"] < acc["gn/2"] - acc["gn/32"]
    assert run.json["checks"][3]["claim"].startswith("batch 2: GroupNorm beats BN")
    assert run.json["checks"][3]["passed"] == holds
    check_files(run.out, figures=2)


def test_small_batches_estimate_the_statistics_worse(quick):
    err = quick("batchnorm").results["batch_statistics_error"]
    assert set(err) == {"2", "8", "32"} and len(err["2"]) == 3           # three BN layers
    for e2, e8, e32 in zip(err["2"], err["8"], err["32"], strict=True):
        assert e2 > e8 > e32 > 0
        assert e2 > 2.5 * e32                     # about sqrt(32 / 2) = 4 for independent values
