"""Evaluation metrics with scikit-learn's signatures (classification) and detection's mAP.

``deepnotes.metrics.detection`` holds the detection metrics; the classification metrics are
exported here.
"""
