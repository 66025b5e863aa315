"""Text filters of the reply pipeline.

``reasoning`` keeps a model's thinking out of the reply; ``speech`` turns the
displayed reply into what is said aloud, keeping track of which displayed
characters each spoken piece stands for. It runs three stages, each in its own
module: ``markdown`` (markup out), ``normalize`` (written forms into words, with
rules from ``numbers``, ``links``, ``emoji`` and ``abbreviations``) and ``stops``
(a period ends each line). ``pieces`` holds ``Piece``, ``rules`` what a rule is.
"""
