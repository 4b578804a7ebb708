"""botscore-train: the dataset, training, the model card and model import. Never imported by `botscore serve`.

dataset.py     the labelled CSV: generated with a fixed seed, read, split
evaluation.py  held-out metrics
modelcard.py   the Markdown card and its plots
training.py    `botscore train`
importer.py    `botscore import-model`
cli.py         the three commands' arguments
"""
