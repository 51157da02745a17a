"""Classic machine learning with scikit-learn's conventions (fit / predict / transform).

* :class:`LogisticRegression` -- binary and multinomial, L2/L1/no penalty, gradient descent or
  Newton's method, loss, gradient and Hessian derived by hand (notes 004 Q22).
* :class:`PCA` and :func:`zca_whiten` -- principal components by SVD, PCA and ZCA whitening
  (notes 004 Q4, Q5, Q7).
"""

from .decomposition import PCA, zca_whiten
from .logistic import ConvergenceWarning, LogisticRegression

__all__ = ["PCA", "ConvergenceWarning", "LogisticRegression", "zca_whiten"]
