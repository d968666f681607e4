"""The LightGBM member's default shape: what serving cost rests on (issue 5)."""

from __future__ import annotations

from models_testkit import data, split

from riskflow.models._lgbm import DEFAULT_LGBM_PARAMS, DEFAULT_NUM_BOOST_ROUND, LightGBMMember


def test_default_member_grows_at_most_the_capped_number_of_shallow_trees() -> None:
    d = data()
    tr, _, _ = split(d)
    # Small leaves on every row, validated on its own training rows: the loss keeps
    # falling, so only the defaults bound the forest (without them: 1,000 trees, 16 deep).
    member = LightGBMMember(
        params={"min_data_in_leaf": 5}, negative_rate=None, early_stopping_rounds=10_000
    ).fit(d.X[tr], d.y[tr], d.X[tr], d.y[tr], feature_names=d.feature_names)
    assert member.booster_.num_trees() == DEFAULT_NUM_BOOST_ROUND
    assert member.forest_ is not None
    assert member.forest_.max_depth == DEFAULT_LGBM_PARAMS["max_depth"]
