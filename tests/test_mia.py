"""Membership-inference attacks (jaxunlearn/metrics/mia.py): the threshold
attack against sklearn, its monotonicity (the property that makes its verdict
independent of the CPU), the held-out accuracy against sklearn's
cross-validation, and the evaluators' outputs."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from jaxunlearn.metrics import mia


def _sklearn_logistic():
  return LogisticRegression(class_weight="balanced", tol=1e-12, max_iter=10_000)


def test_logistic_fit_equals_sklearn():
  rng = np.random.default_rng(0)
  x = np.concatenate([rng.normal(1.0, 1.0, 70), rng.normal(0.0, 1.5, 30)])
  y = np.concatenate([np.ones(70), np.zeros(30)])
  weight = np.where(y == 1, 100 / (2 * 70), 100 / (2 * 30))
  w, b = mia.fit_logistic_1d(x, y, weight)
  ref = _sklearn_logistic().fit(x[:, None], y)
  np.testing.assert_allclose([w, b], [ref.coef_[0, 0], ref.intercept_[0]],
                             rtol=1e-6, atol=1e-6)


def test_threshold_attack_predicts_like_sklearns_logistic_regression():
  rng = np.random.default_rng(1)
  member, non = rng.normal(2.0, 1.0, 200), rng.normal(0.0, 2.0, 150)
  target = np.linspace(-6, 8, 1001)
  x = np.concatenate([member, non])[:, None]
  y = np.concatenate([np.ones(200), np.zeros(150)])
  ref = make_pipeline(StandardScaler(), _sklearn_logistic()).fit(x, y)
  ours = mia.fit_threshold(member, non)(target)
  theirs = ref.predict(target[:, None])
  # Only a target within the solvers' tolerance of the threshold may differ.
  assert np.sum(ours != theirs) <= 1
  assert mia.threshold_mia(member, non, target) == pytest.approx(np.mean(theirs), abs=1e-3)


def test_threshold_attack_is_monotone_and_ignores_rounding_noise():
  """The artefact it replaces: a retrained model is confident on members and
  non-members alike, and has never seen D_f (low confidence). A monotone
  attack calls no such sample member, whatever last-bit noise the shadow
  features carry."""
  rng = np.random.default_rng(2)
  member = rng.normal(12.0, 2.0, 300)
  non = rng.normal(11.5, 2.5, 300)
  forget = rng.normal(-8.0, 2.0, 135)
  verdicts = set()
  for seed in range(20):
    noise = np.random.default_rng(seed).normal(0, 1e-7, 600)
    predict = mia.fit_threshold(member + noise[:300], non + noise[300:])
    verdicts.add(mia.member_fraction(lambda *_: predict, member, non, forget))
    grid = np.linspace(-20, 30, 2001)
    assert np.all(np.diff(predict(grid)) >= 0)  # member iff above a threshold
  assert verdicts == {0.0}


def test_threshold_attack_with_no_positive_slope_calls_nobody_member():
  rng = np.random.default_rng(3)
  member, non = rng.normal(0.0, 1.0, 100), rng.normal(1.0, 1.0, 100)
  assert mia.threshold_mia(member, non, np.linspace(-10, 10, 50)) == 0.0
  assert mia.attack_accuracy(mia.fit_threshold, member, non) <= 0.5


def test_attack_accuracy_equals_sklearn_cross_validation():
  rng = np.random.default_rng(4)
  member, non = rng.normal(1.5, 1.0, 160), rng.normal(0.0, 1.0, 160)
  x = np.concatenate([member, non])[:, None]
  y = np.concatenate([np.ones(160), np.zeros(160)])
  cv = StratifiedKFold(mia.CV_FOLDS, shuffle=True, random_state=7)
  pred = cross_val_predict(make_pipeline(StandardScaler(), _sklearn_logistic()),
                           x, y, cv=cv)
  ours = mia.attack_accuracy(mia.fit_threshold, member, non, seed=7)
  assert ours == pytest.approx(balanced_accuracy_score(y, pred), abs=2 / 320)


def test_signal_separates_a_real_attack_from_a_coin_flip():
  rng = np.random.default_rng(5)
  same = rng.normal(0, 1, (2, 400))
  apart = np.stack([rng.normal(1.0, 1, 400), rng.normal(0, 1, 400)])
  for fit in (mia.fit_threshold, mia.fit_svc):
    none = mia.attack_accuracy(fit, same[0][:, None], same[1][:, None])
    real = mia.attack_accuracy(fit, apart[0][:, None], apart[1][:, None])
    assert abs(none - 0.5) < 0.04 and not mia.has_signal(none, 800)
    assert real > 0.65 and mia.has_signal(real, 800)
  assert np.isnan(mia.attack_accuracy(mia.fit_threshold, same[0][:3], same[1]))
  assert not mia.has_signal(float("nan"), 10)


def test_logit_confidence_is_monotone_in_the_true_class_probability():
  rng = np.random.default_rng(6)
  logits = rng.normal(0, 4, (500, 10))
  labels = rng.integers(0, 10, 500)
  phi = mia.logit_confidence(logits, labels)
  p = mia.confidence(logits, labels)[:, 0]
  np.testing.assert_allclose(phi, np.log(p) - np.log1p(-p), rtol=1e-9, atol=1e-9)
  order = np.argsort(p)
  assert np.all(np.diff(phi[order]) >= -1e-12)
