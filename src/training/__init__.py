"""The Lightning glue: the one LightningModule, its callbacks, and building a Trainer from the config.

module.py        ImageClassifier: any network of src/models, trained and evaluated
build.py         datamodule, module and Trainer instantiated from a composed config
insight.py       TensorBoard callbacks: inputs, filters, feature maps, confusion, hparams
reliability.py   what makes a resume exact (random generators) and a divergence one line
distributed.py   DDP under Hydra: one run directory per run, however the ranks are started
metric_names.py  the names the module logs (torch-free: the config check reads them)
"""
