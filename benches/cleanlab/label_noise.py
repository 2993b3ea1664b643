"""cleanlab's label-issue search on a W1 Parquet file, timed: the comparison for vigil's
label-noise check (PSN006). Not part of CI; run through side_by_side.sh.

Features as vigil's check uses them: the numeric columns standardized (nulls filled with the
median), low-cardinality text columns one-hot. Out-of-fold probabilities come from a
multinomial logistic regression (scikit-learn, lbfgs) with 3-fold cross-validation, and
cleanlab.filter.find_label_issues ranks the rows (its default: prune by noise rate).
"""
import sys
import time

t0 = time.perf_counter()
import numpy as np
import pandas as pd
from cleanlab.filter import find_label_issues
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

t_import = time.perf_counter() - t0
path = sys.argv[1]
t = time.perf_counter()
df = pd.read_parquet(path)
t_read = time.perf_counter() - t
t = time.perf_counter()
labels = df["label"].to_numpy()
numeric = [c for c in df.columns if c.startswith("f")]
x = df[numeric].astype(float)
x = x.fillna(x.median())
x = (x - x.mean()) / x.std(ddof=0).replace(0, 1)
text = [c for c in df.columns if df[c].dtype == object or str(df[c].dtype).startswith("str")]
small = [c for c in text if df[c].nunique() <= 64]
parts = [x.to_numpy()]
for c in small:
    parts.append(pd.get_dummies(df[c], dtype=float).to_numpy())
features = np.hstack(parts)
t_prep = time.perf_counter() - t
t = time.perf_counter()
model = LogisticRegression(max_iter=200)
probs = cross_val_predict(model, features, labels, cv=3, method="predict_proba")
t_fit = time.perf_counter() - t
t = time.perf_counter()
issues = find_label_issues(labels, probs)
t_find = time.perf_counter() - t
total = time.perf_counter() - t0
print(
    f"cleanlab {len(df)} rows, {features.shape[1]} features: import {t_import:.2f}s, "
    f"read {t_read:.2f}s, features {t_prep:.2f}s, 3-fold logistic regression {t_fit:.2f}s, "
    f"find_label_issues {t_find:.2f}s; total {total:.2f}s; {int(issues.sum())} rows flagged"
)
