"""The relevance model: a cross-encoder teacher on human graded judgments, distilled into a cheap
student ranker that reads its features from Feast, and the offline relevance evaluation.

==========================  ===========================================================================
``pairs``                   judged (query, pin, text, grade) pairs, the grade scale, the query splits
``teacher_model``           the torch cross-encoder (any local transformers directory)
``teacher_train``           fine-tuning the teacher; ``calibration`` maps its output to the grade scale
``features`` / ``student``  the student's online features (through Feast) and the student model
``metrics`` / ``evaluate``  Kendall tau, nDCG@10 (exponential gain), grade accuracy; the system table
==========================  ===========================================================================

The torch-free teacher scorer lives in :mod:`encoders.runtime.cross_encoder`.
"""
