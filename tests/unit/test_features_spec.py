"""The FeatureSpec: 23 documented features in the issue's families, and a hash that tracks changes."""

from __future__ import annotations

import dataclasses

from scalper_shared.core.features import FEATURE_SPEC, FeatureSpec
from scalper_shared.core.features.spec import MARKET_FEATURES, Family, Params, canonical_json


def test_the_spec_has_21_market_and_2_position_features_with_unique_names() -> None:
    assert (FEATURE_SPEC.n_market, FEATURE_SPEC.n_features) == (21, 23)
    assert len(set(FEATURE_SPEC.names)) == 23
    assert FEATURE_SPEC.names[-2:] == ("position_side", "unrealised_pnl_pct")


def test_every_family_of_the_issue_is_present() -> None:
    assert {f.family for f in FEATURE_SPEC.features} == set(Family)


def test_every_feature_documents_formula_units_and_a_valid_clip_range() -> None:
    for feature in FEATURE_SPEC.features:
        assert feature.formula and feature.units
        assert feature.low < feature.high
        assert feature.warmup >= 0


def test_the_hash_is_stable_for_an_equal_spec() -> None:
    assert FeatureSpec().spec_hash == FEATURE_SPEC.spec_hash
    assert len(FEATURE_SPEC.spec_hash) == 64


def test_the_hash_changes_when_a_parameter_changes() -> None:
    assert FeatureSpec(params=Params(ema_fast=8)).spec_hash != FEATURE_SPEC.spec_hash


def test_the_hash_changes_when_a_clip_range_or_formula_changes() -> None:
    widened = (dataclasses.replace(MARKET_FEATURES[0], high=25.0), *MARKET_FEATURES[1:])
    reworded = (dataclasses.replace(MARKET_FEATURES[0], formula="ln(c/c1)"), *MARKET_FEATURES[1:])
    assert FeatureSpec(market=widened).spec_hash != FEATURE_SPEC.spec_hash
    assert FeatureSpec(market=reworded).spec_hash != FEATURE_SPEC.spec_hash
    assert FeatureSpec(version=2).spec_hash != FEATURE_SPEC.spec_hash


def test_the_canonical_json_names_every_feature_in_order() -> None:
    text = canonical_json(FEATURE_SPEC)
    positions = [text.index(f'"name":"{name}"') for name in FEATURE_SPEC.names]
    assert positions == sorted(positions)
