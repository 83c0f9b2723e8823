"""The library of models/: one module per job.

  frontend      log-mel front-end (numpy, torch) and the embedding geometry (hops, context)
  net           the embedding network and its export to layers and tensors
  container     the earshot container format (writer, validating reader)
  model_file    model files: metadata, tensors, parity check against `reference`
  reference     pure-numpy forward pass of a model file
  checkpoint    training checkpoints: their network, training record and export
  data          decoding and caching the train set's songs and noise
  splits        which songs are trained on, which are dev songs or held out
  sampling      training batches of (anchor, positive) segments and noise
  augment       waveform degradations and spectrogram masks
  losses        NT-Xent, semi-hard triplet, cross-batch memory, false-negative masks
  dev_metric    the dev metric: brute-force retrieval of train-set clips
  shared_audio  does a clip hold the audio of the song it was matched to?
"""
