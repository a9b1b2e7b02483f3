"""From probability to weight: confidence threshold, expected value against costs, sizing."""

from __future__ import annotations

from models.ml.signals import SignalRule, expected_return, size, target_weight

RULE = SignalRule(threshold=0.55, cost_bps=10.0, profit_take=2.0, stop_loss=1.0, primary=1,
                  allow_short=False, target_vol=0.5, bars_per_year=2190.0, max_weight=1.0,
                  weight_step=0.25)


def test_expected_return_weighs_the_barriers() -> None:
    assert expected_return(0.5, 0.01, RULE) == (0.5 * 2.0 - 0.5 * 1.0) * 0.01


def test_a_trade_needs_both_the_confidence_and_an_expected_value_above_costs() -> None:
    vol = 0.005  # annualised ~23%: full size
    assert target_weight(0.6, 0.01, vol, RULE) == 1.0
    assert target_weight(0.5, 0.01, vol, RULE) == 0.0          # below the threshold
    # p = 0.6 but the barrier is so narrow that 0.8 x width does not beat 10 bps
    assert expected_return(0.6, 0.001, RULE) * 1e4 < 10
    assert target_weight(0.6, 0.001, vol, RULE) == 0.0


def test_shorts_only_when_allowed() -> None:
    rule = SignalRule(0.55, 10.0, 1.0, 1.0, 1, True, 0.5, 2190.0, 1.0, 0.25)
    assert target_weight(0.2, 0.01, 0.005, rule) == -1.0
    assert target_weight(0.2, 0.01, 0.005, RULE) == 0.0


def test_size_targets_volatility_and_steps_down() -> None:
    per_bar = 1.0 / 2190.0 ** 0.5  # annualised 100%: half the 50% target
    assert size(per_bar, RULE) == 0.5
    assert size(per_bar * 1.1, RULE) == 0.25  # 0.4545 rounds down to the step
    assert size(0.0, RULE) == 1.0
