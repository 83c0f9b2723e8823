"""earshot's Python side: training, export and calibration of the fingerprint model.

Run the tools from the repository root as modules of this package, e.g.
`/usr/bin/python3 -m models.train --help`; the tests as
`/usr/bin/python3 -m unittest discover -s models -t . -p 'test_*.py'` (make test-python).

  train.py                command line and loop of training (checkpoints in checkpoints/RUN/)
  export.py               a checkpoint -> a model file (.emod)
  calibrate_threshold.py  fits the no-match thresholds on train-set queries into a model file
  dev_eval.py             the dev metric of a checkpoint
  false_positives.py      which out-of-catalog answers share audio with the song they found
  make_random_model.py    writes random-init-v0.emod, the untrained test model
  earshot_model/          the library they share
"""
