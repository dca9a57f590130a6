"""The linear evaluation protocol (Section 3): a logistic-regression probe on embeddings.

As the authors' notebook: `MinMaxScaler` fit on the training embeddings, then scikit-learn's
`LogisticRegression(solver="saga", tol=0.1, C=10)` (multinomial, the default since
scikit-learn 1.5), scored by test accuracy. It reads numpy arrays only, never the training
code, so it applies equally to raw pixels (the paper's baseline) and to exported embeddings.
"""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import MinMaxScaler


def classifier(c=10.0, tol=0.1, seed=0):
  """The probe's (unfitted) classifier: SAGA logistic regression, as the notebook."""
  return LogisticRegression(solver="saga", tol=tol, C=c, random_state=seed)


def fit_quietly(model, x, y):
  """model.fit(x, y) without SAGA's ConvergenceWarning: with tol=0.1 it stops early on
  purpose; max_iter is never the binding limit."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    return model.fit(x, y)


def linear_probe(train_x, train_y, test_x, test_y, c=10.0, tol=0.1, seed=0):
  """Fits the probe on (train_x, train_y); returns its accuracy on (test_x, test_y).

  Args:
    train_x: [N, d] features; train_y: [N] integer labels.
    test_x: [M, d] features; test_y: [M] integer labels.
    c: inverse regularisation strength (the paper: 10).
    tol: saga's stopping tolerance (the paper: 0.1, about 3 epochs).
    seed: random_state of saga's sampling order.
  Returns:
    Test accuracy, a float in [0, 1].
  """
  train_x = np.asarray(train_x, dtype=np.float64).reshape(len(train_x), -1)
  test_x = np.asarray(test_x, dtype=np.float64).reshape(len(test_x), -1)
  scaler = MinMaxScaler().fit(train_x)
  model = fit_quietly(classifier(c, tol, seed), scaler.transform(train_x), train_y)
  return float(model.score(scaler.transform(test_x), test_y))
